"""End to end: the real `python -m runner.data` command in a subprocess."""

import os
import subprocess
import sys

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args, cache):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "runner.data", *args, f"corpus.cache_dir={cache}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_default_corpus_report(tmp_path):
    done = run("synthetic", "corpus.synthetic.n_utterances=160", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ambiguity split" in done.stdout and "split hash:" in done.stdout
    assert "agreement histogram" in done.stdout


def test_kfold_shorthand(tmp_path):
    done = run("corpus.synthetic.n_utterances=160", "split=kfold", "split.folds=4", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "4-fold split (random)" in done.stdout


def test_errors_exit_nonzero_with_a_message(tmp_path):
    done = run("emodb", f"corpus.root={tmp_path / 'missing'}", cache=tmp_path)
    assert done.returncode == 2 and "corpus root not found" in done.stderr
    done = run("synthetic", "split.dev_fraction=2", cache=tmp_path)
    assert done.returncode == 2 and "split.dev_fraction" in done.stderr
    assert "Traceback" not in done.stderr
