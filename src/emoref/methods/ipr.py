"""IPR: iterative prototype refinement (papers/000_a9d10b9288bd0903.txt, Sec. 2; Eq. numbers inline).

One epoch = ceil(|D1| / B) steps in warm-up and ceil(max(|D1|, |D2|) / B) steps afterwards; each step
takes one D1 batch and, after warm-up, one D2 batch (each part cycles through its own permutation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from emoref.config import RunConfig
from emoref.data.augment import Augmenter
from emoref.data.splits import AmbiguitySplit
from emoref.metrics import prototype_similarity, weighted_accuracy
from emoref.methods import ipr_math
from emoref.methods.common import (Reporter, Result, SERModel, cycle_batches, d2_annotation, evaluate,
                                   label_array, load_waves, make_batch, predict,
                                   result, seed_everything)


def fit(config: RunConfig, split: AmbiguitySplit, reporter: Reporter) -> Result:
    rng = seed_everything(config.seed)
    ipr, train, classes = config.ipr, config.train, split.classes
    corpus = config.corpus.name
    d1_waves, d1_y = load_waves(split.d1, config, corpus), label_array(split.d1, classes)
    d2_waves, d2_hidden = load_waves(split.d2, config, corpus), label_array(split.d2, classes)
    evaluation = {"dev": (load_waves(split.dev, config, corpus), label_array(split.dev, classes)),
                  "d3": (load_waves(split.d3, config, corpus), label_array(split.d3, classes))}
    model = SERModel(config, len(classes))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.lr,
                                  weight_decay=train.weight_decay)
    augment = Augmenter(config.augment, config.audio.sample_rate, config.corpus.cache_dir)
    d1_batches = cycle_batches(len(d1_waves), train.batch_size, rng)
    d2_batches = cycle_batches(len(d2_waves), train.batch_size, rng)
    prototypes: torch.Tensor | None = None  # (C, P) unit vectors in the projection space
    rows: list[dict[str, float]] = []
    for epoch in range(train.epochs):
        warm = epoch < train.warmup_epochs
        # ---- Prototype learning (Eq. 1-2): class means of D1 embeddings when warm-up ends.
        if not warm and prototypes is None:
            _, k_d1 = predict(model, d1_waves, config)
            prototypes = ipr_math.init_prototypes(k_d1, torch.from_numpy(d1_y), len(classes))
        beta = 0.0 if warm else ipr_math.beta_schedule(
            epoch - train.warmup_epochs, train.epochs - 1 - train.warmup_epochs, ipr.beta_max,
            ipr.beta_growth)
        steps = math.ceil((len(d1_waves) if warm else max(len(d1_waves), len(d2_waves)))
                          / train.batch_size)
        if train.max_steps_per_epoch:
            steps = min(steps, train.max_steps_per_epoch)
        sums = {"loss": 0.0, "ce_d1": 0.0, "ce_d2": 0.0, "contrastive": 0.0}
        updates = 0
        model.train()
        for _ in range(steps):
            idx = next(d1_batches)
            wave, mask = make_batch(d1_waves, idx, config, True, rng)
            logits, _ = model(wave, mask)
            ce_d1 = F.cross_entropy(logits, torch.from_numpy(d1_y[idx]))
            ce_d2 = contrastive = torch.zeros(())
            if not warm:
                # ---- D2 views: x and its augmented version, one forward pass over 2N.
                idx2 = next(d2_batches)
                views = [d2_waves[i] for i in idx2]
                views += [augment(d2_waves[i], int(rng.integers(2**31))) for i in idx2]
                wave2, mask2 = make_batch(views, np.arange(len(views)), config, True, rng)
                logits2, k2 = model(wave2, mask2)
                n = len(idx2)
                # ---- Pseudo labels from prototypes (Eq. 3), for x and x_aug.
                with torch.no_grad():
                    z = ipr_math.pseudo_labels(k2, prototypes)
                # ---- Losses (Eq. 5, 6): CE on D1, CE on D2 pseudo labels, contrastive over 2N.
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
        metrics, extras = evaluate(model, evaluation, config, len(classes))
        # One pass over D2 gives both pseudo labels: the classifier's and the prototypes'.
        logits_d2, k_d2 = predict(model, d2_waves, config)
        metrics.update(sums, beta=beta, prototype_updates=float(updates),
                       agreement_model=weighted_accuracy(d2_hidden, logits_d2.argmax(1).numpy()))
        if prototypes is not None:
            z_d2 = ipr_math.pseudo_labels(k_d2, prototypes).numpy()
            metrics["agreement_prototype"] = weighted_accuracy(d2_hidden, z_d2)
            extras["prototype_similarity"] = prototype_similarity(prototypes).tolist()
        reporter(epoch, metrics, extras)
        rows.append({"epoch": epoch, **metrics})
    # ---- Annotation output: D2's soft labels (Eq. 3 similarities) and prototype pseudo labels,
    # from the last epoch's embeddings (k_d2 above).
    soft = ipr_math.soft_labels(k_d2, prototypes)
    return result("ipr", rows, d2_annotation(split.d2, classes, soft, soft.argmax(1)))
