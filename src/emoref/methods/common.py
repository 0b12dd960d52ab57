"""Pieces every IPR-family method shares: the model, audio in memory, batching, evaluation, reporting.

Only pure helpers live here; each method's training loop stays in its own file, readable top to bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from emoref.config import RunConfig, as_overrides
from emoref.data.audio import collate
from emoref.data.augment import Augmenter
from emoref.data.features import FrozenInputs, load_waves
from emoref.data.opensmile_features import DIMS, OpenSmileInputs
from emoref.data.manifest import DataError, Utterance
from emoref.methods.ipr_math import beta_printed, beta_schedule
from emoref.metrics import classification_report
from emoref.models.encoders import build_encoder
from emoref.models.heads import Classifier, Projection
from emoref.models.trunks import build_trunk, masked_moments
from emoref.provenance import git_sha
from emoref.runtime import LOCAL, Runtime, restore_rng, rng_state


class SERModel(nn.Module):
    """Front end -> pooled h; classifier(h) -> logits; projection(h) -> unit k (prototype space).

    A fixed front end (openSMILE features, or a frozen encoder: encoder.freeze) is computed once
    and cached (emoref.data.features, emoref.data.opensmile_features); `forward` then gets its
    output, and a trainable trunk (models/trunks.py) makes h from it, so k = Normalize(h) still
    learns. A frozen encoder stays in eval mode."""

    def __init__(self, config: RunConfig, n_classes: int) -> None:
        super().__init__()
        e = config.encoder
        self.fixed = e.freeze or e.kind == "opensmile"
        self.frozen = e.freeze
        self.encoder = None if e.kind == "opensmile" else build_encoder(e, config.audio)
        self.trunk = None
        dim = self.encoder.dim if self.encoder is not None else 0
        if self.fixed:
            frames = e.kind == "opensmile" and e.level == "lld"
            in_dim = DIMS[(e.feature_set, e.level)] if e.kind == "opensmile" else dim
            self.trunk = build_trunk(in_dim, frames, config.trunk)
            dim = self.trunk.dim
        self.classifier = Classifier(dim, n_classes, config.head)
        self.projection = Projection(dim, config.head)

    def train(self, mode: bool = True) -> "SERModel":
        super().train(mode)
        if self.frozen and self.encoder is not None:
            self.encoder.eval()  # no dropout, fixed BatchNorm statistics: a fixed feature map
        return self

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) waveform and mask; or a fixed front end's output: (B, F) vectors (mask None) or
        (B, T, F) descriptor frames with their (B, T) mask."""
        h = self.trunk(x, mask) if self.fixed else self.encoder(x, mask)
        return self.classifier(h), self.projection(h)

    def set_standardisation(self, training: Sequence["Inputs"]) -> None:
        """The trunk's input statistics from the training parts' clean features (D1 and D2 for
        the ambiguity split): never dev, D3 or a test fold."""
        values = [v for inputs in training for v in inputs.clean()]
        mean, std = masked_moments(values)
        self.trunk.standardize.mean.copy_(torch.from_numpy(mean))
        self.trunk.standardize.std.copy_(torch.from_numpy(std))


def check_ambiguity_split(split: Any) -> None:
    """What the IPR family needs before any step: every class in D1 (prototypes are class means of
    D1, Eq. 1-2), and non-empty D2 and D3. Raises DataError naming the part and the class."""
    for part in ("d1", "d2", "d3"):
        if not getattr(split, part):
            raise DataError(f"split: {part.upper()} is empty; adjust the split thresholds or sizes "
                            f"(split.d1_min_agreement, ... or split.by=sizes)")
    present = {u.label for u in split.d1}
    missing = [c for c in split.classes if c not in present]
    if missing:
        raise DataError(f"split: D1 has no utterance of class(es) {missing}; every class needs at "
                        f"least one precise example (drop it with corpus.classes=... or lower "
                        f"split.d1_min_agreement)")


# What a model reads: waveforms, or a fixed front end's output: a frozen encoder's embeddings
# (emoref.data.features) or openSMILE features (emoref.data.opensmile_features).
Inputs = list[np.ndarray] | FrozenInputs | OpenSmileInputs


def load_inputs(utterances: Sequence[Utterance], config: RunConfig, model: SERModel,
                runtime: Runtime = LOCAL) -> Inputs:
    if config.encoder.kind == "opensmile":
        return OpenSmileInputs(utterances, config)
    if config.encoder.freeze:
        return FrozenInputs(utterances, config, model.encoder, runtime.device)
    return load_waves(utterances, config)


@dataclass(frozen=True)
class Parts:
    """An ambiguity split's inputs in memory with their labels (D2's only measure agreement)."""

    d1: tuple[Inputs, np.ndarray]  # (inputs, labels)
    d2: tuple[Inputs, np.ndarray]  # (inputs, hidden labels)
    evaluation: dict[str, tuple[Inputs, np.ndarray]]  # dev selects, d3 only reports


def load_parts(config: RunConfig, split: Any, model: SERModel, runtime: Runtime = LOCAL) -> Parts:
    """Each part's inputs (`load_inputs`) and labels; `model` is on runtime.device already."""
    def part(utterances: Sequence[Utterance]) -> tuple[Inputs, np.ndarray]:
        return (load_inputs(utterances, config, model, runtime),
                label_array(utterances, split.classes))
    parts = Parts(d1=part(split.d1), d2=part(split.d2),
                  evaluation={"dev": part(split.dev), "d3": part(split.d3)})
    if model.fixed:
        model.set_standardisation([parts.d1[0], parts.d2[0]])
    return parts


def d2_weight(config: RunConfig, epoch: int) -> float:
    """Eq. 7's beta for `epoch`: 0 through warm-up (D2 is not used), then ipr.beta_form's curve:
    "printed" reaches ipr.beta_max at half of train.epochs and stays; "ramp" reaches it in the
    last epoch."""
    train, ipr = config.train, config.ipr
    if epoch < train.warmup_epochs:
        return 0.0
    if ipr.beta_form == "printed":
        return beta_printed(epoch, train.epochs, ipr.beta_max, ipr.beta_growth)
    return beta_schedule(epoch - train.warmup_epochs, train.epochs - 1 - train.warmup_epochs,
                         ipr.beta_max, ipr.beta_growth)


def contrastive_weight(config: RunConfig, beta: float) -> float:
    """Eq. 6's mu this epoch: ipr.mu ("constant", the paper), or ipr.mu * beta / beta_max ("beta":
    the contrastive term follows the pseudo labels' weight)."""
    ipr = config.ipr
    if ipr.mu_schedule == "constant" or ipr.beta_max == 0:
        return ipr.mu
    return ipr.mu * beta / ipr.beta_max


def label_array(utterances: Sequence[Utterance], classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[u.label] for u in utterances], dtype=np.int64)


class BatchCycle:
    """Index batches over a fresh permutation each pass; the last short batch of a pass is kept,
    unless shorter than `min_size` (the number of DDP ranks: every rank needs a row). Resumable:
    `state_dict` / `load_state_dict` hold the current permutation and position."""

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator, min_size: int = 1) -> None:
        self.n, self.batch_size, self.rng, self.min_size = n, batch_size, rng, min_size
        self.order: np.ndarray | None = None
        self.position = 0

    def __iter__(self) -> "BatchCycle":
        return self

    def __next__(self) -> np.ndarray:
        if self.order is None or self.n - self.position < self.min_size:
            self.order, self.position = self.rng.permutation(self.n), 0
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"order": None if self.order is None else torch.from_numpy(self.order.copy()),
                "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        order = state["order"]
        self.order = None if order is None else order.numpy()
        self.position = int(state["position"])


def loop_state(epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
               batches: Sequence[BatchCycle], rngs: Sequence[np.random.Generator],
               **extra: Any) -> dict[str, Any]:
    """An IPR-family loop's resumable state after `epoch` (see `resume_loop`), plus `extra`."""
    return {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "batches": [b.state_dict() for b in batches], "rng": rng_state(*rngs), **extra}


def resume_loop(saved: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                batches: Sequence[BatchCycle], rngs: Sequence[np.random.Generator]) -> int:
    """Restores what `loop_state` saved into the live objects; returns the first epoch to run."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    for cycle, state in zip(batches, saved["batches"]):
        cycle.load_state_dict(state)
    restore_rng(saved["rng"], *rngs)
    return saved["epoch"] + 1


def steps_per_epoch(config: RunConfig, n_d1: int, n_d2: int, uses_d2: bool) -> int:
    """D1-only epochs take ceil(|D1| / B) steps; epochs that also draw a D2 batch per step take
    ceil(max(|D1|, |D2|) / B), so each part is seen at least once. Every IPR-family method uses
    this schedule, so for one seed all four see the same D1 batches in the same order."""
    steps = math.ceil((max(n_d1, n_d2) if uses_d2 else n_d1) / config.train.batch_size)
    cap = config.train.max_steps_per_epoch
    return min(steps, cap) if cap else steps


def make_batch(waves: Inputs, idx: np.ndarray, config: RunConfig, train: bool,
               rng: np.random.Generator | None, runtime: Runtime = LOCAL,
               keep: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This rank's rows of the global batch `idx` (all of them in one process), on its device:
    `keep`, or by default `runtime.shard(len(idx))`. Crops and padding are drawn for the whole
    global batch. A fixed front end gives its rows' clean features (and a frame mask or None)."""
    max_samples = int(config.audio.max_seconds * config.audio.sample_rate)
    if keep is None and runtime.world > 1:
        keep = runtime.shard(len(idx))
    if not isinstance(waves, list):
        rows = np.asarray(idx) if keep is None else np.asarray(idx)[keep]
        x, frames = waves.batch(rows)
        return x.to(runtime.device), None if frames is None else frames.to(runtime.device)
    wave, mask = collate([waves[i] for i in idx], max_samples, "random" if train else "center", rng,
                         keep=keep)
    return wave.to(runtime.device), mask.to(runtime.device)


def view_pair_batch(d2: Inputs, idx: np.ndarray, augment: Augmenter, config: RunConfig,
                    rng: np.random.Generator, runtime: Runtime = LOCAL
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """IPR's D2 views, x and its augmented version, as one batch of 2N (this rank's x rows, then
    the same rows' x_aug). One seed per row is drawn for the global batch: it seeds the
    augmentation of the waveform, or with a fixed front end picks one of its K cached views."""
    n, mine = len(idx), runtime.shard(len(idx))
    seeds = np.array([int(rng.integers(2**31)) for _ in idx], dtype=np.int64)
    if not isinstance(d2, list):
        rows = np.asarray(idx)[mine]
        x, frames = d2.batch(np.concatenate([rows, rows]),
                             np.concatenate([np.zeros(len(rows), int), 1 + seeds[mine] % d2.n_views]))
        return x.to(runtime.device), None if frames is None else frames.to(runtime.device)
    # Only this rank's rows are augmented; the others are stand-ins of the same length.
    views = [d2[i] for i in idx]
    views += [augment(d2[i], int(s)) if j in mine else d2[i]
              for j, (i, s) in enumerate(zip(idx, seeds))]
    return make_batch(views, np.arange(2 * n), config, True, rng, runtime,
                      keep=np.concatenate([mine, mine + n]))


class PerBatch(nn.Module):
    """Runs the model on several batches in one call: DDP expects one forward per backward, and
    each batch (D1, D2 views) keeps its own padding and BatchNorm statistics."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batches: list[tuple[torch.Tensor, torch.Tensor]]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [self.model(wave, mask) for wave, mask in batches]


@torch.no_grad()
def predict(model: SERModel, waves: Inputs, config: RunConfig,
            runtime: Runtime = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) logits and (N, P) unit embeddings of centred crops, in eval mode, on CPU. Chunks of
    32 as in one process; with several ranks each predicts its shard of a chunk and all gather."""
    was_training = model.training
    model.eval()
    runtime.align(model)
    logits, ks = [], []
    for start in range(0, len(waves), 32):
        n = min(start + 32, len(waves)) - start
        wave, mask = make_batch(waves, np.arange(start, start + n), config, False, None, runtime)
        with runtime.autocast():
            out, k = model(wave, mask)
        logits.append(runtime.gather(out.float(), n).cpu())
        ks.append(runtime.gather(k.float(), n).cpu())
    model.train(was_training)
    return torch.cat(logits), torch.cat(ks)


def evaluate(model: SERModel, parts: dict[str, tuple[Inputs, np.ndarray]],
             config: RunConfig, n_classes: int, runtime: Runtime = LOCAL
             ) -> tuple[dict[str, float], dict[str, Any]]:
    """WA/UA/F1 on each labelled evaluation part; D3's confusion matrix as an extra."""
    metrics: dict[str, float] = {}
    extras: dict[str, Any] = {}
    for name, (waves, labels) in parts.items():
        if not len(labels):
            continue
        logits, _ = predict(model, waves, config, runtime)
        report = classification_report(labels, logits.argmax(1).numpy(), n_classes)
        metrics.update({f"{name}_wa": report["wa"], f"{name}_ua": report["ua"],
                        f"{name}_f1": report["f1"]})
        extras[f"{name}_confusion"] = report["confusion"]
    return metrics, extras


class Diverged(RuntimeError):
    """A training loss became non-finite (a learning rate or loss weight a sweep proposes can
    diverge); the message names the epoch and the term. Sweeps record the seed as failed."""


def check_finite(epoch: int, **terms: torch.Tensor) -> None:
    """Raises Diverged naming the first non-finite loss term (checked before the step, so the
    weights are never overwritten with NaN)."""
    for name, value in terms.items():
        if not bool(torch.isfinite(value.detach()).all()):
            raise Diverged(f"epoch {epoch}: loss term {name} is {value.detach().float().item()} "
                           "(non-finite); the learning rate or a loss weight is too large for "
                           "this configuration")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-sum_c q_c log softmax(logits)_c, averaged over the batch. (B, C), (B, C) -> ()"""
    return -(targets * torch.log_softmax(logits, dim=1)).sum(1).mean()


def seed_everything(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Seeds torch and returns two numpy streams: D1 batches and crops, and everything D2 (batches,
    crops, augmentation). Separate streams keep D1's sequence identical across methods."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])


def checkpoint(method: str, config: RunConfig, split: Any, model: nn.Module,
               prototypes: torch.Tensor | None, epoch: int) -> dict[str, Any]:
    """A copy of the weights (and prototypes) with what ran: resolved config, git SHA, split hash."""
    return {"method": method, "epoch": epoch, "classes": list(split.classes),
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "prototypes": None if prototypes is None else prototypes.detach().cpu().clone(),
            "config": as_overrides(config), "split_hash": split.hash, "git_sha": git_sha()}


def annotation(utterances: Sequence[Utterance], classes: Sequence[str], soft: torch.Tensor,
               similarity: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """The annotation output the IPR paper argues for, one row per utterance: the soft label
    (N, C) as class proportions summing to 1, the pseudo label (its argmax), the confidence (its
    maximum), the prototype cosine similarities of Eq. 3 when there are prototypes, and the
    corpus's own label for reference (hidden from training for D2)."""
    rows = []
    for i, (u, s) in enumerate(zip(utterances, soft.tolist())):
        z = max(range(len(s)), key=s.__getitem__)
        row = {"id": u.id, "pseudo_label": classes[z], "confidence": s[z], "label": u.label}
        row.update({f"soft_{c}": v for c, v in zip(classes, s)})
        if similarity is not None:
            row.update({f"similarity_{c}": v for c, v in zip(classes, similarity[i].tolist())})
        rows.append(row)
    return rows

