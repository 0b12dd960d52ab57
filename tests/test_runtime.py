"""The cross-rank pieces with one process, and mixed precision on the real training code."""

import numpy as np
import pytest
import torch

from emoref.config import ConfigError, build_config
from emoref.provenance import code_digest, digest
from emoref.runtime import LOCAL, Runtime, restore_rng, rng_state
from emoref.methods.common import BatchCycle


def test_a_global_batch_splits_into_contiguous_shards_in_rank_order():
    shards = [Runtime(rank=r, world=3).shard(10) for r in range(3)]
    assert np.concatenate(shards).tolist() == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]
    assert LOCAL.shard(5).tolist() == list(range(5))
    # A rank's share of a global mean: its sum * world / n; the DDP average of the shares is the mean.
    total = torch.tensor([1.0, 2.0, 3.0, 4.0])
    shares = [Runtime(rank=r, world=2).share(total[s].sum(), 4)
              for r, s in enumerate([slice(0, 2), slice(2, 4)])]
    assert float(sum(shares) / 2) == pytest.approx(float(total.mean()))


def test_batch_cycle_resumes_where_it_stopped():
    rng = np.random.default_rng(0)
    cycle = BatchCycle(10, 4, rng)
    [next(cycle) for _ in range(4)]  # into the second pass
    saved, streams = cycle.state_dict(), rng_state(rng)
    expected = [next(cycle).tolist() for _ in range(5)]
    again_rng = np.random.default_rng(123)
    again = BatchCycle(10, 4, again_rng)
    again.load_state_dict(saved)
    restore_rng(streams, again_rng)
    assert [next(again).tolist() for _ in range(5)] == expected


def test_batch_cycle_skips_a_trailing_batch_too_short_for_every_rank():
    cycle = BatchCycle(9, 4, np.random.default_rng(0), min_size=2)
    sizes = [len(next(cycle)) for _ in range(6)]
    assert sizes == [4, 4, 4, 4, 4, 4]  # 9 = 4 + 4 + 1: the single row never forms a batch


def test_digest_sees_every_bit():
    state = {"w": torch.ones(3), "p": [torch.zeros(2)], "epoch": 2}
    same = {"w": torch.ones(3), "p": [torch.zeros(2)], "epoch": 2}
    assert digest(state) == digest(same)
    same["w"][1] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    assert digest(state) != digest(same)


def test_resumable_runs_are_keyed_by_the_sources_not_the_commit(tmp_path):
    # A copy of the package: its digest changes with a source's bytes or name, not with the
    # files beside the sources that do not train anything (docs, data, caches).
    import shutil
    from pathlib import Path
    import emoref
    package = tmp_path / "emoref"
    shutil.copytree(Path(emoref.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = code_digest.__wrapped__(package)
    assert before == code_digest.__wrapped__(package) == code_digest()  # the installed one
    (package / "NOTES.md").write_text("a doc beside the code")
    assert code_digest.__wrapped__(package) == before
    source = package / "methods" / "epr.py"
    source.write_text(source.read_text() + "\n# a comment is a change too\n")
    assert code_digest.__wrapped__(package) != before
    source.rename(package / "methods" / "epr2.py")
    assert code_digest.__wrapped__(package) != before


def test_mixed_precision_is_for_gpu_workers_and_checked_before_anything_runs():
    with pytest.raises(ConfigError, match="train.precision"):
        build_config("smoke", ["train.precision=bf16"])
    with pytest.raises(ConfigError, match="gpu"):
        build_config("smoke", ["gpu=true"])
    with pytest.raises(ConfigError, match="precision"):
        build_config("smoke", ["train.precision=fp8"])
    assert build_config("smoke", ["gpu=true", "workers=1", "train.precision=bf16"]).gpu


def test_a_ray_address_file_is_stale_only_when_nothing_answers(tmp_path, monkeypatch):
    import socket

    from emoref.ray_train import stale_ray_address

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert stale_ray_address() is None  # no file: nothing to connect to
    (tmp_path / "ray").mkdir()
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        live = f"127.0.0.1:{listening.getsockname()[1]}"
        (tmp_path / "ray" / "ray_current_cluster").write_text(live + "\n")
        assert stale_ray_address() is None  # a cluster answers: ray.init() connects to it
    # The listener is closed: the same address is now a cluster that is gone.
    assert stale_ray_address() == live
    monkeypatch.setenv("RAY_ADDRESS", live)
    assert stale_ray_address() is None  # an explicit address: Ray uses it, the file is not read
