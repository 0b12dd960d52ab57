"""One training in its own process, for pairs 3 and 9.

`python -m bench.worker THREADS GO OUT WHAT key=value...`:

Loads the corpus and split (WHAT=ipr) or the log-Mel segments (WHAT=epr_network), writes OUT with
suffix .ready, then waits for the file GO to exist, trains with THREADS torch threads and writes
{"start": ..., "end": ...} (wall-clock seconds) to OUT: IPR's whole fit, or one EPR stage's
network (configuration A at the config's width, epr.max_epochs epochs over 90% of the segments,
as pair 5). Waiting on GO lets two workers start training together, after both paid their
imports."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from emoref.config import RunConfig, build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split
from emoref.methods import ipr
from emoref.record import ListReporter


def epr_network(config: RunConfig) -> Callable[[], None]:
    """One EPR stage network's training, ready to start (its data loaded)."""
    from bench.epr_segments import StageData
    from emoref.methods import epr

    stage = StageData(load_manifest(config.corpus).utterances, config, config.seed)
    network = epr.new_network(config, stage.n_classes, config.seed)
    return lambda: stage.train(network, config)


def main(argv: list[str]) -> None:
    threads, go, out, what, overrides = int(argv[0]), Path(argv[1]), Path(argv[2]), argv[3], argv[4:]
    torch.set_num_threads(threads)
    if what == "ipr":
        config = build_config("cpu", overrides)
        split = make_split(load_manifest(config.corpus), config.split)
        work = lambda: ipr.fit(config, split, ListReporter())  # noqa: E731
    elif what == "epr_network":
        work = epr_network(build_config("cpu", overrides, method="epr"))
    else:
        raise SystemExit(f"bench.worker: WHAT is ipr or epr_network, not {what!r}")
    out.with_suffix(".ready").touch()
    while not go.exists():
        time.sleep(0.01)
    start = time.time()
    work()
    out.write_text(json.dumps({"start": start, "end": time.time()}))


if __name__ == "__main__":
    main(sys.argv[1:])
