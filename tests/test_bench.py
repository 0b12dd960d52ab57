"""The benchmark suite runs end to end on tiny data and prints every pair's ratio.

Speed is not asserted here (BENCHMARKS.md holds measured figures); this checks that `python -m
bench` works on a fresh checkout, with real Ray, real trainings and the real feature caches."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_quick_runs_every_pair_and_prints_ratios(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "EMOREF_EMODB": str(tmp_path / "absent")}  # the synthetic fallback
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out),
                           "--work", str(tmp_path / "work")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for number in range(1, 8):
        assert f"== {number}." in done.stdout
    assert done.stdout.count("RATIO ") >= 7
    results = json.loads(out.read_text())
    assert len(results) == 7
    for result in results:
        assert result["ratios"] and all(math.isfinite(v) for v in result["ratios"].values())
        for figure in result["figures"]:
            assert figure["values"] and figure["median"] == figure["median"]
    # Pair 2 built its embedding cache, and the cached sweep's trainings read it.
    assert list((tmp_path / "work" / "pair2" / "cache" / "features" / "embeddings").glob("*/*.npy"))


def test_bench_refuses_an_unknown_pair():
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "8"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--only" in done.stderr
