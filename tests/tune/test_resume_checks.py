"""--resume continues a sweep only with the code and the config it was started with; paths and
the tracking store may change (a new head, another mount). The sweep's options come back from
its sweep.json when the command gives none."""

import argparse
from pathlib import Path

import pytest

from emoref.config import as_overrides, build_config
from emoref.provenance import code_digest
from runner import tune


def record(**changes) -> dict:
    base = build_config("smoke", ["corpus.cache_dir=/old/cache"], method="ipr")
    return {"code_digest": code_digest(), "git_sha": "abc1234", "base_config":
            as_overrides(base), **changes}


def test_the_same_code_and_config_resume_and_paths_may_move(capsys):
    now = build_config("smoke", ["corpus.cache_dir=/shared/cache"], method="ipr")
    tune.check_resumable(Path("/s/x"), record(), now)


def test_other_code_is_refused_naming_the_sweeps_commit(capsys):
    with pytest.raises(SystemExit) as stop:
        tune.check_resumable(Path("/s/x"), record(code_digest="0" * 64),
                             build_config("smoke", [], method="ipr"))
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "was started with other code" in error and "commit abc1234" in error


def test_another_config_is_refused_naming_the_keys(capsys):
    with pytest.raises(SystemExit):
        tune.check_resumable(Path("/s/x"), record(),
                             build_config("smoke", ["ipr.mu=0.3", "train.epochs=4"], "ipr"))
    error = capsys.readouterr().err
    assert "ipr.mu=0.2 (this command: 0.3)" in error and "train.epochs=3 (this command: 4)" in error
    assert "--resume --name x alone" in error


def test_resume_by_name_alone_takes_the_sweeps_own_options(tmp_path):
    folder = tmp_path / "sweeps" / "s1"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(
        '{"preset": "smoke", "overrides": ["train.warmup_epochs=1"], "options": '
        '{"cpus_per_trial": 2.0, "no_baselines": true}}')
    args = tune.parse(["ipr", "--resume", "--name", "s1", "--storage-path",
                       str(tmp_path / "sweeps")])
    tune.settle(args)
    assert (args.preset, args.overrides) == ("smoke", ["train.warmup_epochs=1"])
    assert (args.cpus_per_trial, args.no_baselines, args.max_concurrent) == (2.0, True, 0)
    given = tune.parse(["ipr", "--resume", "--name", "s1", "--storage-path",
                        str(tmp_path / "sweeps"), "--cpus-per-trial", "1"])
    tune.settle(given)
    assert given.cpus_per_trial == 1.0  # the command line wins
