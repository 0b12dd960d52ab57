"""runner.report's tables that compare rows: EPR rows paired against each other stage by stage."""

from types import SimpleNamespace

import pytest
from scipy import stats

from runner.report import epr_rows_paired_table


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
