"""IPR: iterative prototype refinement (papers/000_a9d10b9288bd0903.txt, Sec. 2; Eq. numbers inline).

Each step takes one D1 batch and, after warm-up, one D2 batch (each part cycles through its own
permutation); see `steps_per_epoch` for the epoch length.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from emoref.config import RunConfig
from emoref.data.augment import Augmenter
from emoref.data.manifest import Utterance
from emoref.data.splits import AmbiguitySplit
from emoref.metrics import prototype_similarity, weighted_accuracy
from emoref.methods import ipr_math
from emoref.methods.common import (Reporter, Result, SERModel, annotation, check_ambiguity_split,
                                   checkpoint, cycle_batches, d2_weight, evaluate, is_selected,
                                   load_parts, load_waves, make_batch, predict, result,
                                   seed_everything, steps_per_epoch)


def fit(config: RunConfig, split: AmbiguitySplit, reporter: Reporter) -> Result:
    check_ambiguity_split(split)
    rng1, rng2 = seed_everything(config.seed)
    ipr, train, classes = config.ipr, config.train, split.classes
    parts = load_parts(config, split)
    (d1_waves, d1_y), (d2_waves, d2_hidden) = parts.d1, parts.d2
    model = SERModel(config, len(classes))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.lr,
                                  weight_decay=train.weight_decay)
    augment = Augmenter(config.augment, config.audio.sample_rate, config.corpus.cache_dir)
    d1_batches = cycle_batches(len(d1_waves), train.batch_size, rng1)
    d2_batches = cycle_batches(len(d2_waves), train.batch_size, rng2)
    prototypes: torch.Tensor | None = None  # (C, P) unit vectors in the projection space
    rows: list[dict[str, float]] = []
    kept = None
    for epoch in range(train.epochs):
        warm = epoch < train.warmup_epochs
        # ---- Prototype learning (Eq. 1-2): class means of D1 embeddings when warm-up ends.
        if not warm and prototypes is None:
            _, k_d1 = predict(model, d1_waves, config)
            prototypes = ipr_math.init_prototypes(k_d1, torch.from_numpy(d1_y), len(classes))
        beta = d2_weight(config, epoch)  # Eq. 7
        steps = steps_per_epoch(config, len(d1_waves), len(d2_waves), uses_d2=not warm)
        sums = {"loss": 0.0, "ce_d1": 0.0, "ce_d2": 0.0, "contrastive": 0.0}
        updates = 0
        model.train()
        for _ in range(steps):
            idx = next(d1_batches)
            wave, mask = make_batch(d1_waves, idx, config, True, rng1)
            logits, _ = model(wave, mask)
            ce_d1 = F.cross_entropy(logits, torch.from_numpy(d1_y[idx]))
            ce_d2 = contrastive = torch.zeros(())
            if not warm:
                # ---- D2 views: x and its augmented version, one forward pass over 2N.
                idx2 = next(d2_batches)
                views = [d2_waves[i] for i in idx2]
                views += [augment(d2_waves[i], int(rng2.integers(2**31))) for i in idx2]
                wave2, mask2 = make_batch(views, np.arange(len(views)), config, True, rng2)
                logits2, k2 = model(wave2, mask2)
                n = len(idx2)
                # ---- Pseudo labels from prototypes (Eq. 3), for x and x_aug.
                with torch.no_grad():
                    z = ipr_math.pseudo_labels(k2, prototypes)
                # ---- Losses (Eq. 5, 6): CE on D2 pseudo labels (clean views), contrastive over 2N.
                ce_d2 = F.cross_entropy(logits2[:n], z[:n])
                contrastive = ipr_math.supcon_loss(k2, z, ipr.tau)
                # ---- Prototype update (Eq. 4): where the classifier agrees on x and x_aug.
                with torch.no_grad():
                    pred = logits2.argmax(1)
                    if ipr.prototype_update == "agree":
                        prototypes, moved = ipr_math.update_prototypes_agree(
                            prototypes, k2[:n], pred[:n], pred[n:], ipr.gamma)
                    else:
                        prototypes, moved = ipr_math.update_prototypes_soft(
                            prototypes, k2[:n], pred[:n], pred[n:], ipr.gamma,
                            ipr.soft_update_temperature)
                    updates += moved
            loss = ipr.alpha * ce_d1 + beta * ce_d2 + ipr.mu * contrastive
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for name, value in (("loss", loss), ("ce_d1", ce_d1), ("ce_d2", ce_d2),
                                ("contrastive", contrastive)):
                sums[name] += value.detach().item() / steps
        # ---- Evaluation: dev selects, D3 only reports; D2's hidden labels only measure agreement.
        metrics, extras = evaluate(model, parts.evaluation, config, len(classes))
        # One pass over D2 gives both pseudo labels (Fig. 3): the classifier's and the prototypes'.
        logits_d2, k_d2 = predict(model, d2_waves, config)
        metrics.update(sums, beta=beta, prototype_updates=float(updates),
                       agreement_model=weighted_accuracy(d2_hidden, logits_d2.argmax(1).numpy()))
        if prototypes is not None:
            z_d2 = ipr_math.pseudo_labels(k_d2, prototypes).numpy()
            metrics["agreement_prototype"] = weighted_accuracy(d2_hidden, z_d2)
            extras["prototype_similarity"] = prototype_similarity(prototypes).tolist()
        reporter(epoch, metrics, extras)
        rows.append({"epoch": epoch, **metrics})
        if is_selected(rows):  # keep the dev-selected weights, prototypes and D2 annotation
            kept = checkpoint("ipr", config, split, model, prototypes, epoch)
            table = soft_annotation(split.d2, classes, logits_d2, k_d2, prototypes, ipr.tau)
    return result("ipr", rows, table, kept)


def soft_annotation(utterances: Sequence[Utterance], classes: Sequence[str], logits: torch.Tensor,
                    k: torch.Tensor, prototypes: torch.Tensor | None, tau: float) -> list[dict]:
    """The annotation output: Eq. 3's similarities s_c = k . p_c, as class proportions by
    softmax(s / tau), the scale the contrastive loss trains them on. Without prototypes (a warm-up
    epoch was selected, or a baseline's checkpoint) the classifier's softmax stands in."""
    if prototypes is None:
        return annotation(utterances, classes, torch.softmax(logits, dim=1))
    similarity = ipr_math.soft_labels(k, prototypes)
    return annotation(utterances, classes, torch.softmax(similarity / tau, dim=1), similarity)


def annotate(saved: dict[str, Any], utterances: Sequence[Utterance], config: RunConfig
             ) -> list[dict]:
    """Apply a checkpoint (see `common.checkpoint`) to utterances: one annotation row each.
    `config` is the checkpoint's own config with any corpus or audio-cache overrides applied."""
    model = SERModel(config, len(saved["classes"]))
    model.load_state_dict(saved["model"])
    logits, k = predict(model, load_waves(utterances, config, config.corpus.name), config)
    return soft_annotation(utterances, saved["classes"], logits, k, saved["prototypes"],
                           config.ipr.tau)
