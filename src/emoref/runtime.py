"""The per-rank runtime every training loop uses: rank, device, precision, and the few operations
that differ across DDP ranks (with one process they are identities), plus random-state save and
restore for resumption. Nothing here imports Ray; `emoref.ray_train` builds a Runtime per worker.

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
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn


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
