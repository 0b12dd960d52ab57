"""What every benchmark shares: timing, a figure with its spread, the printed table, the corpora."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from emoref.config import RunConfig, apply_overrides, build_config
from emoref.data.corpora import load_manifest
from emoref.data.manifest import Manifest

# Pairs 1, 3 and 4 measure training of the log-Mel CNN on waveforms (the cpu preset's model until
# the openSMILE front end replaced it there); they pin it so their figures stay comparable.
LOGMEL_CNN = ("encoder.kind=logmel_cnn", "train.batch_size=16")

SHARED_EMODB = Path(os.environ.get("EMOREF_EMODB",
                         Path(__file__).resolve().parents[1].parent / "shared" / "data" / "emodb"))


@dataclass
class Figure:
    """One measured quantity: every repeat's value, summarised by median and spread (min-max)."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def text(self) -> str:
        low, high, n = min(self.values), max(self.values), len(self.values)
        spread = f" (min {low:.4g}, max {high:.4g}, n={n})" if n > 1 else " (n=1)"
        return f"{self.name}: median {self.median:.4g} {self.unit}{spread}"


@dataclass
class Result:
    """A pair's outcome: its figures and the ratios it exists to print (name -> value, meaning)."""

    title: str
    setup: str
    figures: list[Figure]
    ratios: dict[str, tuple[float, str]]
    target: str = ""  # the acceptance line this pair answers, if any

    def text(self) -> str:
        lines = [f"== {self.title}", f"   setup: {self.setup}"]
        lines += [f"   {f.text()}" for f in self.figures]
        lines += [f"   RATIO {name} = {value:.3g}  ({meaning})"
                  for name, (value, meaning) in self.ratios.items()]
        if self.target:
            lines.append(f"   target: {self.target}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "setup": self.setup, "target": self.target,
                "figures": [dataclasses.asdict(f) | {"median": f.median} for f in self.figures],
                "ratios": {k: v for k, (v, _) in self.ratios.items()}}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def synthetic(cache_dir: Path, *overrides: str, preset: str = "cpu", method: str | None = None
              ) -> tuple[RunConfig, Manifest]:
    """A config on the built-in synthetic corpus (written as WAV files under `cache_dir`)."""
    config = build_config(preset, [f"corpus.cache_dir={cache_dir}", *overrides], method=method)
    return config, load_manifest(config.corpus)


def emodb(cache_dir: Path, root: Path | None) -> tuple[RunConfig, Manifest] | None:
    """EmoDB as distributed, when its folder exists (`--emodb`, default ../shared/data/emodb)."""
    root = root or SHARED_EMODB
    if not (root / "wav").is_dir():
        return None
    config = build_config("cpu", [f"corpus.cache_dir={cache_dir}", "corpus.name=emodb",
                                  f"corpus.root={root}"], method="epr")
    return config, load_manifest(config.corpus)


def with_values(config: RunConfig, **values: Any) -> RunConfig:
    """`config` with dotted keys set (keyword names use '__' for '.')."""
    return apply_overrides(config, [(k.replace("__", "."), str(v)) for k, v in values.items()])
