"""Every table, paired test and figure built from run folders: a sweep's report (runner.tune, and
runner.report on a sweep folder), the results tables at the end of runner.train, and the report of
a runner.train folder (runner.report). Errors are raised (ConfigError naming the folder), never
turned into an exit: the commands do that.

Means and standard deviations are over seeds, never a best seed; paired t-tests pair the same
seeds on the same split. Every table carries the classical reference rows where the run has them.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from emoref.config import ConfigError, as_overrides, from_overrides, value_text
from emoref.record import finished_seeds, outcome, reading, seed_config, seed_rows
from emoref.summary import (CV_COLUMNS, aggregate, markdown_table, mean_std, pm, stage_table,
                            write_csv)
from emoref.sweep import (REFERENCES, Configuration, apply_params, baseline_outcomes, caveat,
                          read_sweep)


# ----------------------------------------------------------------------------------------------------
# Paired tests over seeds
# ----------------------------------------------------------------------------------------------------

def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test over seeds (the same seeds, the same split): p-value, NaN when it
    is undefined (fewer than two pairs, or the same nonzero difference in every pair), 1 when
    every difference is zero. With five seeds a signed-rank
    test cannot go below p = 0.0625, so it could never mark p < 0.05; the t-test can."""
    from scipy import stats
    if len(a) < 2:
        return math.nan
    diffs = [x - y for x, y in zip(a, b)]
    # Equal up to float rounding (WA moves in steps of one utterance, and 380/535 - 370/535 need
    # not equal 390/535 - 380/535 to the last bit): no spread, so no t. No difference at all is
    # p 1; the same nonzero difference in every pair (two seeds can give it) has no p, not the
    # 0 that the t-test's infinite t would claim.
    if max(diffs) - min(diffs) <= 1e-9:
        return 1.0 if max(map(abs, diffs)) <= 1e-9 else math.nan
    return float(stats.ttest_rel(a, b).pvalue)


def p_text(p: float) -> str:
    """A paired test's p for a table: four decimals, marked when below 0.05; "-" when undefined."""
    return "-" if math.isnan(p) else f"{p:.4f}{' (< 0.05)' if p < 0.05 else ''}"


TRAIN_DATA = {"baseline": "D1", "baseline_star": "D1 and unlabelled D2",
              "ipr": "D1 and unlabelled D2", "supervised": "labelled D1 and D2",
              "reference": "D1 (openSMILE + LR)",
              "reference_supervised": "labelled D1 and D2 (openSMILE + LR)"}
# The classical reference rows (methods/reference.py) a sweep computes before its first trial.


def table3(best: Configuration, baselines: Mapping[str, Mapping[int, dict[str, float]]]) -> str:
    """The IPR paper's Table 3 layout: method, training data, D3 accuracy (the paper's Acc) and
    UA, mean ± std over the shared seeds; * marks p < 0.05 against baseline, † against both
    baseline and baseline* (paired t-tests over seeds)."""
    rows = {**{m: dict(s) for m, s in baselines.items()}, "ipr": best.seeds}
    seeds = sorted(set.intersection(*(set(s) for s in rows.values())))
    order = [m for m in ("reference", "baseline", "baseline_star", "ipr", "supervised",
                         "reference_supervised") if m in rows]
    lines = ["| Method | Train | D3 Acc (%) | D3 UA (%) | seeds |", "|---|---|---|---|---|"]
    for method in order:
        marks = {}
        for metric in ("test_wa", "test_ua"):
            values = [rows[method][s][metric] for s in seeds]
            p = {other: paired_p(values, [rows[other][s][metric] for s in seeds])
                 for other in ("baseline", "baseline_star") if other in rows and other != method}
            significant = {o for o, v in p.items() if v < 0.05}
            marks[metric] = ("†" if {"baseline", "baseline_star"} <= significant else
                             "*" if "baseline" in significant else "")
        cells = [pm(*mean_std([rows[method][s][m] for s in seeds])) + marks[m]
                 for m in ("test_wa", "test_ua")]
        name = "baseline*" if method == "baseline_star" else method
        lines.append(f"| {name} | {TRAIN_DATA[method]} | " + " | ".join(cells)
                     + f" | {len(seeds)} |")
    return "\n".join(lines)


def paired_tests(best: Configuration, others: Mapping[str, Mapping[int, dict[str, float]]]
                 ) -> list[dict[str, Any]]:
    """One row per (other, metric): mean difference best - other over shared seeds and p."""
    out = []
    for name, seeds in others.items():
        shared = sorted(set(seeds) & set(best.seeds))
        for metric in ("test_wa", "test_ua", "test_f1"):
            a = [best.seeds[s][metric] for s in shared]
            b = [seeds[s][metric] for s in shared]
            diff = mean_std([x - y for x, y in zip(a, b)])[0]
            out.append({"against": name, "metric": metric[5:], "seeds": len(shared),
                        "difference": diff, "p": paired_p(a, b)})
    return out


def epr_stage1(best: Configuration) -> dict[int, dict[str, float]]:
    """EPR's own baseline: the plain VGG (stage 1) of the same runs, as outcome-shaped rows."""
    return {s: {f"test_{m}": row[f"final.stage1_{m}"] for m in ("wa", "ua", "f1")}
            for s, row in best.seeds.items()}


def objective_check(configs: Sequence[Configuration], seeds: int, test: str) -> str:
    """Does the objective rank configurations the way the held-out numbers do? Spearman's rho
    between mean dev UA and mean test UA over the configurations with all seeds. Reported, never
    optimised: a small or unrepresentative dev part shows here as a rho near zero or below, and
    then the best configuration by dev is no better on D3 than a typical one."""
    from scipy import stats
    done = [c for c in configs if len(c.seeds) >= seeds]
    if len(done) < 3:
        return f"Objective against {test} UA: fewer than 3 configurations with all seeds."
    dev = [c.stat("dev")[0] for c in done]
    held = [c.stat("test_ua")[0] for c in done]
    rho, p = stats.spearmanr(dev, held)
    return (f"Objective against {test} UA over the {len(done)} configurations with all seeds: "
            f"Spearman rho {rho:+.2f} (p {p:.3f}); the best by dev UA has {test} UA "
            f"{100 * held[0]:.2f}, the median configuration {100 * statistics.median(held):.2f}.")


def write_report(folder: str | Path, top: int = 10) -> str:
    """Writes report.md, report.csv and best.txt into the sweep folder; returns the Markdown."""
    folder = Path(folder)
    record, configs = read_sweep(folder)
    if not configs:
        raise ConfigError(f"{folder}: no configuration has a finished seed yet")
    method, keys = record["method"], list(record["space"])
    test = "D3" if method != "epr" else "CV"  # CV: every utterance scored by its own test fold
    complete = sum(len(c.seeds) >= record["seeds"] for c in configs)
    lines = [f"# Sweep {folder.name}: {method} on {record['corpus']}",
             "",
             f"{len(configs)} configuration(s) with finished seeds, {complete} with all "
             f"{record['seeds']}; split {record['split_hash']}; code {record['git_sha']}.",
             f"Objective (Optuna, maximised): {record['objective']}. "
             + ("D3 never steers" if method != "epr" else "The test folds (CV columns) never "
                "steer") + " the search: their numbers are reported, not optimised. "
             + caveat(method, from_overrides(record["base_config"]), record["space"]),
             "", "## Top configurations (mean ± std over seeds, percent)", "",
             "| rank | trial | seeds | dev UA | " + " | ".join(f"{test} {m}" for m in
                                                             ("WA", "UA", "F1")) + " | "
             + " | ".join(keys) + " |",
             "|---" * (7 + len(keys)) + "|"]
    for rank, c in enumerate(configs[:top], 1):
        lines.append(f"| {rank} | {c.trial} | {len(c.seeds)} | {pm(*c.stat('dev'))} | "
                     + " | ".join(pm(*c.stat(f"test_{m}")) for m in ("wa", "ua", "f1")) + " | "
                     + " | ".join(_short(c.params.get(k)) for k in keys) + " |")
    lines += ["", objective_check(configs, record["seeds"], test)]
    rows_csv = []
    for c in configs:
        row = {"trial": c.trial, "seeds": len(c.seeds)}
        for key in ("dev", "test_wa", "test_ua", "test_f1"):
            row[f"{key}_mean"], row[f"{key}_std"] = c.stat(key)
        row.update({f"param.{k}": c.params.get(k) for k in keys})
        rows_csv.append(row)
    write_csv(folder / "report.csv", rows_csv)
    best = configs[0]  # read_sweep's order: all seeds finished first, then best objective
    best_config = apply_params(from_overrides(record["base_config"]), best.params)
    (folder / "best.txt").write_text(
        f"# Best configuration of sweep {folder.name} (trial {best.trial}): mean dev UA "
        f"{pm(*best.stat('dev'))} over {len(best.seeds)} seed(s).\n"
        f"# Rerun: python -m runner.train {method} --config <this file> --seeds "
        f"{record['seeds']}\n" + "\n".join(as_overrides(best_config)) + "\n")
    failed = sorted((folder / "trials").glob("*/failed.txt"))
    if failed:
        lines += ["", f"{len(failed)} configuration(s) failed (a diverged seed ends its "
                  "configuration; Optuna was told the worst score):", ""]
        lines += [f"- {path.parent.name}: {path.read_text().strip()}" for path in failed]
    lines += ["", f"Best: trial {best.trial} ({len(best.seeds)} seeds), written to best.txt:",
              "", *[f"    {k}={value_text(best.params[k])}" for k in keys if k in best.params]]
    # ---- Paired tests over seeds on the same split
    others = baseline_outcomes(folder)
    if method == "epr":
        others = {"VGG (stage 1)": epr_stage1(best), **others}
    if any(r in others for r in REFERENCES):
        lines += ["", "## Classical reference (openSMILE functionals + logistic regression, the "
                  "same split and seeds)", "",
                  f"| row | train | {test} WA | {test} UA | {test} F1 |", "|---|---|---|---|---|"]
        for name in REFERENCES:
            if name in others:
                rows = list(others[name].values())
                lines.append(f"| {name} | {TRAIN_DATA.get(name, 'training folds')} | " + " | ".join(
                    pm(*mean_std([r[f"test_{m}"] for r in rows])) for m in ("wa", "ua", "f1"))
                    + " |")
    if others:
        lines += ["", f"## Paired t-tests over seeds: best {method} against each baseline", "",
                  "| against | metric | seeds | difference (points) | p |", "|---|---|---|---|---|"]
        for t in paired_tests(best, others):
            lines.append(f"| {t['against']} | {test} {t['metric'].upper()} | {t['seeds']} | "
                         f"{t['difference'] * 100:+.2f} | {p_text(t['p'])} |")
    if method == "ipr" and others:
        lines += ["", "## In the layout of the IPR paper's Table 3", "",
                  table3(best, others), "",
                  "\\* p < 0.05 against baseline; † p < 0.05 against baseline and baseline* "
                  "(paired t-tests over seeds)."]
    text = "\n".join(lines) + "\n"
    (folder / "report.md").write_text(text)
    return text


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


# ----------------------------------------------------------------------------------------------------
# Results tables of rows (runner.train, runner.report)
# ----------------------------------------------------------------------------------------------------

def vgg_name(labels: str) -> str:
    """EPR's network as the paper's tables name it: VGG* when trained on mixed (soft) labels."""
    return "VGG*" if labels == "mixed" else "VGG"


def results_tables(summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
                   epr: Mapping[str, Any]) -> list[str]:
    """The results tables of rows' summaries (summary.aggregate of their seeds), each row in the
    table its Reading names: the ambiguity split's (D3 at the dev-selected epoch), the reference on
    folds alone, and one stage table per EPR row (`epr`: each such row's EPRConfig), with the
    reference on the same folds first."""
    tables = []
    family = {m: s for m, s in summaries.items() if reading(m).table == "ambiguity"}
    if family:
        tables.append("D3 at the dev-selected epoch; D2 agreement at the last epoch (percent):\n"
                      + markdown_table(family))
    stages = [m for m in summaries if reading(m).table == "stages"]
    folds = {m: s for m, s in summaries.items() if reading(m).table == "folds"}
    if folds and not stages:
        tables.append("Utterance WA/UA/F1 over all test folds (percent):\n"
                      + markdown_table(folds, CV_COLUMNS))
    for row in stages:
        e = epr[row]
        forest = ", forests fitted on the fold network's profiles" if (
            e.forest_fit == "fold_network" and e.protocol != "in_sample") else ""
        tables.append(f"{row} ({e.labels} labels, protocol {e.protocol}{forest}), utterance "
                      "WA/UA/F1 over all folds (percent):\n"
                      + stage_table(summaries[row], e.depth, vgg_name(e.labels),
                                    reference=summaries.get("reference_cv")))
    return tables


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
            raise ConfigError(f"{run / row}: its seeds mix EPR settings (protocol, depth, labels, forest_fit): "
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


def folder_report(run: Path, figures: bool = False) -> str:
    """The report of a runner.train or runner.tune folder: a sweep's report rebuilt and rewritten
    (report.md, report.csv, best.txt); for a runner.train folder, every row's mean ± std over the
    seeds it finished, the paired tests, the EPR stage tables, which code ran which seeds, and the
    wall times of its last run. Raises ConfigError naming the folder on bad input."""
    if (run / "sweep.json").is_file():
        return write_report(run)
    if not run.is_dir():
        raise ConfigError(f"{run}: not a folder written by runner.train")
    summaries, counts, by_seed = {}, {}, {}
    for method_dir in sorted(p for p in run.iterdir() if p.is_dir()):
        seeds = {seed: outcome(method_dir.name, folder)
                 for seed, folder in finished_seeds(method_dir).items()}
        if seeds:
            by_seed[method_dir.name] = seeds
            summaries[method_dir.name] = aggregate(list(seeds.values()))
            counts[method_dir.name] = len(seeds)
    if not summaries:
        raise ConfigError(f"{run}: no finished seed (no <method>/seed<k>/config.txt)")
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
    if (summary := run / "summary.json").exists():
        walls = {m: [s["wall_s"] for s in rows]
                 for m, rows in json.loads(summary.read_text())["per_seed"].items()}
        # summary.json is the last runner.train's here: a folder several wrote (one per row or
        # seed) keeps the others' wall times only in a times.log (studies/common.sh writes one).
        parts.append("wall time per seed (s), the last runner.train run here: " + ", ".join(
            f"{m} {sum(w) / len(w):.0f}" for m, w in walls.items()))
    return "\n\n".join(parts)
