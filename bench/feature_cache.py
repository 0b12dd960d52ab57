"""Pair 2: a frozen-encoder sweep (10 configurations x 5 seeds of IPR) reading the embedding cache
vs the same sweep encoding every utterance again whenever a batch needs it (encoder.cache=false).

Identical work: the same configurations (drawn once from search_spaces/ipr.yaml), seeds, split and
frozen encoder; both give the same numbers (tests/data/test_features.py checks it). The cached
sweep starts from an empty feature cache, so building it (1 + K views per utterance) is part of its
time. The sweep's trainings run one after another in this process (2 torch threads): what is
compared is the training work, not Ray Tune's or MLflow's per-trial costs (pairs 1 and 3).

The encoder is wav2vec2's architecture at the "tiny" size with random weights (no download); a
frozen wav2vec2-base costs about 20x more per utterance on a CPU, which only widens the gap."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import torch

from bench.common import Figure, Result, synthetic, timed, with_values
from emoref.data.splits import make_split
from emoref.methods import ipr
from emoref.record import ListReporter
from emoref.sweep import Range, apply_params, read_space

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "ipr.yaml"
COMMON = ("encoder.kind=wav2vec2", "encoder.size=tiny", "encoder.freeze=true", "encoder.views=8",
          "corpus.synthetic.min_duration=1.0", "corpus.synthetic.max_duration=1.5",
          "audio.max_seconds=1.5", "train.epochs=3", "train.warmup_epochs=1",
          "train.batch_size=8", "head.hidden=64", "corpus.synthetic.n_utterances=48",
          # A corpus this small needs wider bands to put every class in D1 and a few in dev.
          "split.d1_min_agreement=0.9", "split.d2_min_agreement=0.6", "split.dev_fraction=0.2")
FULL = COMMON
QUICK = (*COMMON, "encoder.views=2", "train.epochs=2")


def sample(space: dict[str, Range], n: int, rng: np.random.Generator) -> list[dict]:
    """`n` points drawn uniformly (log-uniformly for log ranges) from the space."""
    points = []
    for _ in range(n):
        point = {}
        for key, r in space.items():
            if r.kind == "choice":
                point[key] = r.values[int(rng.integers(len(r.values)))]
            elif r.kind in ("int", "logint"):
                point[key] = int(rng.integers(r.values[0], r.values[1] + 1))
            elif r.kind == "loguniform":
                point[key] = float(math.exp(rng.uniform(*np.log(r.values))))
            else:
                point[key] = float(rng.uniform(*r.values))
        points.append(point)
    return points


def run(work: Path, quick: bool, repeats: int) -> Result:
    n_configs, n_seeds = (1, 2) if quick else (10, 5)  # quick: a cache built, then read once
    cache = work / "cache"
    base, manifest = synthetic(cache, *(QUICK if quick else FULL))
    split = make_split(manifest, base.split)
    space = {k: v for k, v in read_space(SPACE, "ipr").items() if k != "train.warmup_epochs"}
    configs = [apply_params(base, p) for p in sample(space, n_configs, np.random.default_rng(0))]
    torch.set_num_threads(2)
    ipr.fit(with_values(base, encoder__freeze=False, train__epochs=1, train__warmup_epochs=0,
                        train__max_steps_per_epoch=1), split, ListReporter())  # decode the audio

    def sweep(cached: bool, per_training: Figure) -> None:
        if cached:  # the cached sweep starts empty: building the cache is part of its time
            shutil.rmtree(cache / "features", ignore_errors=True)
        for config in configs:
            for seed in range(n_seeds):
                run_config = with_values(config, seed=seed, encoder__cache=cached)
                per_training.values.append(
                    timed(lambda: ipr.fit(run_config, split, ListReporter()))[0])

    with_cache, again = Figure("sweep, embedding cache", "s"), Figure("sweep, recomputing", "s")
    train_cached = Figure("one training, cache (the first builds it)", "s")
    train_again = Figure("one training, recomputing", "s")
    for _ in range(repeats):
        with_cache.values.append(timed(lambda: sweep(True, train_cached))[0])
        again.values.append(timed(lambda: sweep(False, train_again))[0])
    ratio = again.median / with_cache.median
    return Result(
        title=f"2. Frozen-encoder sweep ({n_configs} configurations x {n_seeds} seeds): "
              "embedding cache vs recomputing",
        setup=f"IPR, frozen wav2vec2 (tiny architecture), synthetic corpus of "
              f"{len(manifest.utterances)} utterances, {base.train.epochs} epochs, "
              f"K={base.encoder.views} augmented views, cold cache at the start, 2 threads",
        figures=[with_cache, again, train_cached, train_again],
        ratios={"recompute_over_cache_time": (ratio, "wall time of the sweep")},
        target="the cached 10 x 5 sweep at least 5x faster than recomputing")
