"""The IPR paper's three baselines (Sec. 3.1, Table 3): encoder + MLP, no prototypes, no contrastive loss.

- baseline       D1 only.
- baseline_star  D1 + unlabelled D2, trained on the model's own soft predictions (the paper's
                 baseline*: "model-generated soft labels instead of the prototype-assigned pseudo labels").
- supervised     D1 + D2 with its true labels (the paper's upper reference).

For a fair comparison they use IPR's model, optimiser, crops, epoch length and D1 batch order;
baseline_star also keeps IPR's warm-up and beta ramp (Eq. 7), so it differs from IPR only in where
D2's targets come from. The supervised baseline needs no warm-up: its D2 labels are the truth.
"""

from __future__ import annotations

from functools import partial

import torch
from torch.nn import functional as F

from emoref.config import RunConfig
from emoref.data.splits import AmbiguitySplit
from emoref.metrics import weighted_accuracy
from emoref.methods.common import (Reporter, Result, SERModel, annotation, check_ambiguity_split,
                                   checkpoint, cycle_batches, d2_weight, evaluate, is_selected,
                                   load_parts, make_batch, predict, result, seed_everything,
                                   soft_cross_entropy, steps_per_epoch)

VARIANTS = ("baseline", "baseline_star", "supervised")


def fit(config: RunConfig, split: AmbiguitySplit, reporter: Reporter, variant: str) -> Result:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    check_ambiguity_split(split)
    rng1, rng2 = seed_everything(config.seed)
    train, classes, n_classes = config.train, split.classes, len(split.classes)
    parts = load_parts(config, split)
    (d1_waves, d1_y), (d2_waves, d2_truth) = parts.d1, parts.d2
    model = SERModel(config, n_classes)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.lr,
                                  weight_decay=train.weight_decay)
    d1_batches = cycle_batches(len(d1_waves), train.batch_size, rng1)
    d2_batches = cycle_batches(len(d2_waves), train.batch_size, rng2)
    # (N2, C) D2 targets. supervised: one-hot truth, fixed; baseline_star: the model's softmax on
    # clean D2, refreshed after every epoch; baseline: never used.
    targets = F.one_hot(torch.from_numpy(d2_truth), n_classes).float()
    rows: list[dict[str, float]] = []
    kept = None
    for epoch in range(train.epochs):
        # ---- Which D2 term this epoch has, and its weight.
        if variant == "supervised":
            uses_d2, weight = True, config.baselines.supervised_d2_weight
        elif variant == "baseline_star" and epoch >= train.warmup_epochs:
            uses_d2, weight = True, d2_weight(config, epoch)  # IPR's Eq. 7 ramp
        else:
            uses_d2, weight = False, 0.0
        steps = steps_per_epoch(config, len(d1_waves), len(d2_waves), uses_d2)
        sums = {"loss": 0.0, "ce_d1": 0.0, "ce_d2": 0.0}
        model.train()
        for _ in range(steps):
            # ---- Losses: alpha * CE(D1) + weight * soft CE(D2, targets).
            idx = next(d1_batches)
            wave, mask = make_batch(d1_waves, idx, config, True, rng1)
            logits, _ = model(wave, mask)
            ce_d1 = F.cross_entropy(logits, torch.from_numpy(d1_y[idx]))
            ce_d2 = torch.zeros(())
            if uses_d2:
                idx2 = next(d2_batches)
                wave2, mask2 = make_batch(d2_waves, idx2, config, True, rng2)
                logits2, _ = model(wave2, mask2)
                ce_d2 = soft_cross_entropy(logits2, targets[idx2])
            loss = config.ipr.alpha * ce_d1 + weight * ce_d2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for name, value in (("loss", loss), ("ce_d1", ce_d1), ("ce_d2", ce_d2)):
                sums[name] += value.detach().item() / steps
        # ---- Evaluation: dev selects, D3 only reports; D2's hidden labels only measure agreement.
        metrics, extras = evaluate(model, parts.evaluation, config, n_classes)
        logits_d2, _ = predict(model, d2_waves, config)
        metrics.update(sums, beta=weight,
                       agreement_model=weighted_accuracy(d2_truth, logits_d2.argmax(1).numpy()))
        if variant == "baseline_star":  # next epoch's model-generated soft labels
            targets = torch.softmax(logits_d2 / config.baselines.star_temperature, dim=1)
        reporter(epoch, metrics, extras)
        rows.append({"epoch": epoch, **metrics})
        if is_selected(rows):
            kept = checkpoint(variant, config, split, model, None, epoch)
            table = annotation(split.d2, classes, torch.softmax(logits_d2, dim=1))
    return result(variant, rows, table, kept)


fit_baseline = partial(fit, variant="baseline")
fit_baseline_star = partial(fit, variant="baseline_star")
fit_supervised = partial(fit, variant="supervised")
