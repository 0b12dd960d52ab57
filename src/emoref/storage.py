"""Is what this node reads the storage the driver prepared?

On a cluster a run reads the corpus, reads and writes the feature cache, and writes its seeds
under a sweep folder; each must be one filesystem every node mounts at the same path. A node whose
path is its own disk (an empty folder, or an old copy) would otherwise fail later with a message
about a missing audio file, or silently compute and cache features nobody else sees. So the driver
prepares a `SharedStorage` once (a token in each folder it writes to; for the corpus, which may be
read-only, the sizes of a sample of its audio files), and every node checks it before it reads
anything: the driver's probe of the nodes alive at the start, each trial, each extraction task.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

TOKEN = ".emoref-storage-id"  # one per shared folder, written once, never removed
SAMPLE = 8                    # corpus audio files compared (their sizes), spread over the manifest
FIX = ("put it on the filesystem every node mounts at the same path (the cluster files mount one "
       "at /shared)")


class StorageError(RuntimeError):
    """A node does not see a path as the driver prepared it; the message names node, path, fix."""


def folder_token(folder: Path) -> str:
    """The folder's storage id, written once (first writer wins) and read back."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TOKEN
    try:
        with open(path, "x") as handle:  # O_EXCL: two drivers starting at once agree
            handle.write(uuid.uuid4().hex)
    except FileExistsError:
        pass
    return path.read_text().strip()


@dataclass(frozen=True)
class SharedStorage:
    """Folders as (what, key, path, token) and corpus files as (path, size), as the driver saw
    them. `what` and `key` go into the message: "the feature cache" and "corpus.cache_dir"."""

    folders: tuple[tuple[str, str, str, str], ...] = ()
    corpus: tuple[tuple[str, int], ...] = ()
    corpus_root: str = ""

    @classmethod
    def prepare(cls, folders: Sequence[tuple[str, str, Path]], corpus_root: str = "",
                audio: Sequence[str] = ()) -> "SharedStorage":
        step = max(1, len(audio) // SAMPLE)
        sample = list(audio)[::step][:SAMPLE]
        return cls(tuple((what, key, str(path), folder_token(path)) for what, key, path in folders),
                   tuple((p, os.path.getsize(p)) for p in sample), corpus_root)

    def problems(self) -> list[str]:
        """What this process does not see as the driver did, one phrase per path; [] when all is
        well. Reads a few bytes per folder and stats the corpus sample: cheap."""
        found = []
        for what, key, path, token in self.folders:
            marker = Path(path) / TOKEN
            if not marker.is_file():
                found.append(f"{what} {path} ({key}) is not there or holds no token the driver "
                             "wrote")
            elif marker.read_text().strip() != token:
                found.append(f"{what} {path} ({key}) is another folder than the driver's (its "
                             "token differs)")
        for path, size in self.corpus:
            if not os.path.isfile(path):
                found.append(f"the corpus {self.corpus_root} (corpus.root): {path} is missing")
                break
            if os.path.getsize(path) != size:
                found.append(f"the corpus {self.corpus_root} (corpus.root): {path} has another "
                             f"size ({os.path.getsize(path)} bytes, the driver's {size})")
                break
        return found

    def verify(self, node: str | None = None) -> None:
        """Raises StorageError, one line naming this node, each path and the fix."""
        found = self.problems()
        if found:
            raise StorageError(f"node {node or this_node()} does not see the storage the driver "
                               f"prepared: {'; '.join(found)}. {FIX[0].upper()}{FIX[1:]}, and "
                               "point the key there (e.g. corpus.root=/shared/data/<corpus>, "
                               "corpus.cache_dir=/shared/cache, --storage-path /shared/sweeps); "
                               "skipping files would not help: the node sees none of them")


def this_node() -> str:
    """This process's Ray node as '<ip> (<node id prefix>)', or the host name outside Ray."""
    try:
        import ray
        if ray.is_initialized():
            context = ray.get_runtime_context()
            return f"{ray.util.get_node_ip_address()} ({context.get_node_id()[:8]})"
    except Exception:  # outside a Ray process: the host is the node
        pass
    import socket
    return socket.gethostname()
