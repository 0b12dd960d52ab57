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
    import numpy as np
    from torch.nn import functional as F

    from emoref.data.features import logmel_frames
    from emoref.data.segments import bank_from_frames
    from emoref.methods import epr
    from emoref.methods.common import label_array

    utterances = load_manifest(config.corpus).utterances
    bank = bank_from_frames(logmel_frames(utterances, config), config.audio)
    labels = label_array(utterances, sorted({u.label for u in utterances}))
    order = np.random.default_rng(config.seed).permutation(len(bank.starts))
    cut = int(0.9 * len(order))
    fit_segs, val_segs = np.sort(order[:cut]), np.sort(order[cut:])
    targets = F.one_hot(torch.from_numpy(labels[bank.owner]), int(labels.max()) + 1).float()
    norm = epr.normaliser(bank, fit_segs)
    network = epr.new_network(config, int(labels.max()) + 1, config.seed)
    return lambda: epr.train_network(network, bank, fit_segs, val_segs, targets,
                                     labels[bank.owner], norm, config, lambda *a: None)


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
