"""Ray Train over the methods: each seed as a TorchTrainer run on N DDP workers (gloo on CPU, NCCL
on GPU), checkpointing every report and resuming when Ray restarts a worker group; the rank-0
reporter, the state digest that proves replicas stay in step, run naming, and connecting to Ray.
The methods know nothing of Ray: each worker hands its method a `Runtime` (emoref.runtime).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from emoref.config import ConfigError, RunConfig, as_overrides, from_overrides
from emoref.methods import METHODS
from emoref.provenance import code_digest, digest, git_sha
from emoref.record import Reporter, Result
from emoref.runtime import Runtime

STATE_FILE = "state.pt"
History = list[tuple[int, dict[str, float], dict[str, Any]]]  # (epoch, metrics, extras) per report


@dataclass
class RankReporter:
    """The reporter every rank hands its method inside Ray Train. Every rank calls
    `ray.train.report` (it is a barrier); rank 0 attaches the metrics and, when the method offers
    its state, a checkpoint holding that state and every report so far, so a restarted worker
    group resumes the method and the report history together. Each row carries `attempt`: 0 for
    the first worker group, n after n restarts."""

    rank: int
    attempt: int = 0
    history: History = field(default_factory=list)
    echo: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)  # config, git SHA, split hash
    last_state: Callable[[], dict[str, Any]] | None = None  # the newest state the method offered
    live: Callable[[dict[str, float]], None] | None = None  # gets each row as it is reported
    # A copy of the newest state outside Ray's storage (runner.train --state-dir), rewritten at
    # most every export_every_s seconds: what a run needs to resume on another machine.
    export: str = ""
    export_every_s: float = 300.0
    exported_at: float = float("-inf")

    def __call__(self, epoch: int, metrics: dict[str, float], extras: dict[str, Any],
                 state: Callable[[], dict[str, Any]] | None = None) -> None:
        import ray.train
        self.last_state = state or self.last_state
        if self.rank != 0:
            ray.train.report({}, checkpoint=None)
            return
        metrics = {**metrics, "attempt": float(self.attempt)}
        # When the worker reported (epoch times, e.g. bench/ray_overhead.py); not a metric, so
        # the rows of a Ray run stay equal to those of the same run in one process.
        self.history.append((epoch, metrics, {**extras, "reported_at": time.time()}))
        if self.live is not None:  # (a resumed group reports only the epochs it runs)
            self.live({"epoch": epoch, **metrics})
        if self.echo:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in list(metrics.items())[:8])
            print(f"step {epoch:3d}  {shown}", flush=True)
        scalars = {"step": epoch, **{k: float(v) for k, v in metrics.items()}}
        if state is None:
            ray.train.report(scalars, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as folder:
            saved = {"method": state(), "history": self.history, "attempt": self.attempt,
                     **self.provenance}
            torch.save(saved, Path(folder) / STATE_FILE)
            if self.export and time.monotonic() - self.exported_at >= self.export_every_s:
                # The copy carries the digest of the config less its locations (read_state_file
                # checks it), not the config itself, whose paths are this machine's.
                write_state_file(Path(self.export), {
                    k: v for k, v in saved.items() if k != "config"})
                self.exported_at = time.monotonic()
            ray.train.report(scalars, checkpoint=ray.train.Checkpoint.from_directory(folder))


def load_state(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's saved state, read with weights_only=True (tensors and plain containers)."""
    with checkpoint.as_directory() as folder:
        # On CPU first: load_state_dict then copies each tensor to wherever its module lives.
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)


# Where things are on a machine, not what a run computes: a saved state resumes wherever the
# corpus, the cache and the storage lie (the split hash checks it is the same utterances).
LOCATIONS = ("corpus.root=", "corpus.cache_dir=", "dist.storage=")


def config_sha(overrides: list[str]) -> str:
    """A digest of the resolved config less LOCATIONS: what a saved state is checked against."""
    kept = [o for o in overrides if not o.startswith(LOCATIONS)]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def write_state_file(path: Path, saved: dict[str, Any]) -> None:
    """Written whole under a temporary name, then renamed: a reader (or a copy taken while the
    run goes on) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    torch.save(saved, part)
    os.replace(part, path)


def read_state_file(path: Path, config: RunConfig, split_hash: str) -> dict[str, Any] | None:
    """The state a run exported to `path` (runner.train --state-dir), or None when there is no
    file. It must be this run's: the same resolved config, split and package sources (a state is
    only meaningful to the code that wrote it); otherwise this raises, naming what differs."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or {"method", "history", "attempt"} - set(saved):
            raise ValueError("expected a dict with 'method', 'history' and 'attempt'")
    except Exception as err:  # noqa: BLE001 - torn bytes fail anywhere in the unpickler
        raise ConfigError(f"{path}: unreadable saved run state ({err}); delete it to start the "
                          "run afresh") from None
    expected = {"config_sha": config_sha(as_overrides(config)), "split_hash": split_hash,
                "code": code_digest()}
    for key, value in expected.items():
        if saved.get(key) != value:
            what = {"config_sha": "resolved config", "split_hash": "split",
                    "code": "package sources (code digest)"}[key]
            raise ConfigError(
                f"{path}: the saved state of another run: its {what} is {saved.get(key)!r}, this "
                f"run's {value!r}. Run the code and config that saved it (its commit: "
                f"{saved.get('git_sha', '?')}), or delete the file to start afresh")
    return saved


def worker_loop(payload: dict[str, Any]) -> tuple[Result, History, list[str]] | None:
    """Runs on every Ray Train worker: build the runtime, resume if Ray restarted the group, fit.
    Returns (Result, report history, every rank's digest) from rank 0, None from the others (Ray
    hands rank 0's return value back)."""
    import ray.train
    import ray.train.torch

    config = from_overrides(payload["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if config.gpu else torch.device("cpu")
    previous = ray.train.get_checkpoint()
    saved = load_state(previous) if previous is not None else None
    exported = Path(payload["state_file"]) if payload["state_file"] else None
    if exported is not None and exported.is_file():  # checked by the driver (read_state_file)
        copy = torch.load(exported, map_location="cpu", weights_only=True)
        # Ray's own checkpoint of this run (a restarted group, or a rerun on this machine) when
        # it is at least as far on; the exported copy when it comes from further on (another
        # machine's run, resumed here).
        if saved is None or len(copy["history"]) > len(saved["history"]):
            saved = copy
    unused = config.head.proj_dim > 0  # a projection head gets no gradient during warm-up
    runtime = Runtime(rank=rank, world=world, device=device, precision=config.train.precision,
                      resume=saved["method"] if saved else None,
                      sync_batchnorm=config.dist.sync_batchnorm,
                      wrap=lambda m: ray.train.torch.prepare_model(
                          m, move_to_device=False,
                          parallel_strategy_kwargs={"find_unused_parameters": unused}))
    provenance = {"config": payload["config"], "config_sha": config_sha(payload["config"]),
                  "git_sha": git_sha(), "split_hash": payload["split"].hash,
                  "code": code_digest()}
    reporter = RankReporter(rank, attempt=saved["attempt"] + 1 if saved else 0,
                            history=list(saved["history"]) if saved else [], echo=payload["echo"],
                            provenance=provenance, live=payload["live"],
                            export=str(exported or ""), export_every_s=payload["state_every_s"])
    result = METHODS[payload["method"]](config, payload["split"], reporter, runtime)
    # Every rank's final training state must be the same bits (DDP keeps weights in step; the
    # prototype update and relabelling are computed from gathered inputs): check, don't assume.
    # (A group restarted after the last epoch resumes with nothing left to do: its state is the
    # checkpoint's.)
    final = digest(reporter.last_state() if reporter.last_state else saved and saved["method"])
    digests: list[str] = [""] * world
    if world > 1:
        torch.distributed.all_gather_object(digests, final)
    else:
        digests = [final]
    return (result, reporter.history, digests) if rank == 0 else None


def run_name(method: str, config: RunConfig, split_hash: str) -> str:
    """The Train run's name: no timestamp, so rerunning the same command (or a retried trial) finds
    and resumes its checkpoints; it names the method, corpus and seed, and hashes the resolved
    config, the split and the package's sources (provenance.code_digest), so a change to any of
    them starts a fresh run. A commit that touches only docs, tests or scripts does not: an EPR
    seed of several hours then resumes across it. The checkpoint still records the commit."""
    what = "\n".join([*as_overrides(config), split_hash, code_digest()])
    key = hashlib.sha256(what.encode()).hexdigest()[:10]
    return f"{config.dist.name or method + '-' + config.corpus.name}-seed{config.seed}-{key}"


def stale_ray_address(timeout_s: float = 2.0) -> str | None:
    """The address in Ray's "latest cluster on this machine" file when nothing answers there.

    `ray start` and Ray's test clusters write that file, and `ray.init()` without an address
    connects to whatever it names before it would start a local instance. A node that was killed
    (a crashed `ray start`, an interrupted test) leaves the file behind, and `ray.init()` then waits
    on a GCS that is gone; so does the State API inside Train's workers. None when RAY_ADDRESS is
    set (Ray uses that), when there is no file, or when its GCS accepts a connection."""
    import os
    import socket

    # Private: Ray has no public API that reads the file `ray start` writes (ray.init("auto")
    # reads it through this function).
    from ray._private.utils import read_ray_address

    if os.environ.get("RAY_ADDRESS"):
        return None
    address = read_ray_address()
    if not address:
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError):
        return address


def cluster_address() -> str | None:
    """The Ray cluster a command here would join: RAY_ADDRESS, or the live one `ray start` (or
    `ray up`) left on this machine; None when a local instance would be started (also for
    RAY_ADDRESS=local, Ray's value for "always start a private instance")."""
    import os

    from ray._private.utils import read_ray_address  # private: see stale_ray_address

    if os.environ.get("RAY_ADDRESS"):
        return None if os.environ["RAY_ADDRESS"] == "local" else os.environ["RAY_ADDRESS"]
    address = read_ray_address()
    return address if address and stale_ray_address() is None else None


def start_ray(echo: bool = True, local: bool = False, **init: Any) -> None:
    """Connect to the cluster of RAY_ADDRESS, or to the one `ray start` (or `ray up`) left running
    on this machine, or start a local instance; `local=True` always starts a private one (with
    `init`'s resources, as the tests and benchmarks do). A stale address file (its cluster is
    gone) is removed first, as `ray stop` would, and said so: it would otherwise make `ray.init()`
    hang, and the State API in Train's workers would query a cluster that is not there."""
    import sys

    import ray
    from ray._common.utils import get_ray_address_file  # private, as read_ray_address above

    if ray.is_initialized():
        return
    stale = stale_ray_address()
    if stale is not None:
        path = Path(get_ray_address_file(None))
        print(f"emoref: {path} names a Ray cluster at {stale} that does not answer (a node that "
              "did not shut down cleanly); removing the file and starting a local Ray instance",
              file=sys.stderr)
        with contextlib.suppress(FileNotFoundError):
            if path.read_text().strip() == stale:  # not rewritten by a `ray start` since
                path.unlink()
    # The dashboard (bound to this machine only) serves the State API that Ray Train's
    # placement-group cleaner queries (RAY-NOTES: without it a stopped Train run can keep its
    # resources and the next trial waits forever).
    init = {"include_dashboard": True, "dashboard_host": "127.0.0.1", **init}
    ray.init(address="local" if local else None, log_to_driver=echo, **init)


def train(method: str, config: RunConfig, split: Any, reporter: Reporter, echo: bool = True,
          live: Callable[[dict[str, float]], None] | None = None,
          state_file: Path | None = None, state_every_s: float = 300.0
          ) -> tuple[Result, list[str]]:
    """Train `method` through a Ray Train TorchTrainer with config.workers workers (gloo on CPU,
    NCCL on GPU). `live`, when given, gets each row from rank 0 as it is reported (it is pickled
    to the workers); the report history reaches `reporter` once training ends. Returns the Result and
    each rank's digest of its final state (all equal, or this raises). Uses the running Ray
    instance, or starts a local one.

    `state_file`: rank 0 also copies its newest state there, at most every `state_every_s`
    seconds, and a run whose storage under dist.storage holds no further checkpoint resumes from
    it: a seed of several hours then goes on in another checkout or on another machine from that
    file (checked first to be this run's: read_state_file). It lies on rank 0's node: on a
    cluster, give a folder every node sees."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    if state_file is not None:
        state_file = state_file.resolve()
        read_state_file(state_file, config, split.hash)  # raises before any resources are used
    start_ray(echo)
    dist = config.dist
    storage = dist.storage or str(Path("runs/ray").resolve())
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"method": method, "config": as_overrides(config), "split": split,
                           "echo": echo, "live": live,
                           "state_file": str(state_file or ""), "state_every_s": state_every_s},
        torch_config=TorchConfig(backend="nccl" if config.gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.workers, use_gpu=config.gpu,
            resources_per_worker={"CPU": dist.cpus_per_worker, **({"GPU": 1} if config.gpu else {})},
            placement_strategy=dist.placement),
        run_config=ray.train.RunConfig(
            name=run_name(method, config, split.hash), storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=dist.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=dist.checkpoints_kept)))
    outcome = trainer.fit()
    result, history, digests = outcome.return_value
    if len(set(digests)) != 1:
        raise RuntimeError(f"{method}: the workers' final states differ (digests {digests}); "
                           "the replicas went out of step")
    for epoch, metrics, extras in history:
        reporter(epoch, metrics, extras)
    return result, digests
