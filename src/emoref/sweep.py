"""Hyperparameter sweeps as data: search spaces, the sweep folder, and the sweep report.

Nothing here imports Ray Tune or Optuna (runner/tune.py turns a space into Tune domains and runs
it); this module reads and checks spaces, and reads a sweep folder back into tables, so a space is
validated before any cluster resource is used and a report can be rebuilt from disk alone.

A search space is a YAML mapping from config field paths to ranges:

    ipr.gamma: {uniform: [0.9, 0.999]}        # low, high
    ipr.tau: {loguniform: [0.02, 0.5]}        # low > 0
    train.warmup_epochs: {int: [2, 10]}       # inclusive; logint samples on a log scale
    ipr.prototype_update: {choice: [agree, soft]}

A file may instead hold one such mapping per method (search_spaces/baselines.yaml).

A sweep folder (written by runner.tune) holds:
    sweep.json                    what was asked: method, preset, fixed overrides, space, seeds
    trials/<trial>/params.json    the values Optuna chose for that configuration
    trials/<trial>/seed<k>/       one seed, laid out as runner.train writes it (epochs.csv, ...)
    baselines/<method>/seed<k>/   IPR sweeps: the baselines at the best configuration, same seeds
    report.md, report.csv         the report; best.txt: the best configuration for runner.train
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from emoref.config import (ConfigError, RunConfig, apply_overrides, as_overrides, field_type,
                           flatten, value_text)
from emoref.provenance import code_digest, git_sha
from emoref.record import finished_seeds, outcome
from emoref.summary import mean_std

KINDS = ("uniform", "loguniform", "int", "logint", "choice")


@dataclass(frozen=True)
class Range:
    """One searched field: `kind` from KINDS; `values` is (low, high), or the choices."""

    kind: str
    values: tuple

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.values[0] <= value <= self.values[1]

    def as_yaml(self) -> dict[str, list]:
        return {self.kind: list(self.values)}


def parse_space(data: Any, source: str) -> dict[str, Range]:
    """{key: Range} from a loaded YAML mapping; a malformed entry raises ConfigError naming it."""
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"search space {source}: expected a mapping of config keys to ranges, "
                          f"e.g. 'ipr.gamma: {{uniform: [0.9, 0.999]}}', got {data!r}")
    space = {}
    for key, spec in data.items():
        where = f"search space {source}: {key}"
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise ConfigError(f"{where}: expected one of {{{', '.join(KINDS)}}} with its values, "
                              f"e.g. {{uniform: [0.1, 0.9]}}, got {spec!r}")
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {kind} needs a list, got {values!r}")
        if kind == "choice":
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"{where}: choice has a repeated value: {values!r}")
        else:
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if len(values) != 2 or not numeric or not values[0] < values[1]:
                raise ConfigError(f"{where}: {kind} needs [low, high] numbers with low < high, "
                                  f"got {values!r}")
            if kind in ("int", "logint") and not all(isinstance(v, int) for v in values):
                raise ConfigError(f"{where}: {kind} needs integer bounds, got {values!r}")
            if kind in ("loguniform", "logint") and values[0] <= 0:
                raise ConfigError(f"{where}: {kind} needs low > 0, got {values!r}")
        space[str(key)] = Range(kind, tuple(values))
    return space


def read_space(path: str | Path, method: str) -> dict[str, Range]:
    """The space in a YAML file: the whole file, or its `method` section when it has one per
    method. A missing file or section, or a malformed entry, raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search space {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"search space {path}: not valid YAML ({err})") from None
    if isinstance(data, dict) and data and all(isinstance(v, dict) and not (set(v) & set(KINDS))
                                               for v in data.values()):
        if method not in data:
            raise ConfigError(f"search space {path}: no section for {method!r}; it has "
                              f"{sorted(data)}")
        return parse_space(data[method], f"{path} [{method}]")
    return parse_space(data, str(path))


def check_space(space: Mapping[str, Range], base: RunConfig, source: str = "search space"
                ) -> None:
    """Every key names a config field of a type its range can set, and every end point or choice
    gives a valid config on top of `base`; otherwise ConfigError naming the key."""
    for key, rng in space.items():
        try:
            kind = field_type(base, key)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        wanted = {"uniform": float, "loguniform": float, "int": int, "logint": int}.get(rng.kind)
        if wanted is float and kind is not float or wanted is int and kind is not int:
            raise ConfigError(f"{source}: {key}: a {rng.kind} range cannot set a field of type "
                              f"{getattr(kind, '__name__', kind)}; use "
                              f"{'int' if kind is int else 'choice'}")
        for value in rng.values:
            try:
                apply_overrides(base, [(key, value_text(value))])
            except ConfigError as err:
                raise ConfigError(f"{source}: {key}={value_text(value)} is not a valid value ({err})"
                                  ) from None


def apply_params(base: RunConfig, params: Mapping[str, Any]) -> RunConfig:
    """`base` with a configuration's sampled values set."""
    return apply_overrides(base, [(k, value_text(v)) for k, v in params.items()])


SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def searched(given: Path | None, method: str, base: RunConfig, fixed: set[str]
             ) -> dict[str, Range]:
    """The space a sweep of `method` searches: `given`, else search_spaces/<method>.yaml, else the
    method's section of search_spaces/baselines.yaml; minus the keys `fixed` on the command line;
    checked against `base`. ConfigError naming the file and key on bad input."""
    if given:
        path = Path(given)
    elif (SPACES / f"{method}.yaml").exists():
        path = SPACES / f"{method}.yaml"
    else:
        path = SPACES / "baselines.yaml"
    space = {k: v for k, v in read_space(path, method).items() if k not in fixed}
    if not space:
        raise ConfigError(f"search space {path}: every key is fixed on the command line")
    check_space(space, base, f"search space {path}")
    return space


def caveat(method: str, base: RunConfig, space: Mapping[str, Any]) -> str:
    """What a reader of an EPR sweep must know about its objective ("" when nothing): searching
    epr.protocol ranks protocols with different leaks on one objective, and under `paper` the
    objective itself is not free of the test folds."""
    if method != "epr":
        return ""
    if "epr.protocol" in space:
        return ("epr.protocol is searched: configurations under different protocols share one "
                "objective, though paper's profiles carry test-fold labels and nested's do not; "
                "compare within one protocol (its column below).")
    if base.epr.protocol == "paper":
        return ("epr.protocol=paper, as the paper: the networks that profile a fold's training "
                "utterances trained on its test fold, labels included, so dev UA is not free of "
                "the test folds; epr.protocol=nested gives a leak-free objective.")
    return ""


def start_point(space: Mapping[str, Range], base: RunConfig) -> dict[str, Any] | None:
    """The base config's own values of the searched keys (for the cpu and paper presets, the
    papers' settings), when every one lies in its range: the first configuration a sweep tries,
    so the report always shows the unsearched default beside what the search found."""
    values = flatten(base)
    point = {key: values[key] for key in space}
    return point if all(space[k].contains(v) for k, v in point.items()) else None


# ----------------------------------------------------------------------------------------------------
# Reading a sweep folder back
# ----------------------------------------------------------------------------------------------------

def objective_text(method: str) -> str:
    """The objective in words, for the sweep record and its report."""
    where = ("the validation utterances held out of each training fold (mean over folds, last "
             "refinery stage)" if method == "epr" else "the labelled dev part of D2 at the "
             "dev-selected epoch")
    return f"mean over seeds of UA on {where}"


def sweep_folder(root: Path, name: str | None, prefix: str, resume: bool) -> Path:
    """root/name; else, resuming, the newest sweep root/<prefix>*; else a new root/<prefix><time>.
    ConfigError when resuming finds none."""
    root = Path(root).resolve()
    if name:
        return root / name
    if resume:
        found = sorted((p for p in root.glob(prefix + "*") if (p / "sweep.json").exists()),
                       key=lambda p: p.stat().st_mtime)
        if not found:
            raise ConfigError(f"--resume: no sweep {prefix}* under {root}")
        return found[-1]
    return root / (prefix + time.strftime("%Y%m%d-%H%M%S"))


def new_record(folder: Path, method: str, base: RunConfig, preset: str, overrides: Sequence[str],
               space: Mapping[str, Range], seeds: int, num_samples: int, scheduler: str,
               search_seed: int, split_hash: str, options: Mapping[str, Any] | None = None,
               config_file: str | None = None) -> dict[str, Any]:
    """Writes and returns sweep.json: what was asked (the overrides of the experiment file and
    the command line, in the order applied; the runner's options), with the resolved base
    config, the split's hash and the code's commit (runner.tune --resume reads it back; so does
    the report)."""
    record = {"method": method, "corpus": base.corpus.name, "preset": preset,
              "overrides": list(overrides), "space": {k: r.as_yaml() for k, r in space.items()},
              "seeds": seeds, "num_samples": num_samples, "objective": objective_text(method),
              "scheduler": scheduler, "search_seed": search_seed, "split_hash": split_hash,
              "git_sha": git_sha(), "code_digest": code_digest(),
              "base_config": as_overrides(base),
              "options": dict(options or {}), "config_file": config_file,
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    (folder / "sweep.json").write_text(json.dumps(record, indent=2))
    return record


def read_record(folder: Path) -> dict[str, Any]:
    """A sweep folder's sweep.json; ConfigError when the folder holds none."""
    path = Path(folder) / "sweep.json"
    if not path.is_file():
        raise ConfigError(f"{folder}: not a sweep folder (no sweep.json; runner.tune writes it)")
    return json.loads(path.read_text())


@dataclass
class Configuration:
    """One point of the space and its finished seeds."""

    trial: str
    params: dict[str, Any]
    seeds: dict[int, dict[str, float]]  # seed -> outcome()

    def stat(self, key: str) -> tuple[float, float]:
        return mean_std([row[key] for row in self.seeds.values()])


def read_sweep(folder: str | Path) -> tuple[dict[str, Any], list[Configuration]]:
    """(sweep.json, every configuration with at least one finished seed), best objective first
    among configurations that finished all their seeds, then the unfinished ones."""
    folder = Path(folder)
    record = read_record(folder)
    configs = []
    for trial_dir in sorted((folder / "trials").glob("*")):
        params_file = trial_dir / "params.json"
        seeds = finished_seeds(trial_dir)
        if params_file.exists() and seeds:
            configs.append(Configuration(trial_dir.name, json.loads(params_file.read_text()),
                                         {s: outcome(record["method"], d)
                                          for s, d in seeds.items()}))
    want = record["seeds"]
    configs.sort(key=lambda c: (len(c.seeds) < want, -_nan_low(c.stat("dev")[0]), c.trial))
    return record, configs


# What Optuna is told for a configuration whose seed diverged: below any UA (which lies in [0, 1]).
FAILED_SCORE = -1.0


def trial_report(done: Mapping[int, Mapping[str, float]]) -> dict[str, float]:
    """What a trial reports after each seed: the objective (mean dev UA over its finished seeds)
    and mean/std of the test numbers, for Tune's table and ASHA; Optuna records the last one."""
    out: dict[str, float] = {"seeds_done": float(len(done))}
    for key in ("dev", "test_wa", "test_ua", "test_f1"):
        mean, std = mean_std([row[key] for row in done.values()])
        out[f"{key}_mean"], out[f"{key}_std"] = mean, std
    out["objective"] = out["dev_mean"]
    return out


def _nan_low(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def baseline_outcomes(folder: Path) -> dict[str, dict[int, dict[str, float]]]:
    """{baseline method: {seed: outcome}} from <sweep>/baselines."""
    out = {}
    for method_dir in sorted((folder / "baselines").glob("*")):
        seeds = finished_seeds(method_dir)
        if seeds:
            out[method_dir.name] = {s: outcome(method_dir.name, d) for s, d in seeds.items()}
    return out


# The classical reference rows' names (every table carries them).
REFERENCES = ("reference", "reference_supervised", "reference_cv")
