"""One training in its own process, for pair 3.

`python -m bench.worker THREADS GO OUT key=value...`:

Loads the corpus and split, writes OUT with suffix .ready, then waits for the file GO to exist,
trains IPR with THREADS torch threads and writes {"start": ..., "end": ...} (wall-clock seconds)
to OUT. Waiting on GO lets two workers start training together, after both paid their imports."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from emoref.config import build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split
from emoref.methods import ipr
from emoref.record import ListReporter


def main(argv: list[str]) -> None:
    threads, go, out, overrides = int(argv[0]), Path(argv[1]), Path(argv[2]), argv[3:]
    torch.set_num_threads(threads)
    config = build_config("cpu", overrides)
    split = make_split(load_manifest(config.corpus), config.split)
    out.with_suffix(".ready").touch()
    while not go.exists():
        time.sleep(0.01)
    start = time.time()
    ipr.fit(config, split, ListReporter())
    out.write_text(json.dumps({"start": start, "end": time.time()}))


if __name__ == "__main__":
    main(sys.argv[1:])
