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
    """(B, D) embedding h -> (B, P) unit vectors k: the space of the prototypes, the soft labels
    k . p_c (Eq. 3) and the contrastive loss (Eq. 5).

    By default (head.proj_dim=0) k = Normalize(h), the encoder's own pooled embedding, as in the
    paper: Eq. 1-2 average Encoder(x) to place the prototypes and Eq. 4 applies the classifier to
    k itself ("MLP(k_i)"). That space is what warm-up trains (cross-entropy through the MLP), so
    the prototypes placed when warm-up ends already separate the classes. A separate projection
    MLP (head.proj_dim=P > 0, SimCLR style) is offered as an option, but it receives no gradient
    during warm-up: its class means start nearly identical, the first pseudo labels are close to
    one class, and the contrastive loss then pulls everything together (measured on the synthetic
    corpus: prototype agreement stuck at 22-29% with 4 classes).
    """

    def __init__(self, dim: int, config: HeadConfig) -> None:
        super().__init__()
        self.net = (nn.Identity() if config.proj_dim == 0 else
                    nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, config.proj_dim)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(h), dim=-1)
