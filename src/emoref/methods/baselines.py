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
from emoref.runtime import LOCAL, Runtime
from emoref.methods.common import (BatchCycle, PerBatch, SERModel, annotation,
                                   check_ambiguity_split, check_finite, checkpoint, d2_weight,
                                   evaluate, load_parts, loop_state, make_batch, predict,
                                   resume_loop, seed_everything, soft_cross_entropy,
                                   steps_per_epoch)
from emoref.record import Reporter, Result, is_selected, result

VARIANTS = ("baseline", "baseline_star", "supervised")


def fit(config: RunConfig, split: AmbiguitySplit, reporter: Reporter, runtime: Runtime = LOCAL,
        *, variant: str) -> Result:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    check_ambiguity_split(split)
    rng1, rng2 = seed_everything(config.seed)
    train, classes, n_classes = config.train, split.classes, len(split.classes)
    model = SERModel(config, n_classes)
    net = runtime.prepare(PerBatch(model))  # DDP-wrapped with several workers; `model` evaluates
    parts = load_parts(config, split, model, runtime)  # waveforms, or frozen-encoder embeddings
    (d1_waves, d1_y), (d2_waves, d2_truth) = parts.d1, parts.d2
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.lr,
                                  weight_decay=train.weight_decay)
    d1_batches = BatchCycle(len(d1_waves), train.batch_size, rng1, min_size=runtime.world)
    d2_batches = BatchCycle(len(d2_waves), train.batch_size, rng2, min_size=runtime.world)
    # (N2, C) D2 targets. supervised: one-hot truth, fixed; baseline_star: the model's softmax on
    # clean D2, refreshed after every epoch; baseline: never used.
    targets = F.one_hot(torch.from_numpy(d2_truth), n_classes).float()
    rows: list[dict[str, float]] = []
    kept, table, first = None, [], 0
    if runtime.resume:  # a restarted worker group continues after its last finished epoch
        saved = runtime.resume
        first = resume_loop(saved, model, optimizer, (d1_batches, d2_batches), (rng1, rng2))
        targets, rows, kept, table = saved["targets"], saved["rows"], saved["kept"], saved["table"]
    for epoch in range(first, train.epochs):
        runtime.seed(config.seed, epoch)  # dropout's generator, per epoch and rank
        # ---- Which D2 term this epoch has, and its weight.
        if variant == "supervised":
            uses_d2, weight = True, config.baselines.supervised_d2_weight
        elif variant == "baseline_star" and epoch >= train.warmup_epochs:
            uses_d2, weight = True, d2_weight(config, epoch)  # IPR's Eq. 7 ramp
        else:
            uses_d2, weight = False, 0.0
        steps = steps_per_epoch(config, len(d1_waves), len(d2_waves), uses_d2)
        sums = {"loss": 0.0, "ce_d1": 0.0, "ce_d2": 0.0}
        net.train()
        for _ in range(steps):
            # ---- Losses: alpha * CE(D1) + weight * soft CE(D2, targets), each rank its shard.
            idx = next(d1_batches)
            batches = [make_batch(d1_waves, idx, config, True, rng1, runtime)]
            if uses_d2:
                idx2 = next(d2_batches)
                batches.append(make_batch(d2_waves, idx2, config, True, rng2, runtime))
            with runtime.autocast():
                outputs = net(batches)
            logits = outputs[0][0].float()
            y = torch.from_numpy(d1_y[idx[runtime.shard(len(idx))]]).to(logits.device)
            ce_d1 = runtime.share(F.cross_entropy(logits, y, reduction="sum"), len(idx))
            ce_d2 = torch.zeros((), device=logits.device)
            if uses_d2:
                q = targets[idx2[runtime.shard(len(idx2))]].to(logits.device)
                ce_d2 = runtime.share(soft_cross_entropy(outputs[1][0].float(), q) * len(q),
                                      len(idx2))
            loss = config.ipr.alpha * ce_d1 + weight * ce_d2
            check_finite(epoch, ce_d1=ce_d1, ce_d2=ce_d2, loss=loss)
            runtime.step(loss, optimizer)
            for name, value in (("loss", loss), ("ce_d1", ce_d1), ("ce_d2", ce_d2)):
                sums[name] += value.detach().item() / runtime.world / steps
        sums = runtime.sum(sums)  # over ranks: the global batch's mean losses
        # ---- Evaluation: dev selects, D3 only reports; D2's hidden labels only measure agreement.
        metrics, extras = evaluate(model, parts.evaluation, config, n_classes, runtime)
        logits_d2, _ = predict(model, d2_waves, config, runtime)
        metrics.update(sums, beta=weight,
                       agreement_model=weighted_accuracy(d2_truth, logits_d2.argmax(1).numpy()))
        if variant == "baseline_star":  # next epoch's model-generated soft labels
            targets = torch.softmax(logits_d2 / config.baselines.star_temperature, dim=1)
        rows.append({"epoch": epoch, **metrics})
        if is_selected(rows):
            kept = checkpoint(variant, config, split, model, None, epoch)
            table = annotation(split.d2, classes, torch.softmax(logits_d2, dim=1))
        reporter(epoch, metrics, extras, state=lambda: loop_state(
            epoch, model, optimizer, (d1_batches, d2_batches), (rng1, rng2),
            targets=targets, rows=rows, kept=kept, table=table))
    return result(variant, rows, table, kept)


fit_baseline = partial(fit, variant="baseline")
fit_baseline_star = partial(fit, variant="baseline_star")
fit_supervised = partial(fit, variant="supervised")
