"""Before a sweep on several Ray nodes: is its storage the same on every node?

Every trial writes its seeds under the sweep folder (and its runs into a SQLite store, when that
is the tracking URI) and the driver reads them back for the report and for --resume, so each must
be the same storage on every node.
"""

from __future__ import annotations

import re
from pathlib import Path

from runner._cli import fail

def check_storage_path(path: Path) -> None:
    """Exits 2 when --storage-path is a URI (s3://, gs://, hdfs://): trials write their seeds as
    files and the driver reads them back."""
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/", str(path)):
        fail(f"--storage-path {path}: expected a directory (trials write their seeds there as "
             "files and the driver reads them back); on a cluster use a filesystem every node "
             "mounts, and put Ray Train's checkpoints in object storage with dist.storage=s3://...")


STORAGE_MARKER = ".emoref-storage-check"


def unseen_storage(folders: list[Path], timeout_s: float = 120.0) -> list[str]:
    """Which (node, folder) pairs of the running Ray cluster do not see `folders` as the driver
    does: the driver writes a fresh token into each folder and a zero-CPU task pinned to every
    alive node reads it back. One node: nothing to check."""
    import uuid

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2:
        return []
    token = uuid.uuid4().hex
    markers = [folder / STORAGE_MARKER for folder in folders]

    @ray.remote(num_cpus=0)
    def reads(paths: list[str]) -> list[bool]:
        return [Path(p).is_file() and Path(p).read_text() == token for p in paths]

    unseen = []
    try:
        for marker in markers:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(token)
        probes = {n["NodeManagerAddress"] + " (" + n["NodeID"][:8] + ")": reads.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                [str(m) for m in markers]) for n in nodes}
        for node, probe in probes.items():
            try:
                seen = ray.get(probe, timeout=timeout_s)
            except ray.exceptions.GetTimeoutError:  # a node that cannot even answer
                seen = [False] * len(folders)
            unseen += [f"{folder} on node {node}" for folder, ok in zip(folders, seen) if not ok]
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)
    return unseen


def check_storage(folder: Path, uri: str, created: bool) -> None:
    """Exits 2 naming the folder and the node when a folder the sweep shares (the sweep folder, a
    SQLite store's folder) is not the same storage on every node, before any trial starts."""
    folders = [folder]
    if uri.startswith("sqlite:///"):
        folders.append(Path(uri[len("sqlite:///"):]).parent)
    unseen = unseen_storage(folders)
    if not unseen:
        return
    if created:  # leave nothing behind of a sweep that never started
        folder.rmdir()
    fail("these folders are not the same storage on every Ray node: " + "; ".join(unseen) +
         ". On several nodes put --storage-path on a filesystem every node mounts at the same "
         "path (NFS, EFS, Lustre; cluster.yaml mounts one at /shared) and point MLflow at a "
         "server (--tracking-uri http://<head>:5000) or a SQLite file on that filesystem.")
