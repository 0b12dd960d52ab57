"""Two Ray nodes on this machine, one Train worker on each (STRICT_SPREAD)."""

import pytest

from emoref import distributed
from emoref.methods.common import ListReporter

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
    result, digests = distributed.fit("baseline", run, split, reporter, echo=False)
    assert [r["epoch"] for r in reporter.rows] == [0, 1]
    assert digests[0] == digests[1]
    assert result.checkpoint is not None
