"""A sweep refuses storage that one of its Ray nodes cannot see (its own disk), before anything
starts. Its own module: the two-node cluster of test_multinode.py is gone by the time this one
starts its own."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.distributed.test_multinode import tune_on

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture
def node_with_its_own_disk(tmp_path):
    """A head node, and a second node started in its own mount namespace where `tmp_path/local`
    is a private tmpfs: to that node the folder is node-local storage, as a node's own disk is on
    a real cluster. Needs root (unshare, mount); skips otherwise."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to give a node a private mount")
    local = tmp_path / "local"
    local.mkdir()
    ray.shutdown()
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False})
    ray_cli = str(Path(sys.executable).parent / "ray")
    script = (f"mount -t tmpfs emoref-node-local {shlex.quote(str(local))} && exec "
              f"{shlex.quote(ray_cli)} start --address={cluster.address} --num-cpus=1 --block")
    log = (tmp_path / "second-node.log").open("w")
    worker = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               script], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        for _ in range(120):
            if len([n for n in ray.nodes() if n["Alive"]]) == 2:
                break
            # `ray start` gives its raylet 30 s to register (Ray's limit, not a setting): beside
            # other Ray instances on a loaded machine it timed out, which its log then says.
            assert worker.poll() is None, ("the second node did not start:\n" +
                                           (tmp_path / "second-node.log").read_text()[-3000:])
            time.sleep(1)
        else:
            pytest.fail("the second node did not join in 120 s")
        yield cluster, local
    finally:
        ray.shutdown()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        log.close()
        cluster.shutdown()


def test_a_sweep_refuses_storage_one_node_cannot_see(node_with_its_own_disk):
    cluster, local = node_with_its_own_disk
    done = tune_on(cluster.address, local)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "not every Ray node sees the storage this sweep uses" in error[0]
    for path in (local / "sweeps" / "two-nodes", local / "cache", local):
        assert str(path) in error[0]  # the sweep folder, the feature cache, the SQLite store
    assert "on_bad_audio" not in error[0]
    assert not (local / "sweeps" / "two-nodes").exists()  # nothing left of a sweep never started
