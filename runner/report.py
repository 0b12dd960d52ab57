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
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emoref.config import ConfigError
from emoref.record import (finished_seeds, outcome, reading, results_tables, seed_config,
                           seed_rows)
from emoref.summary import aggregate, mean_std, pm
from emoref.sweep import p_text, paired_p, write_report
from runner._cli import fail

AGREEMENT_COLUMNS = (("placement", "at placement"), ("selected", "at the selected epoch"),
                     ("final", "at the last epoch"))


def agreement_table(seeds: dict[int, dict[str, float]]) -> str:
    """IPR's pseudo labels against D2's hidden labels, mean ± std over the seeds that have them
    (a seed whose dev-selected epoch is a warm-up epoch has no prototypes there): prototype-
    assigned (Eq. 3) and model-generated (the classifier's argmax), the two curves of Fig. 3."""
    lines = ["IPR's pseudo-label agreement with D2's hidden labels (percent; n = seeds):", "",
             "| pseudo labels | " + " | ".join(t for _, t in AGREEMENT_COLUMNS) + " |",
             "|---" * (1 + len(AGREEMENT_COLUMNS)) + "|"]
    for kind, name in (("prototype", "prototype-assigned"), ("model", "model-generated")):
        cells = []
        for where, _ in AGREEMENT_COLUMNS:
            key = f"{where}.agreement_{kind}"
            values = [row[key] for row in seeds.values() if key in row]
            mean, std = mean_std(values)
            cells.append(f"{pm(mean, std)} (n={len(values)})" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_cells(a: list[float], b: list[float]) -> list[str]:
    """Mean of a - b in points and the two-sided paired t-test's p, marked when below 0.05. The
    same nonzero difference in every pair (two seeds can give it: WA moves in steps of one
    utterance) has no spread for a t-test to weigh, so no p (paired_p)."""
    mean = f"{100 * mean_std([x - y for x, y in zip(a, b)])[0]:+.2f}"
    p = paired_p(a, b)
    return [mean, "- (the same in every pair)" if len(a) > 1 and math.isnan(p) else p_text(p)]


def paired_table(seeds: dict[str, dict[int, dict[str, float]]], best: str = "ipr") -> str:
    """`best` against every other method run here: mean difference over the seeds both finished
    and the two-sided paired t-test's p (D3 at the dev-selected epoch)."""
    lines = [f"Paired t-tests over seeds, {best} minus each other method (points):", "",
             "| against | seeds | D3 WA difference | p | D3 UA difference | p |",
             "|---|---|---|---|---|---|"]
    for other, rows in seeds.items():
        shared = sorted(set(rows) & set(seeds[best]))
        if other == best or reading(other).table != "ambiguity" or len(shared) < 2:
            continue
        cells = [c for key in ("selected.d3_wa", "selected.d3_ua")
                 for c in paired_cells([seeds[best][s][key] for s in shared],
                                       [rows[s][key] for s in shared])]
        lines.append(f"| {other} | {len(shared)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 4 else ""


def stage_paired_table(seeds: dict[int, dict[str, float]], depth: int, name: str) -> str:
    """EPR: the last stage against stage 1 over the seeds (each seed's stages share its folds):
    mean difference and the two-sided paired t-test's p, WA and UA."""
    if depth < 2 or len(seeds) < 2:
        return ""
    cells = [c for key in ("wa", "ua")
             for c in paired_cells([row[f"final.stage{depth}_{key}"] for row in seeds.values()],
                                   [row[f"final.stage1_{key}"] for row in seeds.values()])]
    return (f"{name}: stage {depth} minus stage 1, paired over {len(seeds)} seeds (points): "
            f"WA {cells[0]} (p {cells[1]}), UA {cells[2]} (p {cells[3]})")


def forest_paired_table(seeds: dict[int, dict[str, float]], depth: int, name: str) -> str:
    """EPR: the paper's decision (a random forest on the profile statistics) against the argmax
    of the mean profile read from the same profiles, stage by stage, paired over the seeds:
    what the forest adds under the row's protocol. Empty for runs that did not keep the argmax."""
    if len(seeds) < 2 or any("final.argmax_stage1_wa" not in row for row in seeds.values()):
        return ""
    lines = [f"{name}: the forest minus the argmax of the mean profile, paired over {len(seeds)} "
             "seeds (points):", "", "| stage | WA difference | p | UA difference | p |",
             "|---|---|---|---|---|"]
    for stage in range(1, depth + 1):
        cells = [c for key in ("wa", "ua") for c in paired_cells(
            [row[f"final.stage{stage}_{key}"] for row in seeds.values()],
            [row[f"final.argmax_stage{stage}_{key}"] for row in seeds.values()])]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


DECISIONS = {"forest": ("stage", "each stage's decision (the forest)"),
             "argmax": ("argmax_stage", "the argmax of the mean profile, the same profiles "
                                         "without the forest")}


def epr_rows_paired_table(seeds: dict[str, dict[int, dict[str, float]]],
                          configs: dict[str, Any], decision: str = "forest") -> str:
    """EPR rows of the same kind (epr.labels) against each other, stage by stage up to the
    shallower depth: row A minus row B over the seeds both finished (a seed has the same folds
    and stage-1 initialisations in every row), with the two-sided paired t-test's p. This is the
    table that says by how much a protocol (or an early-stopping monitor) moves the numbers.

    decision="argmax" pairs the mean profile's argmax instead of the forest: between `paper` and
    `in_sample` it isolates which profiles teach the next stage (the test fold's profiles come
    from its own fold's network under both), where the forest's table also carries how each
    protocol fits the forest. Rows without the argmax (runs before it was kept) are left out."""
    key, what = DECISIONS[decision]
    title = (f"EPR rows against each other, {what}, paired over the seeds both finished "
             "(points, the first row minus the second):")
    lines = [title, "",
             "| rows | seeds | stage | WA difference | p | UA difference | p |",
             "|---|---|---|---|---|---|---|"]
    names = sorted(configs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = [s for s in sorted(set(seeds[a]) & set(seeds[b]))
                      if f"final.{key}1_wa" in seeds[a][s] and f"final.{key}1_wa" in seeds[b][s]]
            if configs[a].labels != configs[b].labels or len(shared) < 2:
                continue
            for stage in range(1, min(configs[a].depth, configs[b].depth) + 1):
                cells = [c for metric in ("wa", "ua") for c in paired_cells(
                    [seeds[a][s][f"final.{key}{stage}_{metric}"] for s in shared],
                    [seeds[b][s][f"final.{key}{stage}_{metric}"] for s in shared])]
                lines.append(f"| {a} - {b} | {len(shared)} | {stage} | " + " | ".join(cells)
                             + " |")
    return "\n".join(lines) if len(lines) > 4 else ""


def epr_configs(run: Path, rows: list[str]) -> dict[str, Any]:
    """Each EPR row's EPRConfig; a row whose seeds ran under different epr.protocol values (or
    depths, labels, forest fits) would average unlike things, so it is refused with the fix."""
    configs = {}
    for row in rows:
        seen = {seed: seed_config(folder).epr for seed, folder in finished_seeds(run / row).items()}
        kinds = {(e.protocol, e.depth, e.labels, e.forest_fit) for e in seen.values()}
        if len(kinds) > 1:
            fail(f"{run / row}: its seeds mix EPR settings (protocol, depth, labels, forest_fit): "
                 f"{sorted(kinds)}; write each to its own row (runner.train --label epr_<name>)")
        configs[row] = next(iter(seen.values()))
    return configs


def agreement_figures(run: Path, by_seed: dict[str, dict[int, dict[str, float]]]) -> list[Path]:
    """IPR Fig. 3 averaged over seeds, one figure per row whose seeds report pseudo-label
    agreement: <run>/figures/agreement_<row>.png."""
    from emoref.figures import agreement_over_seeds, plt
    written = []
    for row in by_seed:
        seeds = [seed_rows(folder) for folder in finished_seeds(run / row).values()]
        if any("agreement_model" in r for rows in seeds for r in rows) and max(map(len, seeds)) > 1:
            path = run / "figures" / f"agreement_{row}.png"
            path.parent.mkdir(exist_ok=True)
            fig = agreement_over_seeds(seeds, row)
            fig.savefig(path, dpi=120)
            plt.close(fig)
            written.append(path)
    return written


KIND_NAMES = {"mixed": "pEPR", "soft": "sEPR"}  # epr.labels -> the paper's name


def epr_stage_figure(by_seed: dict[str, dict[int, dict[str, float]]], configs: dict[str, Any],
                     labels: str, reference: list[float]) -> Any:
    """EPR rows of one kind (epr.labels) side by side: test-fold WA after each stage, mean and
    ±1 std over each row's seeds, the forest's decision solid and the mean profile's argmax
    dashed (the same profiles), and the classical reference on the same folds (its seeds' WA)
    as a horizontal line."""
    from emoref.figures import plt
    rows = [row for row in sorted(configs) if configs[row].labels == labels]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for row in rows:
        seeds, stages = list(by_seed[row].values()), range(1, configs[row].depth + 1)
        color = None
        for key, style, what in (("stage", "-", "forest"), ("argmax_stage", "--", "argmax")):
            if any(f"final.{key}1_wa" not in s for s in seeds):
                continue  # a run from before the argmax was kept
            values = 100 * np.array([[s[f"final.{key}{t}_wa"] for t in stages] for s in seeds])
            spread = values.std(0, ddof=1) if len(seeds) > 1 else 0  # the tables' std
            drawn = ax.errorbar(list(stages), values.mean(0), yerr=spread, marker="o",
                                markersize=3, capsize=3, linestyle=style, color=color,
                                label=f"{row}, {what} (n={len(seeds)})")
            color = drawn.lines[0].get_color()
    if reference:
        level = 100 * float(np.mean(reference))
        ax.axhline(level, color="black", linewidth=1,
                   label=f"reference, same folds (n={len(reference)})")
        ax.set_ylim(top=max(ax.get_ylim()[1], level + 2))  # clear of the frame
    ax.set_xticks(range(1, max(configs[r].depth for r in rows) + 1))
    ax.set_xlabel("refinery stage")
    ax.set_ylabel("test-fold WA (%)")
    ax.set_title(f"{KIND_NAMES.get(labels, labels)} (epr.labels={labels})")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def epr_stage_figures(run: Path, by_seed: dict[str, dict[int, dict[str, float]]],
                      configs: dict[str, Any]) -> list[Path]:
    """One epr_stage_figure per kind of the folder's EPR rows, beside the folder's reference_cv
    row when it has one: <run>/figures/epr_stages_<labels>.png."""
    from emoref.figures import plt
    reference = [row["final.cv_wa"] for row in by_seed.get("reference_cv", {}).values()]
    written = []
    for labels in sorted({c.labels for c in configs.values()}):
        fig = epr_stage_figure(by_seed, configs, labels, reference)
        path = run / "figures" / f"epr_stages_{labels}.png"
        path.parent.mkdir(exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


# A line of a study's times.log (studies/common.sh): date, time, a name ("<row> seed<k>" for one
# seed of one row, anything else for a step such as the reference's five seeds at once), the wall
# seconds of all its attempts, then the command.
TIMES_LINE = re.compile(r"\S+ \S+ (?P<name>.+?) (?P<seconds>\d+) s\b[^:]*: ")
SEED_NAME = re.compile(r"(?P<row>\S+) seed(?P<seed>\d+)")


def logged_walls(run: Path) -> dict[str, dict[int, int]]:
    """Wall seconds from <run>/times.log: each row's, one per seed (the last entry of a seed
    wins: a seed run again after its folder was removed), and each other step's under its name
    and seed -1."""
    log = run / "times.log"
    if not log.is_file():
        return {}
    walls: dict[str, dict[int, int]] = {}
    for line in log.read_text().splitlines():
        if match := TIMES_LINE.match(line):
            seed = SEED_NAME.fullmatch(match["name"])
            row, k = (seed["row"], int(seed["seed"])) if seed else (match["name"], -1)
            walls.setdefault(row, {})[k] = int(match["seconds"])
    return walls


def code_that_ran(run: Path, rows: list[str]) -> str:
    """Which code each row's seeds ran, from their provenance.txt: the seeds grouped by the
    package's code digest (its first 8 hex digits; seeds with one digest ran the same package),
    with the commits they recorded ("+dirty": some tracked file was edited meanwhile, which the
    digest says was not the package). Seeds finished before provenance.txt was written are
    counted as such. Empty when no seed recorded any."""
    cells, recorded = [], False
    for row in rows:
        groups: dict[str, tuple[list[int], set[str]]] = {}
        for seed, folder in finished_seeds(run / row).items():
            path = folder / "provenance.txt"
            saved = dict(line.split("=", 1) for line in path.read_text().splitlines()
                         if "=" in line) if path.is_file() else {}
            recorded |= bool(saved)
            seeds, commits = groups.setdefault(saved.get("code_digest", "")[:8] or
                                               "not recorded", ([], set()))
            seeds.append(seed)
            if commit := saved.get("commit"):
                commits.add(commit[:7] + ("+dirty" if commit.endswith("+dirty") else ""))
        cells += [f"{row} {digest} seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
                  + (f" (commits {', '.join(sorted(commits))})" if commits else "")
                  for digest, (seeds, commits) in groups.items()]
    return ("code that ran (each seed's provenance.txt: the package's code digest, seeds, "
            "commits): " + "; ".join(cells)) if recorded else ""


def in_flight(run: Path) -> str:
    """Seeds stopped part-way whose newest state runner.train --state-dir keeps in
    <run>/in_flight/<row>/seed<k>/ (the EPR study's archive): how far each got, from that state,
    and the seconds so far from the study's mark file beside it. "" when there are none."""
    import torch  # (here: a report without seeds in flight does not need it)
    cells = []
    for state in sorted(run.glob("in_flight/*/seed*/state.pt")):
        row, seed = state.parent.parent.name, state.parent.name
        try:
            saved = torch.load(state, map_location="cpu", weights_only=True)
            history, attempt = saved["history"], saved["attempt"]
        except Exception as err:  # noqa: BLE001 - reported, and the seed's runner.train refuses it
            cells.append(f"{row} {seed}: unreadable state ({err})")
            continue
        last = history[-1][1] if history else {}
        where = ", ".join(f"{key.replace('_', ' ')} {int(last[key])}"
                          for key in ("stage", "fold", "stage_epoch") if key in last)
        cell = (f"{row} {seed}: {len(history)} reports, the last at "
                f"{where or 'epoch ' + str(history[-1][0]) if history else 'none'}, "
                f"attempt {attempt}, code {saved.get('code', '?')[:8]}")
        mark = state.parent / f"{row}_{seed}.running"
        if mark.is_file():
            cell += f", {int(mark.read_text().split()[0]):,} s so far"
        cells.append(cell)
    return ("seeds in flight (they resume from these states; runner.train --state-dir): "
            + "; ".join(cells)) if cells else ""


def report(run: Path, figures: bool = False) -> str:
    if (run / "sweep.json").is_file():
        try:
            return write_report(run)
        except ConfigError as err:
            fail(str(err))
    if not run.is_dir():
        fail(f"{run}: not a folder written by runner.train")
    summaries, counts, by_seed = {}, {}, {}
    for method_dir in sorted(p for p in run.iterdir() if p.is_dir()):
        seeds = {seed: outcome(method_dir.name, folder)
                 for seed, folder in finished_seeds(method_dir).items()}
        if seeds:
            by_seed[method_dir.name] = seeds
            summaries[method_dir.name] = aggregate(list(seeds.values()))
            counts[method_dir.name] = len(seeds)
    if not summaries:
        fail(f"{run}: no finished seed (no <method>/seed<k>/config.txt)")
    parts = [f"{run}: " + ", ".join(f"{m} {n} seed(s)" for m, n in counts.items())]
    epr = epr_configs(run, [row for row in summaries if reading(row).table == "stages"])
    parts += results_tables(summaries, epr)
    parts += [line for row, e in epr.items()
              if (line := stage_paired_table(by_seed[row], e.depth, row))]
    parts += [table for row, e in epr.items()
              if (table := forest_paired_table(by_seed[row], e.depth, row))]
    parts += [table for decision in DECISIONS if (table := epr_rows_paired_table(
        {row: by_seed[row] for row in epr}, epr, decision))]
    if "ipr" in by_seed:
        parts.append(agreement_table(by_seed["ipr"]))
        paired = paired_table(by_seed)
        if paired:
            parts.append(paired)
    if figures:
        parts += [f"figure: {path}" for path in agreement_figures(run, by_seed)]
        parts += [f"figure: {path}" for path in epr_stage_figures(
            run, {row: by_seed[row] for row in (*epr, "reference_cv") if row in by_seed}, epr)]
    if provenance := code_that_ran(run, list(summaries)):
        parts.append(provenance)
    if flying := in_flight(run):
        parts.append(flying)
    if walls := logged_walls(run):
        cells = []
        for row, by_seed in walls.items():
            w = list(by_seed.values())
            cells.append(f"{row} {w[0]} (one command)" if -1 in by_seed else
                         f"{row} {sum(w) / len(w):.0f} per seed ({min(w)}-{max(w)}, n={len(w)})")
        parts.append("wall time (s) from times.log: " + ", ".join(cells))
    elif (summary := run / "summary.json").exists():
        walls = {m: [s["wall_s"] for s in rows]
                 for m, rows in json.loads(summary.read_text())["per_seed"].items()}
        # summary.json is the last runner.train's here: a folder several wrote (one per row or
        # seed) keeps the others' wall times only in a times.log (studies/common.sh writes one).
        parts.append("wall time per seed (s), the last runner.train run here: " + ", ".join(
            f"{m} {sum(w) / len(w):.0f}" for m, w in walls.items()))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.report",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", type=Path, help="folders written by runner.train --out or by runner.tune")
    parser.add_argument("--figures", action="store_true",
                        help="also write, for each runner.train folder, the pseudo-label agreement "
                             "curves (IPR Fig. 3) averaged over seeds and, for EPR rows, the "
                             "test-fold WA after each stage, one figure per kind, to "
                             "<folder>/figures/")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    print("\n\n".join(report(run, args.figures) for run in args.runs))


if __name__ == "__main__":
    main()
