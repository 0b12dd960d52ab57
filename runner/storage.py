"""Before a sweep on several Ray nodes: is its storage the same on every node?

Every trial reads the corpus and the feature cache and writes its seeds under the sweep folder (and
its runs into a SQLite store, when that is the tracking URI); the driver reads the seeds back for
the report and for --resume. So each must be the same storage on every node: the driver checks the
nodes alive when the sweep starts (here), and each trial and extraction task checks its own node
before it reads anything (emoref.storage).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from emoref.config import RunConfig
from emoref.storage import FIX, SharedStorage
from runner._cli import fail

def check_storage_path(path: Path) -> None:
    """Exits 2 when --storage-path is a URI (s3://, gs://, hdfs://): trials write their seeds as
    files and the driver reads them back."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/", str(path)):
        fail(f"--storage-path {path}: expected a directory (trials write their seeds there as "
             "files and the driver reads them back); on a cluster use a filesystem every node "
             "mounts, and put Ray Train's checkpoints in object storage with dist.storage=s3://...")


def shared_storage(folder: Path, uri: str, config: RunConfig, split: Any) -> SharedStorage:
    """What every node must see as the driver does: the sweep folder, the feature cache, a SQLite
    store's folder (tokens written there), and the corpus (the sizes of a sample of its files)."""
    folders = [("the sweep folder", "--storage-path", folder),
               ("the feature cache", "corpus.cache_dir", Path(config.corpus.cache_dir).expanduser())]
    if uri.startswith("sqlite:///"):
        folders.append(("the MLflow store", "--tracking-uri", Path(uri[len("sqlite:///"):]).parent))
    return SharedStorage.prepare(folders, config.corpus.root or config.corpus.cache_dir,
                                 [u.path for u in split_utterances(split)])


def split_utterances(split: Any) -> list:
    if hasattr(split, "folds"):
        return [u for fold in split.folds for u in fold.test]
    return [u for part in split.parts().values() for u in part]


def unseen_storage(storage: SharedStorage, timeout_s: float = 120.0) -> list[str]:
    """What each alive node of the Ray cluster does not see as the driver does (a zero-CPU task
    pinned to each node runs the check there). Nodes that join later (autoscaled GPU workers)
    are checked by each trial and extraction task before it reads anything."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2:
        return []

    @ray.remote(num_cpus=0)
    def problems(check: SharedStorage) -> list[str]:
        return check.problems()

    probes = {f"{n['NodeManagerAddress']} ({n['NodeID'][:8]})": problems.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
            storage) for n in nodes}
    unseen = []
    for node, probe in probes.items():
        try:
            found = ray.get(probe, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:  # a node that cannot even answer
            found = [f"no answer in {timeout_s:.0f} s"]
        unseen += [f"node {node}: {what}" for what in found]
    return unseen


def check_storage(storage: SharedStorage, folder: Path, created: bool) -> None:
    """Exits 2 naming the node, the path and the fix when a node of the cluster does not see
    what the sweep shares (sweep folder, feature cache, SQLite store, corpus), before any trial
    starts; a sweep folder this command created is removed again."""
    unseen = unseen_storage(storage)
    if not unseen:
        return
    if created:  # leave nothing behind of a sweep that never started
        shutil.rmtree(folder, ignore_errors=True)
    fail("not every Ray node sees the storage this sweep uses: " + "; ".join(unseen) +
         f". {FIX[0].upper()}{FIX[1:]}, and point the key there (e.g. "
         "corpus.root=/shared/data/<corpus>, corpus.cache_dir=/shared/cache, --storage-path "
         "/shared/sweeps, --tracking-uri http://<head>:5000); skipping files would not help")
