"""tests/run.py (`make test`'s entry point) reports what pytest reports: its exit status and its
summary, for a failing suite as for a passing one."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_entry(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tests" / "run.py"), "-q",
                           "-p", "no:cacheprovider", str(folder)],
                          cwd=folder, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("body, status, summary", [
    ("assert 1 + 1 == 2", 0, "1 passed"),
    ("assert 1 + 1 == 3", 1, "1 failed"),
])
def test_the_entry_point_exits_with_pytests_status(tmp_path, body, status, summary):
    (tmp_path / "test_one.py").write_text(f"def test_one():\n    {body}\n")
    done = run_entry(tmp_path)
    assert done.returncode == status, done.stdout + done.stderr
    assert summary in done.stdout


def test_no_tests_is_pytests_own_status(tmp_path):
    done = run_entry(tmp_path)
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr
