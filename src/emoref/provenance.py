"""What ran: the git commit of the code, recorded with every run and checkpoint."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


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
