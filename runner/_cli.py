"""Shared command-line plumbing: positional corpus/method, key=value overrides, clean failures."""

from __future__ import annotations

import sys
from typing import NoReturn

from emoref.config import ConfigError
from emoref.data.manifest import DataError

# Short forms a user may type; each expands to a full config key.
SHORTHANDS = {"split": "split.kind", "corpus": "corpus.name"}


def expand(overrides: list[str]) -> list[str]:
    out = []
    for text in overrides:
        key, sep, value = text.partition("=")
        out.append(f"{SHORTHANDS.get(key, key)}{sep}{value}" if sep else text)
    return out


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


USER_ERRORS = (ConfigError, DataError)
