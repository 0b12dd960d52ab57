"""Shared command-line plumbing: positional corpus/method, key=value overrides, clean failures."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from emoref.config import PRESETS, ConfigError, RunConfig, build_config, field_type
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

REPO = Path(__file__).resolve().parents[1]

# Short forms a user may type; each expands to a full config key.
SHORTHANDS = {"split": "split.kind", "corpus": "corpus.name"}


def expand(overrides: list[str]) -> list[str]:
    out = []
    for text in overrides:
        key, sep, value = text.partition("=")
        out.append(f"{SHORTHANDS.get(key, key)}{sep}{value}" if sep else text)
    return out


# Lines of an experiment file that are not config keys: the preset under the file's values, and
# (runner.tune) the search space. A command-line --preset or --space wins over the file's.
FILE_OPTIONS = ("preset", "space")


@dataclass(frozen=True)
class ConfigFile:
    """An experiment file (experiments/*.txt, a sweep's best.txt, a seed's config.txt): key=value
    lines, '#' comments, and the FILE_OPTIONS lines."""

    path: Path
    overrides: tuple[str, ...] = ()
    lines: tuple[tuple[str, int], ...] = ()  # (key, line number) of each override
    preset: str | None = None
    space: Path | None = None

    def where(self, message: str) -> str:
        """`message` prefixed with file:line when it is about a key this file sets."""
        for key, number in sorted(self.lines, key=lambda kv: -len(kv[0])):
            if message.startswith((f"{key}:", f"unknown config key {key!r}", f"config key {key!r}")):
                return f"{self.path}:{number}: {message}"
        return f"{self.path}: {message}"


def read_config_file(path: Path | None) -> ConfigFile | None:
    """The file's lines, each key checked against the config (exits 2 naming file:line, with the
    closest key when one is unknown); None for None."""
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as err:
        fail(f"--config {path}: cannot read it ({err.strerror})")
    options: dict[str, str] = {}
    overrides, lines = [], []
    for number, raw in enumerate(text.splitlines(), 1):
        pair = raw.split("#", 1)[0].strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key = SHORTHANDS.get(key.strip(), key.strip())
        if not sep or not key:
            fail(f"{path}:{number}: expected key=value, got {pair!r}")
        if key in FILE_OPTIONS:
            options[key] = value.strip()
            continue
        try:
            field_type(RunConfig(), key)
        except ConfigError as err:
            fail(f"{path}:{number}: {err}")
        overrides.append(f"{key}={value.strip()}")
        lines.append((key, number))
    if "preset" in options and options["preset"] not in PRESETS:
        fail(f"{path}: preset: expected one of {sorted(PRESETS)}, got {options['preset']!r}")
    space = options.get("space")
    if space is not None:  # relative to the repository, as search_spaces/ is
        space = Path(space) if Path(space).is_absolute() else REPO / space
        if not space.is_file():
            fail(f"{path}: space: no search-space file {space}")
    return ConfigFile(path, tuple(overrides), tuple(lines), options.get("preset"), space)


def setting_source(config: Path | None, preset: str) -> str:
    """Where a setting came from, for messages: the experiment file, else the preset."""
    return f"{config} (preset {preset})" if config else f"--preset {preset}"


def given_keys(file: ConfigFile | None, cli: list[str]) -> set[str]:
    """The keys the experiment file and the command line set (not the preset's defaults)."""
    return {k for k, _ in (file.lines if file else ())} | {o.split("=", 1)[0] for o in cli}


def build_checked(preset: str, file: ConfigFile | None, cli: list[str],
                  method: str | None) -> RunConfig:
    """build_config over the file's overrides, then the command line's (which win); an error
    about a key the file sets names file:line. Raises ConfigError."""
    try:
        return build_config(preset, [*(file.overrides if file else ()), *cli], method=method)
    except ConfigError as err:
        cli_keys = {o.split("=", 1)[0] for o in cli}
        if file is None or any(str(err).startswith(f"{k}:") for k in cli_keys):
            raise
        raise ConfigError(file.where(str(err))) from None


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
