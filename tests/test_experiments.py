"""The experiment files (experiments/*.txt): each loads, says what it reproduces and needs, and
its search space fits it; a file's mistakes are named by file and line, and the command line wins
over the file."""

import subprocess
import sys
from pathlib import Path

import pytest

from emoref.config import PRESETS, ConfigError
from emoref.sweep import check_space, read_space, start_point
from runner._cli import build_checked, read_config_file

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "experiments").glob("*.txt"))


def test_there_are_the_papers_settings_and_the_cpu_ones():
    names = {p.stem for p in FILES}
    assert {"ipr-iemocap-paper", "epr-emodb-paper", "epr-savee-paper", "epr-casia-paper",
            "ipr-synthetic-cpu", "ipr-emodb-cpu", "epr-emodb-cpu"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_file_loads_says_what_it_is_and_its_space_fits(path):
    text = path.read_text()
    for heading in ("Reproduces:", "Needs:", "Run"):
        assert heading in text, f"{path.name} says nothing under {heading}"
    file = read_config_file(path)
    assert file.preset in PRESETS
    method = path.stem.split("-")[0]
    root = [] if "corpus.name=synthetic" in text else ["corpus.root=/data/corpus"]
    config = build_checked(file.preset, file, root, method)
    assert dict(o.split("=", 1) for o in file.overrides)["corpus.name"] == config.corpus.name
    if file.space:
        space = read_space(file.space, method)
        check_space(space, config, str(file.space))
        assert start_point(space, config) is not None  # the file's values lie inside the ranges


def test_the_paper_ipr_file_fine_tunes_wav2vec2_on_one_gpu_per_trial():
    file = read_config_file(REPO / "experiments" / "ipr-iemocap-paper.txt")
    config = build_checked(file.preset, file, ["corpus.root=/data/iemocap"], "ipr")
    assert (config.encoder.kind, config.encoder.pretrained, config.encoder.freeze) == (
        "wav2vec2", True, False)
    assert (config.gpu, config.workers, config.train.precision) == (True, 1, "bf16")
    assert (config.split.d1_size, config.split.d2_size, config.split.d3_size) == (1710, 3421, 400)
    assert config.train.lr == 1e-5 and config.train.epochs == 50
    lr = read_space(file.space, "ipr")["train.lr"].values
    assert lr[0] <= 1e-5 <= lr[1] < 3e-4  # a fine-tuning range, not the small network's


def test_the_command_line_wins_over_the_file(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("preset=smoke\ntrain.lr=0.002  # a comment\n\ntrain.epochs=4\n")
    file = read_config_file(path)
    config = build_checked(file.preset, file, ["train.epochs=2"], "ipr")
    assert (config.train.lr, config.train.epochs) == (0.002, 2)


@pytest.mark.parametrize("text,expected", [
    ("preset=smoke\n# fine\ntrain.epochss=3\n", ":3: unknown config key 'train.epochss'"),
    ("train.lr=5\n", ":1: train.lr: expected a learning rate in (0, 1), got 5.0"),
    ("train.lr\n", ":1: expected key=value, got 'train.lr'"),
    ("preset=laptop\n", ": preset: expected one of"),
])
def test_a_bad_file_is_named_with_its_line_before_anything_runs(tmp_path, text, expected):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "runner.train", "ipr", "--config", str(path),
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert f"error: {path}{expected}" in done.stderr
    if "epochss" in text:
        assert "did you mean 'train.epochs'?" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_cli_key_error_is_not_blamed_on_the_file(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("train.lr=0.001\n")
    with pytest.raises(ConfigError) as err:
        build_checked("smoke", read_config_file(path), ["train.lr=7"], "ipr")
    assert str(err.value).startswith("train.lr:")
