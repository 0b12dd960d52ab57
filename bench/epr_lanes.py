"""Pair 9: EPR stage networks two at a time with 1 thread each vs one at a time with 2 threads.

The question behind `studies/epr.sh`'s lanes: on 2 cores, is it faster to train one seed's
networks with both cores (one Ray Train worker, 2 threads: the setting of the EPR tables before
the study) or two seeds side by side with one core each? The cpu preset's VGG (configuration A at
width 0.125, 32 x 64 inputs, batch 128) is small, and a second thread speeds up its convolutions
by much less than 2x. Each network trains in its own process (`bench.worker epr_network`), on
EmoDB's segments at the cpu preset's hop (the synthetic corpus when EmoDB is absent), for
`epr.max_epochs=2`; timing starts once both processes have imported and loaded their data."""

from __future__ import annotations

from pathlib import Path

from bench.common import SHARED_EMODB, Figure, Result
from bench.concurrency import trainings


def run(work: Path, quick: bool, repeats: int, emodb_root: Path | None = None) -> Result:
    root = emodb_root or SHARED_EMODB
    found = not quick and (root / "wav").is_dir()
    corpus = ["corpus.name=emodb", f"corpus.root={root}"] if found else [
        "corpus.synthetic.n_utterances=" + ("32" if quick else "240")]
    overrides = [f"corpus.cache_dir={work / 'cache'}", *corpus,
                 f"epr.max_epochs={1 if quick else 2}"]
    trainings(work, "warm", 1, [0], overrides, "epr_network")  # fills the log-Mel cache once
    side = Figure("two networks at once, 1 thread each", "s")
    apart = Figure("the same two one after the other, 2 threads each", "s")
    for repeat in range(repeats):
        times = trainings(work, f"side{repeat}", 1, [0, 1], overrides, "epr_network")
        side.values.append(max(t["end"] for t in times) - min(t["start"] for t in times))
        total = 0.0
        for seed in (0, 1):
            (one,) = trainings(work, f"apart{repeat}-{seed}", 2, [seed], overrides,
                               "epr_network")
            total += one["end"] - one["start"]
        apart.values.append(total)
    return Result(
        title="9. EPR networks: two at once with 1 thread each vs one at a time with 2 threads",
        setup=f"{'EmoDB' if found else 'synthetic corpus'}, cpu preset VGG (A, width 0.125), "
              f"{'1 epoch, tiny' if quick else '2 epochs'}; one process per network",
        figures=[side, apart],
        ratios={"throughput_two_lanes_over_one": (
            apart.median / side.median,
            "networks per second, side by side at 1 thread over one at a time at 2 threads")})
