"""Seeds -> mean and standard deviation; tables a person reads; CSV files other tools read."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# The columns of the IPR-family results table: D3 at the dev-selected epoch (D3 never selects), and
# D2 pseudo-label agreement with the hidden truth at the last epoch (the paper's Fig. 3 end points).
IPR_COLUMNS = (("selected", "d3_wa", "D3 WA"), ("selected", "d3_ua", "D3 UA"),
               ("selected", "d3_f1", "D3 F1"), ("selected", "dev_ua", "dev UA"),
               ("final", "agreement_prototype", "agreement (prototype)"),
               ("final", "agreement_model", "agreement (model)"))

# The classical reference on k folds: every utterance scored by its own test fold.
CV_COLUMNS = (("selected", "cv_wa", "CV WA"), ("selected", "cv_ua", "CV UA"),
              ("selected", "cv_f1", "CV F1"))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def pm(mean: float, std: float, scale: float = 100.0) -> str:
    """mean ± std as a table shows it (x scale, i.e. percent; 2 decimals); '-' when undefined."""
    return "-" if math.isnan(mean) else f"{mean * scale:.2f} ± {std * scale:.2f}"


def cell(stat: Mapping[str, float] | None, scale: float = 100.0) -> str:
    """An `aggregate` entry as a table cell; '-' where the metric is absent."""
    return "-" if stat is None else pm(stat["mean"], stat["std"], scale)


def aggregate(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "std", "n"}} over seeds, for every metric present in all of them."""
    keys = set.intersection(*(set(r) for r in per_seed)) if per_seed else set()
    out = {}
    for key in sorted(keys):
        mean, std = mean_std([float(r[key]) for r in per_seed])
        out[key] = {"mean": mean, "std": std, "n": len(per_seed)}
    return out


def seed_metrics(selected: Mapping[str, float], final: Mapping[str, float], selected_epoch: int,
                 wall_s: float | None = None) -> dict[str, float]:
    """One seed's numbers flattened for aggregation: selected.<m>, final.<m>, selected_epoch and,
    when known, wall_s. Built from a Result in training and from epochs.csv in runner.report."""
    row = {f"selected.{k}": v for k, v in selected.items() if k != "epoch"}
    row.update({f"final.{k}": v for k, v in final.items() if k != "epoch"})
    row["selected_epoch"] = float(selected_epoch)
    if wall_s is not None:
        row["wall_s"] = wall_s
    return row


def markdown_table(summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
                   columns: Iterable[tuple[str, str, str]] = IPR_COLUMNS, scale: float = 100.0
                   ) -> str:
    """One row per method: mean ± std (x scale, i.e. percent) of each column; '-' where absent."""
    columns = list(columns)
    lines = ["| method | " + " | ".join(title for _, _, title in columns) + " | seeds |",
             "|---" * (len(columns) + 2) + "|"]
    for method, summary in summaries.items():
        cells = [cell(summary.get(f"{where}.{key}"), scale) for where, key, _ in columns]
        n = max((int(s["n"]) for s in summary.values()), default=0)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows of dicts as CSV; the header is the union of keys in first-seen order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)
    return path


REFERENCE_NAME = "reference (openSMILE + LR)"
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def stage_table(summary: Mapping[str, Mapping[str, float]], depth: int, name: str = "VGG",
                scale: float = 100.0, reference: Mapping[str, Mapping[str, float]] | None = None
                ) -> str:
    """EPR, laid out like the paper's Tables 2 and 4: one row per refinery stage, WA / UA / F1;
    stage t > 1 is `name` with t as a superscript (VGG² for sEPR, VGG*² for pEPR). `reference`
    (the classical reference's summary on the same folds) adds its row first. Runs that kept
    the decision without the forest (argmax of the mean profile) add its WA and UA as columns."""
    argmax = "final.argmax_stage1_wa" in summary
    extra = " mean-EP argmax WA | mean-EP argmax UA |" if argmax else ""
    lines = ["| stage | WA | UA | F1 |" + extra + " seeds |",
             "|---|---|---|---|" + ("---|---|" if argmax else "") + "---|"]
    if reference:
        cells = [cell(reference.get(f"final.cv_{key}"), scale) for key in ("wa", "ua", "f1")]
        cells += ["-", "-"] if argmax else []
        n = int(reference.get("final.cv_wa", {}).get("n", 0))
        lines.append(f"| {REFERENCE_NAME} | " + " | ".join(cells) + f" | {n} |")
    for t in range(1, depth + 1):
        keys = [f"stage{t}_{key}" for key in ("wa", "ua", "f1")]
        keys += [f"argmax_stage{t}_{key}" for key in ("wa", "ua")] if argmax else []
        cells = [cell(summary.get(f"final.{key}"), scale) for key in keys]
        n = int(summary.get(f"final.stage{t}_wa", {}).get("n", 0))
        label = "VGG" if t == 1 else name + str(t).translate(SUPERSCRIPTS)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)
