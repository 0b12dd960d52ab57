"""Shared fixtures: tiny real audio files, a private cache, and where the real EmoDB lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("EMOREF_EMODB", REPO.parent / "shared" / "data" / "emodb"))


def write_tone(path: Path, seconds: float = 0.3, sr: int = 16000, channels: int = 1,
               freq: float = 220.0) -> Path:
    """A short harmonic tone with a little noise, written as a real PCM-16 WAV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t)
    wave += 0.01 * np.random.default_rng(len(path.name)).standard_normal(len(t))
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(path, data.astype(np.float32), sr, subtype="PCM_16")
    return path


# The fast tier (`make test-fast`, about 1.5 minutes on two cores): the unit and config tests,
# which start no training command and no Ray cluster beyond a few tasks. Every other module is in
# the full suite only (`make test`, what CI runs). A module is listed by its path under tests/.
FAST = ("data/", "models/", "methods/test_epr_math.py", "methods/test_ipr_math.py",
        "test_config.py", "test_metrics.py", "test_summary.py", "test_structure.py",
        "test_experiments.py", "test_storage.py", "test_run_entry.py", "tune/test_spaces.py",
        "tune/test_resume_checks.py", "cluster/test_cluster_files.py")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).resolve().parent
    for item in items:
        where = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
        if where.startswith(FAST):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory):
    """Runs the tests start without a --tracking-uri of their own (runner.train records every
    run) go to one store of the session, not to runs/mlflow.db in the checkout; child processes
    inherit it."""
    if "MLFLOW_TRACKING_URI" in os.environ:
        yield os.environ["MLFLOW_TRACKING_URI"]
        return
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri
    del os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture
def tone():
    return write_tone


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def emodb_root() -> Path:
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"EmoDB not present at {EMODB} (set EMOREF_EMODB to its folder)")
    return EMODB


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory) -> Path:
    """One cache folder for the tests that run the real commands on the smoke corpus: it holds the
    synthetic corpus and its openSMILE features, written once and read by the rest, as a sweep's
    trials share one cache (entries are keyed by everything they depend on; writers are locked)."""
    return tmp_path_factory.mktemp("smoke-cache")


def run_side_by_side(commands: dict[str, list], folders: dict[str, Path], env: dict[str, str],
                     timeout: float = 1200) -> dict[str, tuple[int, str, str]]:
    """Start every `python <args>` of `commands` at once from the repository, each writing
    stdout.log and stderr.log in its folder, and wait for all of them: commands that spend much
    of their time waiting (process, Ray and Tune start-up) take less together than one after the
    other. A command still running at the timeout is killed. {name: (exit code, stdout, stderr)}."""
    procs, logs = {}, []
    try:
        for name, args in commands.items():
            out = (folders[name] / "stdout.log").open("w")
            err = (folders[name] / "stderr.log").open("w")
            logs += [out, err]
            procs[name] = subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, env=env,
                                           stdout=out, stderr=err, text=True)
        codes = {name: proc.wait(timeout=timeout) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    return {name: (code, (folders[name] / "stdout.log").read_text(),
                   (folders[name] / "stderr.log").read_text()) for name, code in codes.items()}


@pytest.fixture(scope="session")
def side_by_side():
    return run_side_by_side
