"""Pair 3: two trials at once (1 core each) vs the same two one after the other.

Two sequential baselines, both printed. (a) The same two trials, 1 thread each, one after the
other: the ratio says whether concurrent trials interfere (thread oversubscription, a shared
lock, memory bandwidth); 2.0 is perfect, and this is the acceptance figure. (b) The two one after
the other with 2 threads each: the choice a sweep on a 2-core machine makes between
--cpus-per-trial 1 (Tune runs two trials side by side) and 2 (one at a time with both cores);
this ratio also depends on how well one training uses a second thread, a property of the model,
not of the runner. Each training runs in its own process (`bench.worker`), as a Tune trial does;
timing starts once the processes have imported and loaded their data. Two different seeds of the
same IPR configuration."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import LOGMEL_CNN, Figure, Result, synthetic
from emoref.data.features import load_waves

FULL = (*LOGMEL_CNN, "corpus.synthetic.n_utterances=240", "train.epochs=2",
        "train.warmup_epochs=1")
QUICK = (*LOGMEL_CNN, "corpus.synthetic.n_utterances=64", "corpus.synthetic.max_duration=1.5",
         "audio.max_seconds=1.5", "train.epochs=2", "train.warmup_epochs=1")


def trainings(work: Path, tag: str, threads: int, seeds: list[int], overrides: list[str],
              what: str = "ipr") -> list[dict]:
    """Start one worker per seed, release them together, wait; their start and end times."""
    go = work / f"go-{tag}"
    procs, outs = [], []
    for seed in seeds:
        out = work / f"{tag}-seed{seed}.json"
        outs.append(out)
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.worker", str(threads), str(go),
                                       str(out), what, f"seed={seed}", *overrides]))
    while not all(out.with_suffix(".ready").exists() for out in outs):  # imports and data done
        if any(proc.poll() not in (None, 0) for proc in procs):
            raise RuntimeError("bench.worker failed before training")
        time.sleep(0.05)
    go.touch()
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"bench.worker failed (exit {proc.returncode})")
    return [json.loads(out.read_text()) for out in outs]


def run(work: Path, quick: bool, repeats: int) -> Result:
    cache = work / "cache"
    overrides = [f"corpus.cache_dir={cache}", *(QUICK if quick else FULL)]
    config, manifest = synthetic(cache, *(QUICK if quick else FULL))  # written once, up front
    load_waves(manifest.utterances, config)  # decoded once, up front
    side = Figure("two trials at once, 1 thread each", "s")
    single = Figure("the same two one after the other, 1 thread each", "s")
    apart = Figure("the two one after the other, 2 threads each", "s")
    # --quick leaves out the 2-thread baseline: the same code with another thread count, and two
    # more processes to start (the quick run checks that the pair runs).
    baselines = ((1, single),) if quick else ((1, single), (2, apart))
    for repeat in range(repeats):
        times = trainings(work, f"side{repeat}", 1, [0, 1], overrides)
        side.values.append(max(t["end"] for t in times) - min(t["start"] for t in times))
        for threads, figure in baselines:
            total = 0.0
            for seed in (0, 1):
                (one,) = trainings(work, f"apart{repeat}-{threads}-{seed}", threads, [seed],
                                   overrides)
                total += one["end"] - one["start"]
            figure.values.append(total)
    ratios = {"throughput_concurrent_over_sequential": (
        single.median / side.median,
        "trainings per second, the same 1-thread trials; 2.0 = no interference")}
    if apart.values:
        ratios["throughput_concurrent_over_sequential_2_threads"] = (
            apart.median / side.median, "trainings per second, against one at a time on both cores")
    return Result(
        title="3. Two concurrent trials vs the same two sequentially, on 2 cores",
        setup="IPR, cpu preset (log-Mel CNN), synthetic corpus, "
              f"{'quick' if quick else '240 utterances, 2 epochs'}; one process per training",
        figures=[f for f in (side, single, apart) if f.values],
        ratios=ratios,
        target="two concurrent trials reach at least 1.6x the sequential throughput on 2 cores")
