"""Distributed training: the cross-rank pieces the methods use, and the Ray Train worker loop.

Every method is one function, `fit(config, split, reporter, runtime=LOCAL)`, whatever runs it. The
`Runtime` says which DDP rank this process is and supplies the few operations that differ across
ranks; with one process they are identities, so the in-process path and a Ray Train worker run the
same lines.

How a step is split across ranks. Every rank draws the same *global* batch (same seed, same random
streams) and keeps a contiguous shard of its rows (`Runtime.shard`); crops and padding are drawn for
the whole global batch (`data.audio.collate(keep=...)`), so a row is bit-for-bit what one process
would build. A loss that is a mean over the global batch is written as this rank's sum times
world / n (`Runtime.share`): DDP averages gradients over ranks, which makes the gradient the global
mean's, whatever the shard sizes. We do not use Ray's `prepare_data_loader`: a DistributedSampler
pads an uneven epoch by repeating samples and gives each rank its own crops, which would change
the loss and break both the "N workers = 1 worker" check and exact resumption; batches here are
index arrays, so resuming is restoring two permutations and a position.

IPR's prototypes are global state: the update's inputs (embeddings of x, the classifier's argmax on
x and on x_aug) are gathered from every rank in global-batch order and every rank applies the same
sequential update (Eq. 4), so prototypes are bitwise identical on all ranks. The contrastive loss
(Eq. 5) sees the *global* batch of 2N views, gathered with gradients (`Runtime.gather`): its
negatives and positives are then those of one process with the same batch, so the loss does not
change with the number of workers (with local batches, N workers would shrink each anchor's
denominator N-fold).

Evaluation predictions are sharded the same way (each rank a contiguous part of every chunk of 32)
and gathered, so every rank sees every prediction and computes identical metrics.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

STATE_FILE = "state.pt"


@dataclass
class Runtime:
    """One process's place in a DDP group (rank 0 of 1 by default) and its precision."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a gradient scaler)
    # The method's own training state to continue from (its `state` dict, see each method).
    resume: dict[str, Any] | None = None
    # Wraps the model for DDP (ray.train.torch.prepare_model in a Ray worker); None: no wrapping.
    wrap: Callable[[nn.Module], nn.Module] | None = None
    sync_batchnorm: bool = True  # GPU only: torch's SyncBatchNorm has no CPU kernel

    def __post_init__(self) -> None:
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    # ---- Model and step
    def prepare(self, model: nn.Module) -> nn.Module:
        """The module to train with: on this rank's device, DDP-wrapped when world > 1. The
        unwrapped `model` shares its parameters and is the one to evaluate and save."""
        model.to(self.device)
        if self.world > 1 and self.device.type == "cuda" and self.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return self.wrap(model) if self.world > 1 and self.wrap is not None else model

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """zero_grad, backward (scaled under fp16), optimiser step."""
        optimizer.zero_grad()
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()

    # ---- Splitting a global batch
    def shard(self, n: int) -> np.ndarray:
        """This rank's rows of a global batch of n: a contiguous block, in rank order."""
        return np.array_split(np.arange(n), self.world)[self.rank]

    def share(self, total: torch.Tensor, n: int) -> torch.Tensor:
        """This rank's part of a mean over a global batch of n, from its rows' sum: total * world / n
        (DDP's gradient average over ranks then gives the global mean's gradient)."""
        return total * (self.world / n)

    def gather(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(n, ...) every rank's shard of a global batch of n, in global order, from this rank's
        (len(shard(n)), ...) rows. Differentiable: the gradient of each row returns to its rank,
        summed over ranks (each rank's loss is the same global value), so after DDP's average
        the parameter gradient is that of one process."""
        if self.world == 1:
            return x
        return _Gather.apply(x, n, self.world, self.rank)

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over ranks (per-epoch loss sums; identity with one process)."""
        if self.world == 1:
            return values
        keys = sorted(values)
        flat = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(flat)
        return dict(zip(keys, flat.tolist()))

    def align(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP sends them at the
        start of each training forward, but that forward then updates each rank's copy from its
        own shard; evaluation shards its inputs, so every rank must hold the same statistics."""
        if self.world == 1:
            return
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer.data, src=0)

    def seed(self, *key: int) -> None:
        """Seeds torch's generator (dropout) from `key` and this rank: re-seeding at every epoch
        makes a resumed run draw exactly what an uninterrupted one would, without saving each
        rank's generator. One process: the same as rank 0 of any group."""
        torch.manual_seed(zlib.crc32(repr((*key, self.rank)).encode()))

    def broadcast(self, x: torch.Tensor) -> torch.Tensor:
        """Rank 0's tensor on every rank (labels computed once, the same everywhere)."""
        if self.world == 1:
            return x
        x = x.to(self.device).contiguous()
        torch.distributed.broadcast(x, src=0)
        return x.cpu()


LOCAL = Runtime()


class _Gather(torch.autograd.Function):
    """all_gather of uneven contiguous shards, with gradients (gloo has no reduce-scatter, so the
    backward all-reduces the whole gradient and keeps this rank's rows)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, n: int, world: int, rank: int) -> torch.Tensor:
        sizes = [len(s) for s in np.array_split(np.arange(n), world)]
        ctx.start, ctx.size = sum(sizes[:rank]), sizes[rank]
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[:len(x)] = x
        pieces = [torch.empty_like(padded) for _ in range(world)]
        torch.distributed.all_gather(pieces, padded.contiguous())
        return torch.cat([p[:s] for p, s in zip(pieces, sizes)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad)
        return grad[ctx.start:ctx.start + ctx.size], None, None, None


# ----------------------------------------------------------------------------------------------------
# Resumable pieces
# ----------------------------------------------------------------------------------------------------

def rng_state(*rngs: np.random.Generator) -> list[dict[str, Any]]:
    """Each numpy stream's state, in a form torch.load(weights_only=True) reads. (torch's own
    generator is re-seeded every epoch by `Runtime.seed`, so it needs no saving.)"""
    return [_plain(r.bit_generator.state) for r in rngs]


def restore_rng(states: list[dict[str, Any]], *rngs: np.random.Generator) -> None:
    for rng, saved in zip(rngs, states):
        rng.bit_generator.state = saved


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value


# ----------------------------------------------------------------------------------------------------
# Ray Train
# ----------------------------------------------------------------------------------------------------

@dataclass
class RankReporter:
    """The reporter every rank hands its method inside Ray Train. Every rank calls
    `ray.train.report` (it is a barrier); rank 0 attaches the metrics and, when the method offers
    its state, a checkpoint holding that state and every report so far, so a restarted worker
    group resumes the method and the report history together. Each row carries `attempt`: 0 for
    the first worker group, n after n restarts."""

    rank: int
    attempt: int = 0
    history: list[tuple[int, dict[str, float], dict[str, Any]]] = field(default_factory=list)
    echo: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)  # config, git SHA, split hash
    last_state: Callable[[], dict[str, Any]] | None = None  # the newest state the method offered

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
        if self.echo:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in list(metrics.items())[:8])
            print(f"step {epoch:3d}  {shown}", flush=True)
        scalars = {"step": epoch, **{k: float(v) for k, v in metrics.items()}}
        if state is None:
            ray.train.report(scalars, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save({"method": state(), "history": self.history, "attempt": self.attempt,
                        **self.provenance}, Path(folder) / STATE_FILE)
            ray.train.report(scalars, checkpoint=ray.train.Checkpoint.from_directory(folder))


def digest(value: Any) -> str:
    """A SHA-256 of every tensor and number in a (nested) state, in key order: equal digests on
    two ranks mean bitwise-equal weights, optimiser state and prototypes."""
    hasher = hashlib.sha256()

    def walk(node: Any) -> None:
        if isinstance(node, torch.Tensor):
            hasher.update(str((node.dtype, tuple(node.shape))).encode())
            hasher.update(node.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(node, dict):
            for key in sorted(node, key=str):
                hasher.update(str(key).encode())
                walk(node[key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        else:
            hasher.update(repr(node).encode())
    walk(value)
    return hasher.hexdigest()


def load_state(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's saved state, read with weights_only=True (tensors and plain containers)."""
    with checkpoint.as_directory() as folder:
        # On CPU first: load_state_dict then copies each tensor to wherever its module lives.
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)


def worker_loop(payload: dict[str, Any]) -> tuple[Any, list]:
    """Runs on every Ray Train worker: build the runtime, resume if Ray restarted the group, fit.
    Returns (Result, report history) from rank 0 (Ray hands rank 0's return value back)."""
    import ray.train
    import ray.train.torch

    from emoref.config import from_overrides
    from emoref.methods import METHODS
    from emoref.provenance import git_sha

    config = from_overrides(payload["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if config.gpu else torch.device("cpu")
    previous = ray.train.get_checkpoint()
    saved = load_state(previous) if previous is not None else None
    unused = config.head.proj_dim > 0  # a projection head gets no gradient during warm-up
    runtime = Runtime(rank=rank, world=world, device=device, precision=config.train.precision,
                      resume=saved["method"] if saved else None,
                      sync_batchnorm=config.dist.sync_batchnorm,
                      wrap=lambda m: ray.train.torch.prepare_model(
                          m, move_to_device=False,
                          parallel_strategy_kwargs={"find_unused_parameters": unused}))
    provenance = {"config": payload["config"], "git_sha": git_sha(),
                  "split_hash": payload["split"].hash}
    reporter = RankReporter(rank, attempt=saved["attempt"] + 1 if saved else 0,
                            history=list(saved["history"]) if saved else [], echo=payload["echo"],
                            provenance=provenance)
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


def run_name(method: str, config: Any, split_hash: str) -> str:
    """The Train run's name: no timestamp, so rerunning the same command (or a retried trial) finds
    and resumes its checkpoints; it names the method, corpus and seed, and hashes the resolved
    config, the split and the code version, so any change starts a fresh run."""
    from emoref.config import as_overrides
    from emoref.provenance import git_sha
    what = "\n".join([*as_overrides(config), split_hash, git_sha()])
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


def start_ray(echo: bool = True, local: bool = False, **init: Any) -> None:
    """Connect to the cluster of RAY_ADDRESS, or to the one `ray start` (or `ray up`) left running
    on this machine, or start a local instance; `local=True` always starts a private one (with
    `init`'s resources, as the tests and benchmarks do). A stale address file (its cluster is
    gone) is removed first, as `ray stop` would, and said so: it would otherwise make `ray.init()`
    hang, and the State API in Train's workers would query a cluster that is not there."""
    import sys

    import ray
    from ray._common.utils import get_ray_address_file

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


def fit(method: str, config: Any, split: Any, reporter: Callable, echo: bool = True) -> Any:
    """Train `method` through a Ray Train TorchTrainer with config.workers workers (gloo on CPU,
    NCCL on GPU). The report history reaches `reporter` once training ends. Returns the Result and
    each rank's digest of its final state (all equal, or this raises). Uses the running Ray
    instance, or starts a local one."""
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from emoref.config import as_overrides

    start_ray(echo)
    dist = config.dist
    storage = dist.storage or str(Path("runs/ray").resolve())
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"method": method, "config": as_overrides(config), "split": split,
                           "echo": echo},
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
