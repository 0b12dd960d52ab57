"""A local Ray instance for the Ray Train tests, and the configs they share."""

import socket

import pytest

from emoref import ray_train
from emoref.config import build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split

ray = pytest.importorskip("ray")

# Dropout masks come from each rank's own torch generator and BatchNorm (without a GPU for
# SyncBatchNorm) normalises each rank's shard, so both are off where N workers are compared with
# one process; everything else (crops, augmentation, padding, losses, prototypes) is the same.
EXACT = ("encoder.batch_norm=false", "head.dropout=0", "trunk.dropout=0", "trunk.input_dropout=0",
         "train.epochs=4", "dist.cpus_per_worker=0.5")


def free_port() -> int:
    """A port nothing listens on now (the dashboard of an instance that just shut down may still
    hold Ray's default 8265 for a moment)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def local_ray():
    ray.shutdown()
    ray_train.start_ray(echo=False, local=True, num_cpus=2, dashboard_port=free_port())
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, smoke_cache):
    """(config builder, split) on the smoke corpus, checkpoints under a temporary folder."""
    root = tmp_path_factory.mktemp("dist")

    def config(*overrides, method=None):
        return build_config("smoke", [f"corpus.cache_dir={smoke_cache}",
                                      f"dist.storage={root / 'ray'}", *overrides], method=method)

    base = config()
    return config, make_split(load_manifest(base.corpus), base.split)
