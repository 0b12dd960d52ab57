"""Config tier: every shipped search space names real config fields with valid ranges under every
preset, and a bad space fails, naming the key, before Ray starts."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emoref.config import PRESETS, ConfigError, build_config
from emoref.sweep import (Range, apply_params, check_space, parse_space, read_space,
                          start_point)

REPO = Path(__file__).resolve().parents[2]
SPACES = REPO / "search_spaces"
METHOD_FILES = {"ipr": "ipr.yaml", "epr": "epr.yaml", "baseline": "baselines.yaml",
                "baseline_star": "baselines.yaml", "supervised": "baselines.yaml"}


@pytest.mark.parametrize("method", list(METHOD_FILES))
@pytest.mark.parametrize("preset", ["cpu", "paper", "smoke"])
def test_every_shipped_space_is_valid_under_every_preset(method, preset):
    space = read_space(SPACES / METHOD_FILES[method], method)
    # The smoke preset's 3 epochs leave no room to search the warm-up: --smoke-test fixes it.
    fixed = ["train.warmup_epochs=1"] if preset == "smoke" else []
    base = build_config(preset, fixed, method=method)
    space = {k: v for k, v in space.items() if k not in {f.split("=")[0] for f in fixed}}
    check_space(space, base)
    for key, rng in space.items():  # both ends and every choice give a config that holds them
        for value in rng.values:
            config = apply_params(base, {key: value})
            node = config
            for part in key.split("."):
                node = getattr(node, part)
            assert node == value, key


def test_every_space_file_is_used_and_spaces_centre_on_the_defaults():
    named = {line.split("=", 1)[1].split("#")[0].strip().rsplit("/", 1)[-1]
             for path in (REPO / "experiments").glob("*.txt")
             for line in path.read_text().splitlines() if line.startswith("space=")}
    assert {p.name for p in SPACES.glob("*.yaml")} == set(METHOD_FILES.values()) | named
    assert set(PRESETS) >= {"cpu", "paper", "smoke"}
    for method, name in METHOD_FILES.items():
        # The cpu preset's own values (the papers' where they give one) lie inside every range,
        # so the sweep's first configuration is the unsearched default.
        start = start_point(read_space(SPACES / name, method), build_config("cpu", [], method))
        assert start is not None, method
    ipr = start_point(read_space(SPACES / "ipr.yaml", "ipr"), build_config("cpu", [], "ipr"))
    assert ipr["ipr.gamma"] == 0.99 and ipr["ipr.mu"] == 0.2 and ipr["ipr.beta_max"] == 0.5


@pytest.mark.parametrize("text, names", [
    ("ipr.gama: {uniform: [0.9, 0.99]}", ["ipr.gama", "did you mean 'ipr.gamma'"]),
    ("ipr.gamma: {uniform: [0.9, 1.2]}", ["ipr.gamma=1.2", "momentum in [0, 1]"]),
    ("ipr.tau: {loguniform: [0.0, 0.3]}", ["ipr.tau", "low > 0"]),
    ("ipr.mu: {uniform: [0.5, 0.1]}", ["ipr.mu", "low < high"]),
    ("train.epochs: {uniform: [5, 10]}", ["train.epochs", "use int"]),
    ("ipr.prototype_update: {choice: [agree, hard]}", ["ipr.prototype_update=hard"]),
    ("ipr.gamma: [0.9, 0.99]", ["ipr.gamma", "expected one of"]),
    ("ipr: {uniform: [0.1, 0.2]}", ["ipr", "section"]),
])
def test_a_bad_space_names_the_key(tmp_path, text, names):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        check_space(read_space(path, "ipr"), build_config("cpu", [], "ipr"), str(path))
    for name in names:
        assert name in str(err.value)


def test_parse_space_rejects_malformed_entries():
    with pytest.raises(ConfigError, match="int needs integer bounds"):
        parse_space({"train.epochs": {"int": [1.5, 4]}}, "x")
    with pytest.raises(ConfigError, match="repeated"):
        parse_space({"epr.vgg": {"choice": ["A", "A"]}}, "x")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_space([], "x")
    assert parse_space({"a.b": {"logint": [1, 8]}}, "x") == {"a.b": Range("logint", (1, 8))}


def test_a_method_missing_from_a_sectioned_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no section for 'epr'"):
        read_space(SPACES / "baselines.yaml", "epr")


def test_cli_fails_on_a_bad_space_before_ray_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ipr.gamma: {uniform: [0.9, 0.99]}\nipr.tua: {loguniform: [0.01, 0.1]}\n")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "runner.tune", "ipr", "--smoke-test", "--space", str(bad),
         "--storage-path", str(tmp_path / "sweeps"), f"corpus.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 2, done.stderr
    assert "ipr.tua" in done.stderr and "did you mean 'ipr.tau'" in done.stderr
    assert "Ray" not in done.stdout + done.stderr  # no instance was started
    assert not (tmp_path / "sweeps").exists()  # nothing written either
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds: expected an integer >= 1"),
    (["--gpus-per-trial", "2", "--workers-per-trial", "1"], "must equal --workers-per-trial"),
    (["ipr.gamma=2"], "ipr.gamma: expected a momentum in [0, 1]"),
    (["--resume", "--name", "nothing-here"], "holds no sweep"),
])
def test_cli_rejects_bad_options_before_ray_starts(tmp_path, args, message):
    done = subprocess.run(
        [sys.executable, "-m", "runner.tune", "ipr", "--smoke-test", *args,
         "--storage-path", str(tmp_path / "sweeps"), f"corpus.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Ray" not in done.stdout + done.stderr


def test_cli_refuses_an_object_store_as_the_sweep_folder(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "runner.tune", "ipr", "--smoke-test", "--storage-path",
         "s3://bucket/sweeps", f"corpus.cache_dir={tmp_path / 'cache'}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=300)
    assert done.returncode == 2 and "--storage-path s3:/bucket/sweeps: expected a directory" in \
        done.stderr, done.stderr
    assert not list(tmp_path.glob("s3*"))  # no folder named after the URI either
