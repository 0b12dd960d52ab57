"""studies/common.sh's timed_to: the wall time a study logs for a command stopped part-way and run
again covers every attempt, not only the last (the EPR study runs for many hours across
restarts, and docs/results.md quotes these times)."""

import re
import signal
import subprocess
import time
from pathlib import Path

COMMON = Path(__file__).resolve().parents[1] / "studies" / "common.sh"


def study(tmp_path: Path, seconds: float) -> subprocess.Popen:
    script = tmp_path / "study.sh"
    script.write_text(f"set -euo pipefail\nsource {COMMON}\n"
                      'BEAT=1 timed_to times.log "row seed0" sleep "$1"\n')
    return subprocess.Popen(["bash", str(script), str(seconds)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, start_new_session=True)


def logged(tmp_path: Path) -> list[str]:
    log = tmp_path / "times.log"
    return log.read_text().splitlines() if log.exists() else []


def test_one_attempt_logs_its_wall_time(tmp_path):
    assert study(tmp_path, 1).wait() == 0
    (line,) = logged(tmp_path)
    assert re.fullmatch(r"\S+ \S+ row seed0 [12] s: sleep 1", line)
    assert not list(tmp_path.glob("*.running"))


def test_a_killed_attempt_counts_towards_the_next(tmp_path):
    first = study(tmp_path, 60)
    time.sleep(3.5)
    first.send_signal(signal.SIGKILL)  # as a machine going away would: no trap runs
    first.wait()
    assert logged(tmp_path) == []  # an unfinished command logs nothing
    (mark,) = tmp_path.glob("*.running")
    assert mark.name == "times.log.row_seed0.running"
    time.sleep(2)  # the killed attempt's beat must not go on counting
    seconds_killed = int(mark.read_text().split()[0])
    assert 2 <= seconds_killed <= 4
    assert study(tmp_path, 1).wait() == 0
    (line,) = logged(tmp_path)
    took = int(re.search(r" (\d+) s \(2 attempts\): sleep 1$", line)[1])
    assert took == seconds_killed + 1 or took == seconds_killed + 2
    assert not list(tmp_path.glob("*.running"))
