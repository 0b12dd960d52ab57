"""Shared command-line plumbing: positional corpus/method, key=value overrides, clean failures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from emoref.config import ConfigError, RunConfig
from emoref.data.manifest import DataError

# Both commands' --help ends with this: EPR's protocols differ in what they cost.
EPR_HELP = ("EPR protocols (epr.protocol): paper, the default, cross-fits every emotion profile "
            "over the folds, as the paper does; nested is leak-free (each fold's training folds "
            "cross-fit their own profiles) and trains epr.inner_folds + 1 times the networks "
            "(4x at the default 3); in_sample lets each fold's chain learn from its own fitted "
            "outputs. Stage 1 does not depend on the protocol or the kind: its networks are stored "
            "and a seed's other rows load them (epr.reuse_stage1). epr.forest_fit=fold_network "
            "fits each fold's forest on its own network's profiles of the training utterances "
            "instead of the protocol's (not the paper's decision; one more inference pass per "
            "network).")

# Short forms a user may type; each expands to a full config key.
SHORTHANDS = {"split": "split.kind", "corpus": "corpus.name"}


def expand(overrides: list[str]) -> list[str]:
    out = []
    for text in overrides:
        key, sep, value = text.partition("=")
        out.append(f"{SHORTHANDS.get(key, key)}{sep}{value}" if sep else text)
    return out


def read_overrides(path: Path | None) -> list[str]:
    """key=value lines of a config file (blank lines and '#' comments skipped); [] for None."""
    if path is None:
        return []
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        fail(f"--config {path}: cannot read it ({err.strerror})")
    pairs = [line.split("#", 1)[0].strip() for line in lines]
    for number, pair in enumerate(pairs, 1):
        if pair and "=" not in pair:
            fail(f"--config {path}, line {number}: expected key=value, got {pair!r}")
    return [p for p in pairs if p]


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


USER_ERRORS = (ConfigError, DataError)


def in_process_threads(config: RunConfig) -> None:
    """A run without Ray Train workers (workers=0: a sweep's trial, or runner.train) computes with
    int(dist.cpus_per_worker) torch threads, at least 1. The thread count changes the order of
    floating-point sums, which training amplifies; one rule for both commands is what lets
    `runner.train --config best.txt` rerun a sweep's seeds bit for bit."""
    if not config.workers:
        import torch
        torch.set_num_threads(max(1, int(config.dist.cpus_per_worker)))
