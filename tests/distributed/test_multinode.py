"""Two Ray nodes on this machine, one Train worker on each (STRICT_SPREAD)."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emoref import ray_train
from emoref.record import ListReporter

from tests.distributed.conftest import free_port

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture
def two_nodes():
    ray.shutdown()
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": free_port()})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_two_nodes_one_worker_each(two_nodes, prepared):
    config, split = prepared
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    run = config("workers=2", "dist.placement=STRICT_SPREAD", "dist.cpus_per_worker=1",
                 "train.epochs=2")
    reporter = ListReporter()
    result, digests = ray_train.train("baseline", run, split, reporter, echo=False)
    assert [r["epoch"] for r in reporter.rows] == [0, 1]
    assert digests[0] == digests[1]
    assert result.checkpoint is not None


# ---- A whole sweep on two nodes: `python -m runner.tune` as a user runs it on a cluster's head
# (RAY_ADDRESS), with the sweep folder and the SQLite store on a path both nodes see.

REPO = Path(__file__).resolve().parents[2]


def tune_on(address: str, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ADDRESS": address, "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "runner.tune", "ipr", "--smoke-test", "--num-samples", "2",
         "--seeds", "1", "--no-baselines", "--cpus-per-trial", "1", "--quiet",
         "--storage-path", str(root / "sweeps"), "--name", "two-nodes",
         "--tracking-uri", f"sqlite:///{root / 'mlflow.db'}", f"corpus.cache_dir={root / 'cache'}",
         *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_a_sweep_runs_its_trials_on_both_nodes(two_nodes, tmp_path):
    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    done = tune_on(two_nodes.address, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = tmp_path / "sweeps" / "two-nodes"
    ledger = [line.split() for line in (folder / "seeds.log").read_text().splitlines()]
    assert len(ledger) == 2  # two configurations x one seed
    assert {row[4] for row in ledger} == nodes  # one trial ran on each node
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ipr-synthetic").experiment_id
    seeds = client.search_runs([experiment], "tags.`emoref.kind` = 'seed'")
    assert {r.data.tags["ray_node"] for r in seeds} == nodes
    assert (folder / "report.md").exists() and not list(folder.rglob(".emoref-storage-check"))


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
    worker = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        for _ in range(120):
            if len([n for n in ray.nodes() if n["Alive"]]) == 2:
                break
            assert worker.poll() is None, "the second node did not start"
            time.sleep(1)
        else:
            pytest.fail("the second node did not join in 120 s")
        yield cluster, local
    finally:
        ray.shutdown()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        cluster.shutdown()


def test_a_sweep_refuses_storage_one_node_cannot_see(node_with_its_own_disk):
    cluster, local = node_with_its_own_disk
    done = tune_on(cluster.address, local)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "not the same storage on every Ray node" in done.stderr
    assert str(local / "sweeps" / "two-nodes") in done.stderr
    assert not (local / "sweeps" / "two-nodes").exists()  # nothing left of a sweep never started
