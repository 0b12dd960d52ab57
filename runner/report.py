"""python -m runner.report RUN_DIR [...]: the results tables of runner.train or runner.tune folders.

A sweep folder (runner.tune; it holds sweep.json) gets its report rebuilt and rewritten from the
seeds on disk: report.md, report.csv and best.txt (see emoref.sweep).

Rebuilds mean ± std over seeds from each seed's epochs.csv (so a run that is still going, or was
stopped, reports the seeds it finished, and says how many), with the same selection rule as
training: the epoch with the best dev UA for the IPR family, the last report for EPR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emoref.config import ConfigError
from emoref.methods.common import select
from emoref.summary import aggregate, markdown_table, seed_metrics, stage_table
from emoref.sweep import epr_depth, seed_rows, write_report
from runner._cli import fail


def per_seed(method_dir: Path) -> list[dict[str, float]]:
    out = []
    for folder in sorted(method_dir.glob("seed*"), key=lambda p: int(p.name[4:])):
        if not (folder / "config.txt").exists():  # written once the seed has finished
            continue
        rows = seed_rows(folder)
        if method_dir.name == "epr":  # its last report holds every stage's scores
            depth = epr_depth(rows[-1])
            out.append(seed_metrics(rows[-1], rows[-1], depth))  # as epr.fit's Result has it
        else:
            epoch, selected = select(rows)
            out.append(seed_metrics(selected, rows[-1], epoch))
    return out


def report(run: Path) -> str:
    if (run / "sweep.json").is_file():
        try:
            return write_report(run)
        except ConfigError as err:
            fail(str(err))
    if not run.is_dir():
        fail(f"{run}: not a folder written by runner.train")
    summaries, counts = {}, {}
    for method_dir in sorted(p for p in run.iterdir() if p.is_dir()):
        seeds = per_seed(method_dir)
        if seeds:
            summaries[method_dir.name], counts[method_dir.name] = aggregate(seeds), len(seeds)
    if not summaries:
        fail(f"{run}: no finished seed (no <method>/seed<k>/config.txt)")
    parts = [f"{run}: " + ", ".join(f"{m} {n} seed(s)" for m, n in counts.items())]
    family = {m: s for m, s in summaries.items() if m not in ("epr", "reference_cv")}
    if family:
        parts.append(markdown_table(family))
    if "epr" in summaries:
        config = (sorted((run / "epr").glob("seed*"))[0] / "config.txt").read_text().splitlines()
        values = dict(line.split("=", 1) for line in config)
        name = "VGG*" if values["epr.labels"] == "mixed" else "VGG"
        parts.append(stage_table(summaries["epr"], int(values["epr.depth"]), name,
                                 reference=summaries.get("reference_cv")))
    summary = run / "summary.json"
    if summary.exists():
        walls = {m: [s["wall_s"] for s in rows]
                 for m, rows in json.loads(summary.read_text())["per_seed"].items()}
        parts.append("wall time per seed (s): " + ", ".join(
            f"{m} {sum(w) / len(w):.0f}" for m, w in walls.items()))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.report",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", type=Path, help="folders written by runner.train --out or by runner.tune")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    print("\n\n".join(report(run) for run in args.runs))


if __name__ == "__main__":
    main()
