"""Two Ray nodes on this machine, one Train worker on each (STRICT_SPREAD)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emoref import ray_train
from emoref.record import ListReporter

from tests.distributed.conftest import free_port

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture(scope="module")
def two_nodes():
    """Both tests below share one two-node cluster (starting one takes ~10 s); each of them
    leaves it as it found it (Train and Tune release what they reserve)."""
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
    assert (folder / "report.md").exists()
    assert (folder / ".emoref-storage-id").is_file()  # the token every node checked
