"""A seed's record: what a method reports while it trains, the Result it returns, and the seed
folder written from them and read back (by runner.report, the sweep report and MLflow logging).

A seed folder (runner.train --out <dir>/<method>/seed<k>, or a sweep's trials/<trial>/seed<k>):
    epochs.csv       every reported metric, one row per report
    table.csv        IPR family: D2's soft labels, pseudo label, confidence (the annotation output);
                     EPR: every utterance's prediction per stage
    checkpoint.pt    IPR family: dev-selected weights (+ prototypes), config, git SHA, split hash
    confusion.json   the reported confusion matrices as numbers
    figures/*.png    agreement curves, prototype similarity, confusion matrices, EPR profiles
    provenance.txt   the git commit and the package's code digest (provenance.py) that ran
    config.txt       the resolved config as key=value, written last: a folder with it is finished

How a method's record reads (which epoch is reported, where its test numbers are, which figures it
draws) is one row of READINGS, not a branch on the method's name.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from emoref.config import RunConfig, as_overrides
from emoref.provenance import code_digest, git_sha
from emoref.summary import seed_metrics, write_csv

OBJECTIVE = "dev_ua"  # what selects an epoch and what Optuna maximises. Never D3, never a test fold.


class Reporter(Protocol):
    """Receives one call per epoch: scalar metrics plus structured values (matrices, tables).
    `state`, when given, returns the method's resumable training state; a reporter that
    checkpoints (Ray Train's, see emoref.ray_train) saves it, the others ignore it."""

    def __call__(self, epoch: int, metrics: dict[str, float], extras: dict[str, Any],
                 state: Callable[[], dict[str, Any]] | None = None) -> None: ...


@dataclass
class ListReporter:
    """Keeps every report in memory; `live`, when given, also receives each row as it comes
    (runner.tune sends it to MLflow, so curves grow while the seed trains)."""

    rows: list[dict[str, float]] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    live: Callable[[dict[str, float]], None] | None = None

    def __call__(self, epoch: int, metrics: dict[str, float], extras: dict[str, Any],
                 state: Callable[[], dict[str, Any]] | None = None) -> None:
        self.rows.append({"epoch": epoch, **metrics})
        self.extras.append(extras)
        if self.live is not None:
            self.live(self.rows[-1])


@dataclass(frozen=True)
class Result:
    method: str
    final: dict[str, float]  # metrics of the last epoch
    selected_epoch: int  # epoch with the best dev UA (dev only: D3 never selects)
    selected: dict[str, float]  # metrics of that epoch
    # One row per utterance: IPR family, D2's soft labels, pseudo label, confidence (the annotation
    # output); EPR, each stage's prediction for every utterance (from networks that never saw it).
    table: list[dict[str, Any]]
    # The model (and prototypes) of the selected epoch with everything needed to use them again
    # (methods.common.checkpoint). Not compared or printed.
    checkpoint: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Reading:
    """How one method's record reads."""

    selection: str  # "dev": the epoch with the best dev UA; "last": the last report (EPR's stages)
    test: str  # the test metrics' prefix: "d3", "cv" (pooled test folds) or "stage" (+ last depth)
    figures: str  # "curves" (IPR family), "profiles" (EPR), "confusion" (the one-fit reference)
    table: str  # the results table it is a row of: "ambiguity", "folds" or "stages"


IPR_FAMILY = Reading("dev", "d3", "curves", "ambiguity")
READINGS = {
    "epr": Reading("last", "stage", "profiles", "stages"),
    "reference": Reading("dev", "d3", "confusion", "ambiguity"),
    "reference_supervised": Reading("dev", "d3", "confusion", "ambiguity"),
    "reference_cv": Reading("dev", "cv", "confusion", "folds"),  # the reference on k folds
}


def reading(method: str) -> Reading:
    """The Reading of a method or of a results row: reference_cv is the reference on k folds, and
    a row labelled <method>_<name> (runner.train --label, e.g. epr_static) reads as <method>."""
    if method in READINGS:
        return READINGS[method]
    base = next((m for m in sorted(READINGS, key=len, reverse=True)
                 if method.startswith((m + "_", m + "-"))), None)
    return READINGS[base] if base else IPR_FAMILY


# ----------------------------------------------------------------------------------------------------
# Selecting the reported epoch
# ----------------------------------------------------------------------------------------------------

def select(rows: list[dict[str, float]]) -> tuple[int, dict[str, float]]:
    """The epoch with the best dev UA (ties: the later epoch); dev is labelled D2, never D3."""
    best = max(range(len(rows)), key=lambda i: (rows[i].get(OBJECTIVE, float("-inf")), i))
    return int(rows[best]["epoch"]), rows[best]


def is_selected(rows: list[dict[str, float]]) -> bool:
    """Whether the newest epoch is, so far, the one `select` picks (keep its weights)."""
    return select(rows)[0] == rows[-1]["epoch"]


def result(method: str, rows: list[dict[str, float]], table: list[dict[str, Any]],
           kept: dict[str, Any] | None) -> Result:
    epoch, selected = select(rows)
    return Result(method=method, final=dict(rows[-1]), selected_epoch=epoch,
                  selected=dict(selected), table=table, checkpoint=kept)


# ----------------------------------------------------------------------------------------------------
# Writing a seed folder
# ----------------------------------------------------------------------------------------------------

def write_seed(folder: Path, method: str, config: RunConfig, outcome: Result,
               rows: list[dict[str, float]], extras: list[dict[str, Any]],
               classes: Sequence[str]) -> None:
    """The seed folder (module docstring), config.txt last."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "epochs.csv", rows)
    write_csv(folder / "table.csv", outcome.table)
    if outcome.checkpoint is not None:
        import torch
        torch.save(outcome.checkpoint, folder / "checkpoint.pt")
    save_figures(folder, method, config, outcome, rows, extras, tuple(classes))
    # The code that ran: a table's seeds can span commits (a long study), and the commit alone
    # does not say whether the package changed between two of them; the digest does.
    (folder / "provenance.txt").write_text(f"commit={git_sha()}\ncode_digest={code_digest()}\n")
    (folder / "config.txt").write_text("\n".join(as_overrides(config)) + "\n")


def save_figures(folder: Path, method: str, config: RunConfig, outcome: Result,
                 rows: list[dict], extras: list[dict], classes: tuple[str, ...]) -> None:
    import matplotlib.pyplot as plt
    from emoref import figures  # matplotlib: imported by the processes that draw, only
    made = {}
    kind = reading(method).figures
    if kind == "curves":
        chosen = next(x for r, x in zip(rows, extras) if r["epoch"] == outcome.selected_epoch)
        made["agreement"] = figures.agreement_curves(rows)
        made["d3_confusion"] = figures.confusion_matrix(
            chosen["d3_confusion"], classes, f"D3 confusion, epoch {outcome.selected_epoch}")
        if "prototype_similarity" in chosen:
            made["prototype_similarity"] = figures.similarity_matrix(
                chosen["prototype_similarity"], classes,
                f"prototype cosine similarity, epoch {outcome.selected_epoch}")
            made["prototype_similarity_curves"] = figures.similarity_curves([rows], classes)
    else:
        chosen = extras[-1]
        if kind == "profiles":  # EPR: the drawn utterances' profiles, stage by stage
            protocol = config.epr.protocol
            for utterance, stages in chosen["figure_profiles"].items():
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", utterance)
                made[f"profile_{name}"] = figures.profile_evolution(
                    stages, classes, f"emotion profile of {utterance} (protocol {protocol})")
        for key, matrix in chosen.items():
            if key.endswith("_confusion"):
                made[key] = figures.confusion_matrix(matrix, classes, key.replace("_", " "))
    # The reported confusion matrices (IPR family: at the selected epoch; EPR: every stage), as
    # numbers, so a configuration can sum them over its seeds.
    matrices = {k[:-len("_confusion")]: v for k, v in chosen.items() if k.endswith("_confusion")}
    (folder / "confusion.json").write_text(json.dumps({"classes": list(classes), **matrices}))
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for name, fig in made.items():
        fig.savefig(folder / "figures" / f"{name}.png", dpi=120)
        plt.close(fig)


# ----------------------------------------------------------------------------------------------------
# Reading seed folders back
# ----------------------------------------------------------------------------------------------------

def seed_rows(folder: Path) -> list[dict[str, float]]:
    """A seed folder's epochs.csv as numbers."""
    with (folder / "epochs.csv").open() as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def finished_seeds(folder: Path) -> dict[int, Path]:
    """{seed: folder} of the seeds under `folder` that finished (their config.txt is written
    last)."""
    found = {}
    for seed_dir in folder.glob("seed*"):
        if seed_dir.name[4:].isdigit() and (seed_dir / "config.txt").exists():
            found[int(seed_dir.name[4:])] = seed_dir
    return dict(sorted(found.items()))


def seed_config(folder: Path) -> RunConfig:
    """The resolved config a finished seed ran with (its config.txt)."""
    from emoref.config import from_overrides
    return from_overrides((folder / "config.txt").read_text().splitlines())


def depth(row: Mapping[str, float], prefix: str = "") -> int:
    """EPR's refinery depth in a report row: how many `<prefix>stage<t>_wa` keys it holds."""
    return sum(k.startswith(prefix + "stage") and k.endswith("_wa") for k in row)


def outcome(method: str, folder: Path) -> dict[str, float]:
    """One finished seed as every table reads it: seed_metrics (selected.*, final.*,
    selected_epoch) plus dev (the objective), test_wa/ua/f1 (IPR family: D3 at the dev-selected
    epoch; the reference on folds: the pooled test folds; EPR: the last refinery stage over all
    test folds) and, for IPR, placement.agreement_* (the pseudo labels' agreement in the epoch the
    prototypes were placed)."""
    rows = seed_rows(folder)
    how = reading(method)
    if how.selection == "last":
        last = rows[-1]
        epoch, selected = len(rows) - 1, last
        prefix = f"stage{depth(last)}"
        flat = seed_metrics(last, last, depth(last))  # as epr.fit's Result has it
    else:
        epoch, selected = select(rows)
        prefix = how.test
        flat = seed_metrics(selected, rows[-1], epoch)
    flat["dev"] = selected.get(OBJECTIVE, math.nan)
    for m in ("wa", "ua", "f1"):
        flat[f"test_{m}"] = selected.get(f"{prefix}_{m}", math.nan)
    placed = next((r for r in rows if "agreement_prototype" in r), None)
    if placed:
        for kind in ("prototype", "model"):
            flat[f"placement.agreement_{kind}"] = placed[f"agreement_{kind}"]
    return flat


def summed_confusion(folders: Sequence[Path], key: str) -> tuple[list[str], np.ndarray] | None:
    """The `key` confusion matrix (e.g. "d3", "stage5") of each seed folder's confusion.json,
    summed over the folders, with the class names; None when a folder lacks it."""
    total, classes = None, []
    for folder in folders:
        path = folder / "confusion.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        if key not in saved:
            return None
        classes, matrix = saved["classes"], np.asarray(saved[key], dtype=float)
        total = matrix if total is None else total + matrix
    return (classes, total) if total is not None else None
