"""`python -m runner.train <method> workers=N` through the real command line and Ray Train."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from tests.distributed.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_train_with_two_workers_past_a_stale_ray_address_file(smoke_cache):
    """Two DDP workers through the command line, on a machine where a node killed before `ray
    stop` left Ray's address file behind: `ray.init()` would connect to the dead cluster and
    hang, so the run removes the file, says so, and trains on a local instance. RAY_TMPDIR gives
    this run its own Ray temp folder (short: Ray's socket paths must fit)."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="emo"))
    try:
        (ray_tmp / "ray").mkdir()
        address_file = ray_tmp / "ray" / "ray_current_cluster"
        address_file.write_text(f"127.0.0.1:{free_port()}")  # nothing listens
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        done = subprocess.run(
            [sys.executable, "-m", "runner.train", "baseline", "--preset", "smoke", "--seeds", "1",
             "--quiet", "--out", str(ray_tmp / "out"), "workers=2", "dist.cpus_per_worker=0.5",
             "train.epochs=2", f"dist.storage={ray_tmp / 'train'}",
             f"corpus.cache_dir={smoke_cache}"],
            cwd=REPO, env={**env, "RAY_TMPDIR": str(ray_tmp)}, capture_output=True, text=True,
            timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "does not answer" in done.stderr and str(address_file) in done.stderr
        assert not address_file.exists()
        seed0 = ray_tmp / "out" / "baseline" / "seed0"
        rows = list(csv.DictReader((seed0 / "epochs.csv").open()))
        assert [r["epoch"] for r in rows] == ["0", "1"] and {r["attempt"] for r in rows} == {"0.0"}
        saved = torch.load(seed0 / "checkpoint.pt", weights_only=True)
        assert "workers=2" in saved["config"]
        # One Train run folder per (method, corpus, seed, config): rerunning resumes it.
        assert len(list((ray_tmp / "train").glob("baseline-synthetic-seed0-*"))) == 1
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_bad_worker_settings_fail_before_ray_starts(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "runner.train", "ipr", "--preset", "smoke", "workers=2",
         "dist.placement=EVERYWHERE", f"corpus.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "dist.placement" in done.stderr and "STRICT_SPREAD" in done.stderr
