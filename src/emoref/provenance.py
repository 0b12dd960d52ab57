"""What ran: the git commit of the code, recorded with every run and checkpoint, and a digest of
weights and training state (cache keys, replicas in step)."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import torch


@functools.cache
def git_sha() -> str:
    """The commit of the checkout this package runs from, "+dirty" when it has local changes, or
    "unknown" outside a git checkout (e.g. an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def digest(value: Any) -> str:
    """A SHA-256 of every tensor and number in a (nested) state, in key order: equal digests on
    two ranks mean bitwise-equal weights, optimiser state and prototypes."""
    hasher = hashlib.sha256()

    def walk(node: Any) -> None:
        if isinstance(node, torch.Tensor):
            hasher.update(str((node.dtype, tuple(node.shape))).encode())
            hasher.update(node.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(node, dict):
            for key in sorted(node, key=str):
                hasher.update(str(key).encode())
                walk(node[key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        else:
            hasher.update(repr(node).encode())
    walk(value)
    return hasher.hexdigest()
