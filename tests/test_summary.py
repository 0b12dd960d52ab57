"""Mean ± std over seeds and the tables built from them."""

import csv
import math

import pytest

from emoref.summary import aggregate, markdown_table, mean_std, write_csv


def test_mean_std_is_the_sample_standard_deviation():
    mean, std = mean_std([0.6, 0.7, 0.8])
    assert mean == pytest.approx(0.7) and std == pytest.approx(0.1)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_aggregate_keeps_metrics_every_seed_has():
    summary = aggregate([{"selected.d3_ua": 0.5, "final.x": 1.0}, {"selected.d3_ua": 0.7}])
    assert set(summary) == {"selected.d3_ua"}
    assert summary["selected.d3_ua"]["mean"] == pytest.approx(0.6)
    assert summary["selected.d3_ua"]["n"] == 2


def test_markdown_table_shows_percent_and_dashes():
    summaries = {"ipr": aggregate([{"selected.d3_wa": 0.7, "final.agreement_prototype": 0.8},
                                   {"selected.d3_wa": 0.72, "final.agreement_prototype": 0.8}]),
                 "baseline": aggregate([{"selected.d3_wa": 0.6}])}
    table = markdown_table(summaries)
    assert "| ipr | 71.00 ± 1.41 |" in table
    assert "| baseline | 60.00 ± 0.00 | - |" in table


def test_write_csv_takes_the_union_of_keys(tmp_path):
    path = write_csv(tmp_path / "sub" / "rows.csv", [{"a": 1}, {"a": 2, "b": 3}])
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"a": "1", "b": ""}, {"a": "2", "b": "3"}]
