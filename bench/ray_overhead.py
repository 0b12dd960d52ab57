"""Pair 1: IPR epochs through Ray Train with one worker vs the same call in this process.

Identical work: the same config, split and seed; `ray_train.train` runs `ipr.fit` inside a
TorchTrainer worker holding both cores (Ray sets its OMP_NUM_THREADS to the 2 CPUs it reserves),
the plain loop calls `ipr.fit` here with 2 torch threads. Ray (dashboard on, as the runner starts
it) is started once beforehand, as in a sweep. Each side trains EPOCHS epochs per repeat; an
epoch's time is the interval between two of its reports (Ray's: stamped by the worker, so it
holds the checkpoint written at each report), and what a run takes beyond its epochs is its
fixed cost (Ray's: the trainer, the worker process and its imports, the process group, the
result coming back). Runs alternate (plain, Ray, plain, Ray) so drift in the machine hits both
alike. Trials that need no DDP skip Ray Train altogether (runner.tune's default)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import LOGMEL_CNN, Figure, Result, synthetic, timed, with_values
from emoref import ray_train
from emoref.data.splits import make_split
from emoref.methods import ipr
from emoref.record import ListReporter

# One post-warm-up IPR epoch (prototypes placed at once, every step a D1 and a D2 batch, then
# evaluation), on a synthetic corpus big enough for the epoch to last over 30 s on 2 cores.
FULL = (*LOGMEL_CNN, "corpus.synthetic.n_utterances=3000", "train.warmup_epochs=0")
EPOCHS = 4  # 3 epoch intervals per run
QUICK_EPOCHS = 2  # one interval: --quick checks the pair runs, its figures mean nothing
QUICK = (*LOGMEL_CNN, "corpus.synthetic.n_utterances=64", "corpus.synthetic.max_duration=1.5",
         "audio.max_seconds=1.5", "train.epochs=1", "train.warmup_epochs=0")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(work: Path, quick: bool, repeats: int) -> Result:
    import ray

    config, manifest = synthetic(work / "cache", *(QUICK if quick else FULL))
    split = make_split(manifest, config.split)
    torch.set_num_threads(2)
    if not quick:  # warm the caches, so that neither side pays for decoding (quick: no figures)
        ipr.fit(with_values(config, train__max_steps_per_epoch=1), split, ListReporter())
    ray.shutdown()
    ray_train.start_ray(echo=False, local=True, num_cpus=2, dashboard_port=free_port())
    n_epochs = QUICK_EPOCHS if quick else EPOCHS
    run_config = with_values(config, train__epochs=n_epochs)
    plain, trained = Figure("plain loop, one epoch", "s"), Figure("Ray Train, one epoch", "s")
    fixed = Figure("Ray Train's fixed cost per run, beyond the plain loop's", "s")
    plain_run, ray_run = Figure("plain loop, whole run", "s"), Figure("Ray Train, whole run", "s")
    try:
        for repeat in range(repeats):
            stamps: list[float] = []
            total = timed(lambda: ipr.fit(run_config, split, lambda *a, **k: stamps.append(
                time.time())))[0]
            epochs = list(np.diff(stamps))
            plain.values += epochs
            plain_run.values.append(total)
            plain_fixed = total - len(stamps) * float(np.median(epochs))
            # A fresh run name each time: the same name would resume the last checkpoint.
            on_ray = with_values(run_config, workers=1, dist__cpus_per_worker=2,
                                 dist__storage=work / "ray", dist__name=f"bench{repeat}")
            reports = ListReporter()
            total = timed(lambda: ray_train.train("ipr", on_ray, split, reports, echo=False))[0]
            epochs = list(np.diff([x["reported_at"] for x in reports.extras]))
            trained.values += epochs
            ray_run.values.append(total)
            fixed.values.append(total - len(reports.extras) * float(np.median(epochs))
                                - plain_fixed)
    finally:
        ray.shutdown()
    ratio = trained.median / plain.median
    return Result(
        title="1. Ray Train (1 worker) vs a plain PyTorch loop, identical IPR epochs",
        setup=f"synthetic corpus, {len(manifest.utterances)} utterances, cpu preset (log-Mel CNN), "
              f"epochs after warm-up, 2 CPUs each way, {repeats} alternating repeats",
        figures=[plain, trained, plain_run, ray_run, fixed],
        ratios={"ray_over_plain_epoch": (ratio, f"Ray's per-epoch overhead "
                                                f"{100 * (ratio - 1):+.1f}%"),
                "throughput_ray_over_plain": (1 / ratio, "epochs per second, Ray / plain"),
                "ray_over_plain_run": (ray_run.median / plain_run.median,
                                       f"a whole {n_epochs}-epoch run, start-up included")},
        target="Ray Train overhead at most 10% on an epoch of at least 30 s "
               f"(this epoch: {plain.median:.1f} s)")
