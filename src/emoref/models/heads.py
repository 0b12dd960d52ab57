"""The two heads every IPR-family model shares."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from emoref.config import HeadConfig


class Classifier(nn.Module):
    """MLP: (B, D) embedding -> (B, C) logits. The paper's "MLP" in Eq. 4."""

    def __init__(self, dim: int, n_classes: int, config: HeadConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
                                 nn.Linear(config.hidden, n_classes))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class Projection(nn.Module):
    """(B, D) embedding -> (B, P) unit vectors k.

    Prototypes live here, in the L2-normalised projection space, not in the encoder's pooled space:
    the supervised contrastive loss (Eq. 5) is what clusters this space by class, the paper's
    soft label is a dot product k . p_c of unit vectors (a cosine, Eq. 3), and the update
    Normalize(gamma p_c + (1 - gamma) k) (Eq. 4) keeps prototypes on the same sphere.
    """

    def __init__(self, dim: int, config: HeadConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, config.proj_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(h), dim=-1)
