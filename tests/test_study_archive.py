"""The EPR study's finished seeds kept in the repository (studies/results/epr, written by
studies/epr.sh): docs/results.md's numbers are read from them, so they must stay readable by
runner.report and be what their row names say."""

import re
from pathlib import Path

import pytest
import torch

from emoref.reports import folder_report as report

ARCHIVE = Path(__file__).resolve().parents[1] / "studies" / "results" / "epr"
ROW = re.compile(r"epr(?P<soft>_soft)?_(?P<protocol>paper|in_sample|nested)"
                 r"(?P<accuracy>_monitor_accuracy)?(?P<fold_forest>_fold_forest)?"
                 r"|epr_stage1_(?P<capacity>width025|hop5)")


def settings(seed: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in seed.joinpath("config.txt").read_text().splitlines()
                if "=" in line and not line.startswith("#"))


def finished(row: Path) -> list[Path]:
    return sorted(s for s in row.glob("seed*") if (s / "config.txt").is_file())


rows = sorted(p for p in ARCHIVE.iterdir() if p.is_dir()) if ARCHIVE.is_dir() else []
pytestmark = pytest.mark.skipif(not rows, reason="no finished seed archived in studies/results/epr")


@pytest.mark.parametrize("row", rows, ids=lambda p: p.name)
def test_archived_seeds_are_what_their_row_says(row):
    for seed in finished(row):
        config = settings(seed)
        assert config["seed"] == seed.name[4:]
        assert config["corpus.name"] == "emodb"
        # Paths are written relative to the repository, never as this machine's.
        assert not config["corpus.root"].startswith("/"), seed
        if row.name == "reference_cv":
            continue
        match = ROW.fullmatch(row.name)
        assert match, f"{row.name}: not a row studies/epr.sh writes"
        assert config["epr.protocol"] == (match["protocol"] or "paper")
        assert config["epr.labels"] == ("soft" if match["soft"] else "mixed")
        assert config["epr.depth"] == ("1" if match["capacity"] else
                                       "3" if match["soft"] else "5")
        # the stage-1 rows change one factor of the cpu preset each
        assert config["epr.width"] == ("0.25" if match["capacity"] == "width025" else "0.125")
        assert config["audio.segment_hop"] == ("5" if match["capacity"] == "hop5" else "10")
        assert config["epr.monitor"] == ("accuracy" if match["accuracy"] else "loss")
        # seeds finished before epr.forest_fit existed have the default's behaviour
        assert config.get("epr.forest_fit", "protocol") == (
            "fold_network" if match["fold_forest"] else "protocol")
        provenance = seed / "provenance.txt"  # written since the study's seeds 2+ ran
        if provenance.exists():
            # "+dirty" only says some tracked file was edited (docs, while the study ran); the
            # digest pins the package's code
            assert re.fullmatch(r"commit=[0-9a-f]{40}(\+dirty)?\ncode_digest=[0-9a-f]{64}\n",
                                provenance.read_text()), f"{seed}: no commit or digest recorded"
        for name in ("epochs.csv", "table.csv", "confusion.json"):
            assert (seed / name).is_file(), f"{seed}: {name} missing"


def test_runner_report_reads_the_archive():
    text = report(ARCHIVE)
    counts = dict(re.findall(r"(\w+) (\d+) seed\(s\)", text.splitlines()[0]))
    assert counts == {row.name: str(len(finished(row))) for row in rows if finished(row)}
    if (ARCHIVE / "reference_cv").is_dir():  # the classical reference on the same folds
        assert "| reference" in text
    if list(ARCHIVE.glob("*/seed*/provenance.txt")):  # which code each seed ran
        assert "code that ran" in text


def test_seeds_in_flight_hold_a_state_their_run_can_resume_from():
    """A seed stopped part-way keeps in_flight/<row>/seed<k>/state.pt (runner.train
    --state-dir): it must read back with weights_only=True and say which run it belongs to."""
    for state in sorted(ARCHIVE.glob("in_flight/*/seed*/state.pt")):
        row = state.parent.parent.name
        assert ROW.fullmatch(row), state
        assert not (ARCHIVE / row / state.parent.name / "config.txt").is_file(), \
            f"{state}: its seed is archived as finished; the state should have been removed"
        saved = torch.load(state, map_location="cpu", weights_only=True)
        assert {"method", "history", "attempt", "config_sha", "split_hash", "code"} <= set(saved)
        assert "config" not in saved  # (its paths are the machine's that ran it)
        assert saved["history"] and saved["method"]["stage"] >= 1, state
