"""Pair 7: openSMILE extraction as Ray tasks over every core vs in one process, and reading the
cache back.

The same (utterance, view) items, ComParE_2016 functionals of the clean audio and K = 4 augmented
views (the cpu preset), extracted into an empty feature cache (a) in this process, one item after
another, and (b) by `opensmile_features.fill` as Ray tasks on a private Ray instance with every
core; then (c) what a trial does afterwards: reading every value from the cache."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from bench.common import Figure, Result, emodb, synthetic, timed
from emoref.data import opensmile_features as osf
from emoref.data.features import load_waves


def run(work: Path, quick: bool, repeats: int, emodb_root: Path | None = None) -> Result:
    import ray

    cache = work / "cache"
    found = None if quick else emodb(cache, emodb_root)
    if found:
        config, manifest = found
        corpus = "EmoDB"
    else:
        config, manifest = synthetic(cache, *(("corpus.synthetic.n_utterances=16",) if quick
                                              else ()))
        corpus = "synthetic corpus"
    utterances = manifest.utterances[:4] if quick else manifest.utterances
    load_waves(utterances, config)  # decoding is not what is compared
    base = osf.Extraction.of(config, dataclasses.replace(
        config.encoder, feature_set="ComParE_2016", level="functionals"), views=4)
    items = len(utterances) * (1 + base.views)
    local, tasks = Figure("one process", "items/s"), Figure("Ray tasks", "items/s")
    reading = Figure("reading the cache", "items/s")
    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, address="local", log_to_driver=False)
    try:
        for repeat in range(repeats):
            for figure, use_ray in ((local, False), (tasks, True)):
                job = dataclasses.replace(base, cache_dir=str(work / f"out{repeat}{use_ray}"))
                seconds, errors = timed(lambda: osf.fill(utterances, job, use_ray=use_ray,
                                                         echo=False))
                assert not errors, list(errors.values())[:3]
                figure.values.append(items / seconds)
            seconds, _ = timed(lambda: [osf.read(utterances, job, view)
                                        for view in range(1 + job.views)])
            reading.values.append(items / seconds)
            for use_ray in (False, True):
                shutil.rmtree(work / f"out{repeat}{use_ray}", ignore_errors=True)
    finally:
        ray.shutdown()
    return Result(
        title="7. openSMILE extraction: Ray tasks on every core vs one process; cache reads",
        setup=f"{corpus}, {len(utterances)} utterances x (clean + 4 augmented views) = {items} "
              f"items, ComParE_2016 functionals, {cores} cores",
        figures=[local, tasks, reading],
        ratios={"ray_over_one_process": (tasks.median / local.median, "items per second"),
                "cache_over_extraction": (reading.median / tasks.median, "items per second")},
        target=f"Ray tasks close to {cores}x one process (the work is per file, independent)")
