"""What ran: the git commit of the code, recorded with every run and checkpoint; a digest of the
package's sources, which keys resumable runs; and a digest of weights and training state (cache
keys, replicas in step)."""

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


@functools.cache
def code_digest(package: Path | None = None) -> str:
    """SHA-256 of every Python source of the package (relative path and bytes, in path order):
    what a resumable run is keyed by. Unlike the commit, it stays the same when only docs,
    tests or scripts change, so a long run interrupted across such commits resumes; any change to
    the code that trains changes it, and the run starts afresh. Installed wheels have it too."""
    package = Path(__file__).resolve().parent if package is None else package
    hasher = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        hasher.update(path.relative_to(package).as_posix().encode() + b"\0")
        hasher.update(path.read_bytes() + b"\0")
    return hasher.hexdigest()


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
