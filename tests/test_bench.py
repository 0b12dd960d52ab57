"""The benchmark suite runs end to end on tiny data and prints every pair's ratio.

Speed is not asserted here (BENCHMARKS.md holds measured figures); this checks that `python -m
bench` works on a fresh checkout, with real Ray, real trainings and the real feature caches."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, side_by_side):
    """`python -m bench --quick` and `python -m bench.gpu --dry-run`, side by side: each spends a
    third of its time waiting (process and Ray start-up), so together they take less than one
    after the other. Each starts its own Ray instance (RAY_ADDRESS=local: neither joins the
    other's), and their figures mean nothing here. {name: (exit code, output, folder)}."""
    root = tmp_path_factory.mktemp("bench")
    # The synthetic fallback for pairs 5, 7, 9 and 10 and the GPU check's EPR step.
    env = {**os.environ, "EMOREF_EMODB": str(root / "absent"), "RAY_ADDRESS": "local"}
    commands = {
        "quick": ["-m", "bench", "--quick", "--json", root / "bench.json", "--work", root / "work"],
        # A generous budget (a cap, not a target: each step ends when its work does): beside the
        # other run on a loaded 2-core machine the IPR step alone can take 2-3 minutes, and with
        # a study training on the same cores, or a package without compiled bytecode, it took
        # more than its 319-s share of 900 s.
        "gpu": ["-m", "bench.gpu", root / "out", "--dry-run", "--budget", "1500"]}
    folders = {name: tmp_path_factory.mktemp(name) for name in commands}
    done = side_by_side(commands, folders, env, timeout=1800)
    return {name: (code, stdout + stderr, root) for name, (code, stdout, stderr) in done.items()}


def test_bench_quick_runs_every_pair_and_prints_ratios(runs):
    code, output, root = runs["quick"]
    assert code == 0, output[-3000:]
    for number in range(1, 11):
        assert f"== {number}." in output
    assert output.count("RATIO ") >= 10
    results = json.loads((root / "bench.json").read_text())
    assert len(results) == 10
    for result in results:
        assert result["ratios"] and all(math.isfinite(v) for v in result["ratios"].values())
        for figure in result["figures"]:
            assert figure["values"] and figure["median"] == figure["median"]
    # Pair 2 built its embedding cache, and the cached sweep's trainings read it.
    assert list((root / "work" / "pair2" / "cache" / "features" / "embeddings").glob("*/*.npy"))


def test_bench_refuses_an_unknown_pair():
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "99"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--only" in done.stderr


def test_gpu_check_dry_run_runs_every_step_and_writes_its_report(runs):
    """`python -m bench.gpu --dry-run`: the GPU check's steps at tiny sizes on the CPU (its figures
    mean nothing; the real ones come from a GPU, BENCHMARKS.md)."""
    code, output, root = runs["gpu"]
    assert code == 0, output[-6000:]
    report = json.loads((root / "out" / "gpu-report.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["environment", "finetune", "ipr", "epr", "syncbn"]
    assert {s["status"] for s in steps.values()} == {"ok"}, [s["notes"] for s in steps.values()]
    assert report["dry_run"] and report["used_s"] <= report["budget_s"]
    finetune = steps["finetune"]["figures"]
    for ratio in ("bf16_over_fp32", "ray_over_plain"):
        assert math.isfinite(finetune[ratio]) and finetune[ratio] > 0
    ipr = steps["ipr"]["figures"]
    assert ipr["first_epochs"] == [0, 1] and ipr["resumed_same_rows"] and ipr["checkpoints"] >= 1
    assert steps["epr"]["figures"]["train_segments_per_s"] > 0
    assert steps["syncbn"]["figures"]["sync_batchnorm_layers"] > 0
    assert "## syncbn: ok" in (root / "out" / "gpu-report.md").read_text()


def test_gpu_check_skips_a_step_the_budget_cannot_fit_and_says_so():
    from bench.gpu import SHARES, Clock, Step, run_step
    clock = Clock(480.0)
    clock.start -= 479.5  # all but half a second spent
    ran = []
    step = run_step(Step("ipr"), clock, lambda s, deadline: ran.append(deadline))
    assert not ran and step.status == "skipped" and "budget" in step.notes[0]
    assert SHARES["ipr"][1] > 0.5


def test_gpu_check_refuses_to_measure_without_a_gpu(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, "-m", "bench.gpu", str(tmp_path / "out")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--dry-run" in done.stderr
    assert not (tmp_path / "out").exists()
