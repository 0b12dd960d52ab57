"""IPR's equations as pure tensor functions (no state, no I/O), each pinned by a unit test.

Numbers refer to the IPR paper (papers/000_a9d10b9288bd0903.txt).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def init_prototypes(k: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Eq. 1-2: p_c = Normalize(mean of the D1 embeddings k of class c). (N, P), (N,) -> (C, P)."""
    sums = torch.zeros(n_classes, k.shape[1], dtype=k.dtype, device=k.device)
    sums.index_add_(0, labels, k)
    counts = torch.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"no D1 embedding for class index(es) {missing}; cannot place prototypes")
    return F.normalize(sums / counts[:, None].to(k.dtype), dim=-1)


def soft_labels(k: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Eq. 3: s_c = k . p_c for every class. (B, P), (C, P) -> (B, C) cosine similarities."""
    return k @ prototypes.T


def pseudo_labels(k: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Eq. 3: z = argmax_c k . p_c — from the prototypes, never from the classifier. -> (B,)"""
    return soft_labels(k, prototypes).argmax(dim=1)


def update_prototypes_agree(prototypes: torch.Tensor, k: torch.Tensor, pred_x: torch.Tensor,
                            pred_aug: torch.Tensor, gamma: float) -> tuple[torch.Tensor, int]:
    """Eq. 4 as written: for each sample whose classifier argmax on x and on its augmented view
    agree on c, p_c <- Normalize(gamma p_c + (1 - gamma) k). Samples are applied in batch order
    (a moving average is sequential). Returns the new prototypes and the number of updates.
    """
    p = prototypes.clone()
    agree = torch.nonzero(pred_x == pred_aug).flatten().tolist()
    for i in agree:
        c = int(pred_x[i])
        p[c] = F.normalize(gamma * p[c] + (1 - gamma) * k[i], dim=-1)
    return p, len(agree)


def update_prototypes_soft(prototypes: torch.Tensor, k: torch.Tensor, pred_x: torch.Tensor,
                           pred_aug: torch.Tensor, gamma: float, temperature: float
                           ) -> tuple[torch.Tensor, int]:
    """The paper's other reading (Sec. 2.2, 3.5: "all prototype embeddings are soft updated according
    to the proportion of each emotion in ambiguous soft labels"): for each agreeing sample, every
    prototype moves towards k by its share w_c = softmax(s / temperature)_c of the soft label:
    p_c <- Normalize(p_c - (1 - gamma) w_c (p_c - k)), i.e. gamma_c = 1 - (1 - gamma) w_c.
    """
    p = prototypes.clone()
    agree = torch.nonzero(pred_x == pred_aug).flatten().tolist()
    for i in agree:
        w = torch.softmax((p @ k[i]) / temperature, dim=0)  # (C,) class proportions
        p = F.normalize(p - (1 - gamma) * w[:, None] * (p - k[i][None, :]), dim=-1)
    return p, len(agree)


def update_prototypes_labelled(prototypes: torch.Tensor, k: torch.Tensor, labels: torch.Tensor,
                               gamma: float) -> torch.Tensor:
    """Eq. 4's moving average with D1's own labels (ipr.d1_in_update, a reading to test, not the
    paper's rule): p_y <- Normalize(gamma p_y + (1 - gamma) k) for each labelled sample, in
    batch order."""
    p = prototypes.clone()
    for i, c in enumerate(labels.tolist()):
        p[c] = F.normalize(gamma * p[c] + (1 - gamma) * k[i], dim=-1)
    return p


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 5, supervised contrastive loss over the 2N views (x and x_aug stacked): positives of an
    anchor are the other views with the same pseudo label; the denominator runs over every other view.
    Anchors with no positive are left out of the mean. (2N, P) unit vectors, (2N,) labels -> scalar.
    """
    n = z.shape[0]
    logits = (z @ z.T) / tau
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    count = positives.sum(1)
    has = count > 0
    if not has.any():
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positives, 0.0).sum(1)[has] / count[has])
    return per_anchor.mean()


def beta_printed(epoch: int, epochs: int, weight_max: float, growth: float) -> float:
    """Eq. 7 as printed: beta = min(weight_m (r^(epoch_c / (epoch_m / 2)) - 1) / (r - 1), weight_m),
    epoch_c = `epoch` counted from the start of training, epoch_m = `epochs`: beta accelerates each
    epoch, reaches weight_m at epoch_m / 2 and stays there (ipr.beta_form=printed)."""
    return beta_schedule(epoch, epochs / 2, weight_max, growth)


def beta_schedule(epoch: float, epochs: float, weight_max: float, growth: float) -> float:
    """min(weight_max * (r^(e / E) - 1) / (r - 1), weight_max), r = `growth`; r -> 1 degenerates
    to a linear ramp.

    With e counted from the end of warm-up and E the epochs after it, this is the earlier reading
    of Eq. 7 (ipr.beta_form=ramp): it starts at 0, reaches weight_max only in the last epoch and
    accelerates every epoch, as Sec. 3.2 says ("The increment of beta accelerates with each epoch
    until reaching 0.5"). `beta_printed` is the printed form.
    """
    if epochs <= 0:
        return weight_max
    fraction = min(max(epoch / epochs, 0.0), 1.0)
    if abs(growth - 1.0) < 1e-9:
        return weight_max * fraction
    return min(weight_max * (growth ** fraction - 1.0) / (growth - 1.0), weight_max)
