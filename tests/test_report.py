"""runner.report's tables that compare: EPR rows paired against each other stage by stage, and
the forest against the argmax of the mean profile within a row."""

from types import SimpleNamespace

import pytest
from scipy import stats

from emoref.reports import epr_rows_paired_table, forest_paired_table


def stages(wa: list[float], ua: list[float]) -> dict[str, float]:
    return {**{f"final.stage{t + 1}_wa": v for t, v in enumerate(wa)},
            **{f"final.stage{t + 1}_ua": v for t, v in enumerate(ua)}}


def test_epr_rows_are_paired_over_shared_seeds_stage_by_stage_within_one_kind():
    paper = {0: stages([0.70, 0.72, 0.74], [0.60, 0.61, 0.65]),
             1: stages([0.68, 0.69, 0.73], [0.58, 0.62, 0.60]),
             2: stages([0.71, 0.70, 0.76], [0.62, 0.60, 0.66]),
             3: stages([0.50, 0.50, 0.50], [0.50, 0.50, 0.50])}  # no partner: left out
    in_sample = {0: stages([0.70, 0.70], [0.60, 0.58]), 1: stages([0.68, 0.66], [0.58, 0.57]),
                 2: stages([0.71, 0.69], [0.62, 0.63])}
    soft = {0: stages([0.1, 0.1], [0.1, 0.1]), 1: stages([0.2, 0.2], [0.2, 0.2])}
    configs = {"epr_paper": SimpleNamespace(labels="mixed", depth=3),
               "epr_in_sample": SimpleNamespace(labels="mixed", depth=2),
               "epr_soft_paper": SimpleNamespace(labels="soft", depth=2)}
    table = epr_rows_paired_table({"epr_paper": paper, "epr_in_sample": in_sample,
                                   "epr_soft_paper": soft}, configs)
    lines = [line for line in table.splitlines() if line.startswith("| epr")]
    # Only the two pEPR rows pair (sEPR is another kind), up to the shallower depth, in name order.
    assert [line.split(" | ")[:3] for line in lines] == [
        ["| epr_in_sample - epr_paper", "3", "1"], ["| epr_in_sample - epr_paper", "3", "2"]]
    # Stage 1 is identical in both rows; stage 2 differs by a known paired difference.
    assert "| +0.00 | 1.0000 | +0.00 | 1.0000 |" in lines[0]
    a = [in_sample[s]["final.stage2_ua"] for s in (0, 1, 2)]
    b = [paper[s]["final.stage2_ua"] for s in (0, 1, 2)]
    cells = lines[1].rstrip(" |").split(" | ")
    assert float(cells[-2]) == pytest.approx(100 * (sum(a) - sum(b)) / 3, abs=0.005)
    assert float(cells[-1]) == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=1e-4)


def test_no_comparable_epr_rows_no_table():
    configs = {"epr_paper": SimpleNamespace(labels="mixed", depth=2)}
    assert epr_rows_paired_table({"epr_paper": {0: stages([0.7] * 2, [0.6] * 2)}}, configs) == ""


def test_forest_is_paired_against_the_mean_profile_argmax_stage_by_stage():
    seeds = {s: {**stages(wa, ua), **{k.replace("final.", "final.argmax_"): v
                                      for k, v in stages(awa, aua).items()}}
             for s, (wa, ua, awa, aua) in enumerate([
                 ([0.70, 0.75], [0.60, 0.66], [0.72, 0.71], [0.63, 0.60]),
                 ([0.68, 0.74], [0.58, 0.65], [0.69, 0.70], [0.61, 0.62]),
                 ([0.71, 0.77], [0.62, 0.67], [0.71, 0.72], [0.62, 0.63])])}
    table = forest_paired_table(seeds, 2, "epr_paper")
    rows = [line.rstrip(" |").split(" | ") for line in table.splitlines()
            if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert [r[0] for r in rows] == ["| 1", "| 2"]
    for stage, row in zip((1, 2), rows):
        for key, (diff, p) in (("wa", row[1:3]), ("ua", row[3:5])):
            a = [seeds[s][f"final.stage{stage}_{key}"] for s in seeds]
            b = [seeds[s][f"final.argmax_stage{stage}_{key}"] for s in seeds]
            assert float(diff) == pytest.approx(100 * (sum(a) - sum(b)) / 3, abs=0.005)
            assert float(p.split()[0]) == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=1e-4)
    # Runs from before the argmax was kept have no such table.
    assert forest_paired_table({s: stages([0.7], [0.6]) for s in range(3)}, 1, "old") == ""


def test_a_difference_the_same_in_every_pair_gets_no_p():
    from emoref.reports import paired_cells
    assert paired_cells([0.72, 0.70], [0.70, 0.68]) == ["+2.00", "- (the same in every pair)"]
    assert paired_cells([0.70, 0.68], [0.70, 0.68]) == ["+0.00", "1.0000"]  # no difference at all
    assert paired_cells([0.73, 0.70, 0.71], [0.70, 0.68, 0.70])[1] == (
        f"{stats.ttest_rel([0.73, 0.70, 0.71], [0.70, 0.68, 0.70]).pvalue:.4f}")


def test_wall_times_come_from_a_studys_times_log_every_seed_once(tmp_path):
    from studies.progress import logged_walls
    (tmp_path / "times.log").write_text(
        "2026-12-01 09:24:25 reference 156 s: python -m runner.train reference --seeds 5\n"
        "2026-12-01 10:38:19 epr_paper seed0 3844 s: python -m runner.train epr seed=0\n"
        "2026-12-01 10:39:14 epr_paper seed1 3899 s: python -m runner.train epr seed=1\n"
        "2026-12-01 11:05:20 epr_soft_paper seed0 1621 s: python -m runner.train epr seed=0\n"
        # a seed run again (its folder removed): the later entry is the seed's time
        "2026-12-01 13:05:20 epr_soft_paper seed0 3000 s (2 attempts): python -m runner.train\n"
        "not a line the study writes\n")
    assert logged_walls(tmp_path) == {"reference": {-1: 156},
                                      "epr_paper": {0: 3844, 1: 3899},
                                      "epr_soft_paper": {0: 3000}}
    assert logged_walls(tmp_path / "absent") == {}


def test_epr_rows_pair_the_mean_profile_argmax_apart_from_the_forest():
    def seed(forest: list[float], argmax: list[float]) -> dict[str, float]:
        row = stages(forest, forest)
        return {**row, **{k.replace("final.", "final.argmax_"): v
                          for k, v in stages(argmax, argmax).items()}}
    paper = {0: seed([0.70, 0.80], [0.71, 0.75]), 1: seed([0.72, 0.79], [0.70, 0.74]),
             2: seed([0.69, 0.81], [0.69, 0.77])}
    in_sample = {0: seed([0.76, 0.77], [0.71, 0.72]), 1: seed([0.77, 0.78], [0.70, 0.70]),
                 2: seed([0.75, 0.76], [0.69, 0.71])}
    old = {k: stages([0.7, 0.7], [0.7, 0.7]) for k in (0, 1, 2)}  # kept no argmax
    configs = {name: SimpleNamespace(labels="mixed", depth=2)
               for name in ("epr_paper", "epr_in_sample", "epr_old")}
    rows = {"epr_paper": paper, "epr_in_sample": in_sample, "epr_old": old}
    argmax = epr_rows_paired_table(rows, configs, "argmax")
    lines = [line for line in argmax.splitlines() if line.startswith("| epr")]
    assert [line.split(" | ")[0] for line in lines] == ["| epr_in_sample - epr_paper"] * 2
    # stage 1: the same argmax in both rows (the same networks); stage 2: -4.33 points
    assert lines[0].split(" | ")[3] == "+0.00"
    assert lines[1].split(" | ")[3] == f"{100 * (0.72 + 0.70 + 0.71 - 0.75 - 0.74 - 0.77) / 3:+.2f}"
    forest = epr_rows_paired_table(rows, configs)
    assert "epr_in_sample - epr_old" in forest and "epr_in_sample - epr_old" not in argmax
    assert "the forest" in forest.splitlines()[0] and "argmax" in argmax.splitlines()[0]


def test_paired_p_is_undefined_without_spread_and_one_without_difference():
    import math

    from emoref.reports import p_text, paired_p
    # the same one-utterance step in both pairs, from different numerators (float rounding)
    a, b = [380 / 535, 390 / 535], [370 / 535, 380 / 535]
    assert math.isnan(paired_p(a, b)) and p_text(paired_p(a, b)) == "-"
    assert paired_p([0.7, 0.8], [0.7, 0.8]) == 1.0
    assert math.isnan(paired_p([0.7], [0.6]))  # one pair
    assert paired_p([0.70, 0.74, 0.72], [0.69, 0.70, 0.71]) == pytest.approx(
        stats.ttest_rel([0.70, 0.74, 0.72], [0.69, 0.70, 0.71]).pvalue)
    assert p_text(0.01) == "0.0100 (< 0.05)" and p_text(0.2) == "0.2000"


def test_epr_stage_figure_draws_each_rows_mean_and_spread_forest_and_argmax_per_kind(tmp_path):
    from emoref.reports import epr_stage_figure, epr_stage_figures

    def seed(forest: list[float], argmax: list[float]) -> dict[str, float]:
        row = stages(forest, forest)
        return {**row, **{k.replace("final.", "final.argmax_"): v
                          for k, v in stages(argmax, argmax).items()}}
    rows = {"epr_paper": {0: seed([0.70, 0.80, 0.82], [0.71, 0.75, 0.79]),
                          1: seed([0.72, 0.78, 0.80], [0.70, 0.74, 0.81])},
            "epr_old": {0: stages([0.6, 0.7], [0.6, 0.7]), 1: stages([0.62, 0.72], [0.6, 0.7])},
            "epr_soft_paper": {0: seed([0.70, 0.65], [0.71, 0.60]),
                               1: seed([0.72, 0.63], [0.70, 0.58])}}
    configs = {"epr_paper": SimpleNamespace(labels="mixed", depth=3),
               "epr_old": SimpleNamespace(labels="mixed", depth=2),
               "epr_soft_paper": SimpleNamespace(labels="soft", depth=2)}
    fig = epr_stage_figure(rows, configs, "mixed", [0.86, 0.87])
    (ax,) = fig.axes
    drawn = {bars.get_label(): bars.lines[0] for bars in ax.containers}  # errorbar: mean line
    drawn.update({line.get_label(): line for line in ax.get_lines()
                  if not line.get_label().startswith("_")})  # the reference
    assert sorted(drawn) == ["epr_old, forest (n=2)", "epr_paper, argmax (n=2)",
                             "epr_paper, forest (n=2)", "reference, same folds (n=2)"]
    assert list(drawn["epr_paper, forest (n=2)"].get_ydata()) == pytest.approx([71, 79, 81])
    assert list(drawn["epr_paper, argmax (n=2)"].get_ydata()) == pytest.approx([70.5, 74.5, 80])
    assert drawn["epr_paper, argmax (n=2)"].get_linestyle() == "--"
    forest, argmax = drawn["epr_paper, forest (n=2)"], drawn["epr_paper, argmax (n=2)"]
    assert forest.get_color() == argmax.get_color()  # one colour per row
    assert list(drawn["reference, same folds (n=2)"].get_ydata()) == pytest.approx([86.5, 86.5])
    # the error bars span one std over the seeds: 1 point either side at the paper row's stage 1
    (paper,) = [b for b in ax.containers if b.get_label() == "epr_paper, forest (n=2)"]
    spans = [abs(seg[1][1] - seg[0][1]) for seg in paper.lines[2][0].get_segments()]
    # the tables' std (n - 1): 70 and 72, 80 and 78, 82 and 80 give sqrt(2) either side
    assert spans == pytest.approx([2 * 2 ** 0.5] * 3)
    paths = epr_stage_figures(tmp_path, {**rows, "reference_cv": {0: {"final.cv_wa": 0.86}}},
                              configs)
    assert [p.name for p in paths] == ["epr_stages_mixed.png", "epr_stages_soft.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_each_rows_seeds_are_grouped_by_the_code_that_ran(tmp_path):
    from emoref.reports import code_that_ran

    def seed(row: str, k: int, provenance: str | None) -> None:
        folder = tmp_path / row / f"seed{k}"
        folder.mkdir(parents=True)
        (folder / "config.txt").write_text(f"seed={k}\n")
        if provenance is not None:
            (folder / "provenance.txt").write_text(provenance)

    a, b = "a" * 64, "b" * 64
    seed("epr_paper", 0, None)  # finished before provenance.txt was written
    seed("epr_paper", 1, f"commit={'1' * 40}\ncode_digest={a}\n")
    seed("epr_paper", 2, f"commit={'2' * 40}+dirty\ncode_digest={a}\n")
    seed("epr_nested", 0, f"commit={'3' * 40}\ncode_digest={b}\n")
    (tmp_path / "epr_nested" / "seed1").mkdir()  # unfinished: no config.txt
    line = code_that_ran(tmp_path, ["epr_nested", "epr_paper"])
    assert line.split("): ", 1)[1] == (
        "epr_nested bbbbbbbb seed 0 (commits 3333333); epr_paper not recorded seed 0; "
        "epr_paper aaaaaaaa seeds 1, 2 (commits 1111111, 2222222+dirty)")
    assert code_that_ran(tmp_path, ["epr_paper"]).count("aaaaaaaa") == 1
    (tmp_path / "reference_cv" / "seed0").mkdir(parents=True)
    (tmp_path / "reference_cv" / "seed0" / "config.txt").write_text("seed=0\n")
    assert code_that_ran(tmp_path, ["reference_cv"]) == ""  # nothing recorded: no line


def test_seeds_in_flight_say_how_far_they_got(tmp_path):
    """A state runner.train --state-dir keeps in <folder>/in_flight: the report says where its
    last report was, its attempt, code and the seconds its study counted so far."""
    from emoref.ray_train import write_state_file
    from studies.progress import in_flight

    assert in_flight(tmp_path) == ""
    folder = tmp_path / "in_flight" / "epr_nested" / "seed1"
    history = [(0, {"stage": 1.0, "fold": 0.0, "stage_epoch": 0.0}, {}),
               (1, {"stage": 2.0, "fold": 7.0, "stage_epoch": 3.0}, {})]
    write_state_file(folder / "state.pt", {"method": {}, "history": history, "attempt": 2,
                                          "code": "c" * 64})
    (folder / "epr_nested_seed1.running").write_text("12345 3\n")
    (tmp_path / "in_flight" / "epr_paper" / "seed0").mkdir(parents=True)
    (tmp_path / "in_flight" / "epr_paper" / "seed0" / "state.pt").write_bytes(b"torn")
    line = in_flight(tmp_path)
    assert "epr_nested seed1: 2 reports, the last at stage 2, fold 7, stage epoch 3, attempt 2, " \
           "code cccccccc, 12,345 s so far" in line
    assert "epr_paper seed0: unreadable state" in line
