"""Trainable trunks over a fixed front end (openSMILE features, a frozen encoder's embeddings).

A fixed front end gives the same vector to every seed; without a trunk, k = Normalize(h) could not
move and IPR's contrastive loss (Eq. 5) would have nothing to train. The input is standardised
with statistics of the training part only (`set_standardisation`, stored as buffers so that a
checkpoint carries them), then:
- vectors (functionals, pooled embeddings), (B, F): an MLP to h;
- frames (descriptors), (B, T, F) with a (B, T) mask: temporal convolutions with padded frames
  zeroed after each layer, masked mean and standard deviation over time, a linear layer to h.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emoref.config import TrunkConfig


def masked_moments(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature over (F,) vectors or (frames, F) matrices (every
    frame of every utterance counts); a constant feature gets std 1 (it is then only centred)."""
    stacked = np.concatenate([np.atleast_2d(v) for v in values]).astype(np.float64)
    mean, std = stacked.mean(0), stacked.std(0)
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


class Standardize(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class VectorTrunk(nn.Module):
    """(B, F) -> (B, dim): standardise, dropout, Linear, ReLU, dropout, Linear."""

    def __init__(self, in_dim: int, config: TrunkConfig) -> None:
        super().__init__()
        self.standardize = Standardize(in_dim)
        self.net = nn.Sequential(nn.Dropout(config.input_dropout), nn.Linear(in_dim, config.hidden),
                                 nn.ReLU(), nn.Dropout(config.dropout),
                                 nn.Linear(config.hidden, config.dim))
        self.dim = config.dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.standardize(x))


class FrameTrunk(nn.Module):
    """(B, T, F) frames + (B, T) mask -> (B, dim). No batch statistics anywhere, so an utterance's
    h does not depend on what it is batched with."""

    def __init__(self, in_dim: int, config: TrunkConfig) -> None:
        super().__init__()
        self.standardize = Standardize(in_dim)
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.convs = nn.ModuleList(
            nn.Conv1d(in_dim if i == 0 else config.channels, config.channels, config.kernel,
                      padding=config.kernel // 2) for i in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * config.channels, config.dim)
        self.dim = config.dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        y = self.input_dropout(self.standardize(x)).transpose(1, 2) * keep  # (B, F, T)
        for conv in self.convs:
            y = torch.relu(conv(y)) * keep
        count = keep.sum(2).clamp_min(1.0)  # (B, 1) valid frames
        mean = y.sum(2) / count
        var = ((y - mean.unsqueeze(2)) ** 2 * keep).sum(2) / count
        return self.out(self.dropout(torch.cat([mean, (var + 1e-6).sqrt()], dim=1)))


def build_trunk(in_dim: int, frames: bool, config: TrunkConfig) -> nn.Module:
    return FrameTrunk(in_dim, config) if frames else VectorTrunk(in_dim, config)
