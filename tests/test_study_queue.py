"""studies/epr.sh's job queue: its lanes share one queue, so every job runs exactly once, a
seed's rows never run side by side, the rows that load a seed's stage-1 networks wait for the row
that trains them, and neither lane idles while the other has work. Training is the one part
stood in for here (a real seed is an hour of compute): PY is a script that logs when each
runner.train starts and ends and writes the finished seed's files as runner.train would."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STAND_IN = r"""#!/usr/bin/env bash
# python -m runner.train|runner.report ...: logs and writes what the study script reads
[[ $2 == runner.report ]] && { echo "report of $3"; exit 0; }
args=" $* "
out=$(sed -E 's/.* --out ([^ ]+) .*/\1/' <<< "$args")
if [[ $3 == reference ]]; then
  for k in 0 1 2 3 4; do mkdir -p "$out/reference_cv/seed$k"; echo seed=$k > "$out/reference_cv/seed$k/config.txt"; done
  exit 0
fi
row=$(sed -E 's/.* --label ([^ ]+) .*/\1/' <<< "$args")
k=$(sed -E 's/.* seed=([0-9]+) .*/\1/' <<< "$args")
state=$(sed -E 's/.* --state-dir ([^ ]+) .*/\1/' <<< "$args")/$row/seed$k/state.pt
[[ -f $state ]] && echo "resumed $row $k $(date +%s.%N)" >> "$out/jobs.log"
echo "start $row $k $(date +%s.%N)" >> "$out/jobs.log"
mkdir -p "${state%/*}" && echo "state of $row $k" > "$state"  # as rank 0 exports it
[[ $row == epr_nested ]] && sleep 1.2 || sleep 0.3
mkdir -p "$out/$row/seed$k"
for name in epochs.csv table.csv confusion.json; do echo x > "$out/$row/seed$k/$name"; done
printf 'seed=%s\ncorpus.root=%s\n' "$k" "$out" > "$out/$row/seed$k/config.txt"
echo "end $row $k $(date +%s.%N)" >> "$out/jobs.log"
"""


def run_study(tmp_path: Path, seeds: int, nested: int, done: dict[str, list[int]] = {},
              fold_forest: int = 0, capacity: int = 0):
    python = tmp_path / "python"
    python.write_text(STAND_IN)
    python.chmod(0o755)
    out, archive = tmp_path / "out", tmp_path / "archive"
    for row, ks in done.items():  # seeds a previous run finished
        for k in ks:
            (out / row / f"seed{k}").mkdir(parents=True)
            (out / row / f"seed{k}" / "config.txt").write_text(f"seed={k}\n")
    env = {**os.environ, "PY": str(python), "OUT": str(out), "ARCHIVE": str(archive),
           "SEEDS": str(seeds), "NESTED_SEEDS": str(nested), "LANES": "2",
           "FOLD_FOREST_SEEDS": str(fold_forest), "CAPACITY_SEEDS": str(capacity),
           "EMODB": str(tmp_path / "emodb"), "POLL": "0.1",
           # The folder archived paths are written relative to (the repository's parent by
           # default; a frozen copy of the code elsewhere sets it).
           "BESIDE": str(tmp_path)}
    subprocess.run(["bash", "studies/epr.sh"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    events = []
    for line in (out / "jobs.log").read_text().splitlines():
        what, row, k, at = line.split()
        if what != "resumed":
            events.append((float(at), what, row, int(k)))
    return sorted(events), out, archive


def intervals(events):
    starts = {(row, k): at for at, what, row, k in events if what == "start"}
    return {job: (starts[job], at) for at, what, *job in events if what == "end"
            for job in [tuple(job)]}


def test_every_job_once_in_a_safe_order_on_both_lanes(tmp_path):
    events, out, archive = run_study(tmp_path, seeds=3, nested=2, fold_forest=2, capacity=2)
    spans = intervals(events)
    rows = ["epr_paper", "epr_soft_paper", "epr_in_sample", "epr_soft_in_sample"]
    own = {"epr_paper_monitor_accuracy", "epr_stage1_base", "epr_stage1_width025",
           "epr_stage1_hop5"}
    expected = ({(r, k) for r in rows for k in range(3)}
                | {(r, k) for r in ("epr_nested", "epr_soft_nested") for k in range(2)}
                | {("epr_paper_monitor_accuracy", k) for k in range(3)}
                | {("epr_paper_fold_forest", k) for k in range(2)}
                | {(r, k) for r in ("epr_stage1_base", "epr_stage1_width025", "epr_stage1_hop5")
                   for k in range(2)})
    assert sorted(spans) == sorted(expected)
    assert sum(what == "start" for _, what, _, _ in events) == len(expected)  # each once
    for (row, k), (start, end) in spans.items():
        if row != "epr_paper" and row not in own:
            # it loads epr_paper's stage-1 networks: they must be stored first
            assert start >= spans[("epr_paper", k)][1], (row, k)
        for (other, j), (s2, e2) in spans.items():
            if j == k and other != row and not {row, other} & own:
                assert end <= s2 or e2 <= start, f"{row} and {other} of seed {k} overlapped"
    # two lanes: some jobs did run side by side
    assert any(s1 < e2 and s2 < e1 for a, (s1, e1) in spans.items()
               for b, (s2, e2) in spans.items() if a < b)
    # the stage-1 rows change one factor each against epr_paper's stage 1 ...
    logged = (out / "times.log").read_text().splitlines()
    for row, factor in (("epr_stage1_width025", "epr.width=0.25"),
                        ("epr_stage1_hop5", "audio.segment_hop=5")):
        line = next(x for x in logged if f" {row} seed0 " in x)
        assert f" {factor}" in line and " epr.depth=1" in line and "epr.protocol=paper" in line
    # ... and the base row is epr_paper's stage 1 alone, trained beside them
    base = next(x for x in logged if " epr_stage1_base seed0 " in x)
    assert " epr.depth=1" in base and "epr.width" not in base and "segment_hop" not in base
    # every finished seed is archived, with a relative corpus path
    assert all((archive / r / f"seed{k}" / "config.txt").read_text().endswith(
        "corpus.root=../out\n") for r, k in expected)
    assert (out / "report.md").read_text().startswith("report of")


def test_finished_seeds_are_not_run_again(tmp_path):
    done = {"epr_paper": [0, 1], "epr_soft_paper": [0]}
    events, _, _ = run_study(tmp_path, seeds=2, nested=0, done=done)
    started = {(row, k) for _, what, row, k in events if what == "start"}
    assert not started & {(r, k) for r, ks in done.items() for k in ks}
    assert ("epr_soft_paper", 1) in started and ("epr_in_sample", 0) in started


def test_a_seed_in_flight_goes_on_from_the_archive_in_a_fresh_checkout(tmp_path):
    """A study stopped with its machine leaves each seed in flight in ARCHIVE/in_flight: the
    state runner.train --state-dir exports and the seconds and attempts so far. A fresh checkout
    (no OUT at all) hands that state to the same seed's runner.train, adds the seconds to its
    wall time, and removes both once the seed is archived."""
    archive = tmp_path / "archive" / "in_flight" / "epr_paper" / "seed0"
    archive.mkdir(parents=True)
    (archive / "state.pt").write_text("state of epr_paper 0")
    (archive / "epr_paper_seed0.running").write_text("5000 2\n")
    events, out, archive_root = run_study(tmp_path, seeds=1, nested=0)
    log = (out / "jobs.log").read_text().splitlines()
    assert [x.split()[:3] for x in log if x.startswith("resumed")] == [["resumed", "epr_paper", "0"]]
    line = next(x for x in (out / "times.log").read_text().splitlines() if " epr_paper seed0 " in x)
    took = int(line.split(" epr_paper seed0 ")[1].split()[0])
    assert 5000 <= took < 5100 and "(3 attempts)" in line and "--state-dir" in line
    archived = (archive_root / "times.log").read_text()  # paths as the script names them
    assert "--state-dir $ARCHIVE/in_flight " in archived and str(tmp_path) not in archived
    assert not (archive_root / "in_flight").exists()  # every seed finished: nothing in flight
    assert (archive_root / "epr_paper" / "seed0" / "config.txt").is_file()


def test_a_seed_stopped_part_way_goes_first(tmp_path):
    """Its state waits in the archive, and its hours count only once it finishes: a lane takes
    it before any job queued ahead of it (the others keep their order)."""
    archive = tmp_path / "archive" / "in_flight" / "epr_stage1_hop5" / "seed1"
    archive.mkdir(parents=True)
    (archive / "state.pt").write_text("state of epr_stage1_hop5 1")
    events, _, _ = run_study(tmp_path, seeds=2, nested=1, capacity=2)
    starts = [(row, k) for _, what, row, k in events if what == "start"]
    # the two lanes' first jobs (without the rule: epr_paper seeds 0 and 1)
    assert set(starts[:2]) == {("epr_stage1_hop5", 1), ("epr_paper", 0)}, starts
    # after the stopped seed, the queue's order: the rows (nested pEPR, nested sEPR, the
    # accuracy monitor) before the stage-1 rows
    assert starts.index(("epr_nested", 0)) < starts.index(("epr_paper_monitor_accuracy", 0))
    assert starts.index(("epr_paper_monitor_accuracy", 0)) < starts.index(("epr_stage1_width025", 0))
    # nested sEPR waits only for its seed's nested pEPR (one seed's rows never run side by side):
    # it starts once that seed is archived, the other lane slipping in at most one job meanwhile
    nested_end = next(at for at, what, row, k in events if (what, row) == ("end", "epr_nested"))
    after = [(row, k) for at, what, row, k in events if what == "start" and at > nested_end]
    assert ("epr_soft_nested", 0) in after[:2], after
