"""IPR: iterative prototype refinement (papers/000_a9d10b9288bd0903.txt, Sec. 2; Eq. numbers inline).

Each step takes one D1 batch and, after warm-up, one D2 batch (each part cycles through its own
permutation); see `steps_per_epoch` for the epoch length.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.nn import functional as F

from emoref.config import RunConfig
from emoref.data.augment import Augmenter
from emoref.data.manifest import Utterance
from emoref.data.splits import AmbiguitySplit
from emoref.metrics import prototype_similarity, similarity_pairs, weighted_accuracy
from emoref.methods import ipr_math
from emoref.runtime import LOCAL, Runtime
from emoref.methods.common import (BatchCycle, PerBatch, SERModel, annotation,
                                   check_ambiguity_split, check_finite, checkpoint,
                                   contrastive_weight, d2_weight,
                                   evaluate, load_inputs, load_parts, loop_state, make_batch,
                                   predict, resume_loop, seed_everything, steps_per_epoch,
                                   view_pair_batch)
from emoref.record import Reporter, Result, is_selected, result


def fit(config: RunConfig, split: AmbiguitySplit, reporter: Reporter,
        runtime: Runtime = LOCAL) -> Result:
    check_ambiguity_split(split)
    rng1, rng2 = seed_everything(config.seed)
    ipr, train, classes = config.ipr, config.train, split.classes
    model = SERModel(config, len(classes))
    net = runtime.prepare(PerBatch(model))  # DDP-wrapped with several workers; `model` evaluates
    parts = load_parts(config, split, model, runtime)  # waveforms, or frozen-encoder embeddings
    (d1_waves, d1_y), (d2_waves, d2_hidden) = parts.d1, parts.d2
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.lr,
                                  weight_decay=train.weight_decay)
    augment = Augmenter(config.augment, config.audio.sample_rate, config.corpus.cache_dir)
    d1_batches = BatchCycle(len(d1_waves), train.batch_size, rng1, min_size=runtime.world)
    d2_batches = BatchCycle(len(d2_waves), train.batch_size, rng2, min_size=runtime.world)
    prototypes: torch.Tensor | None = None  # (C, P) unit vectors in the prototype space
    rows: list[dict[str, float]] = []
    kept, table, first = None, [], 0
    if runtime.resume:  # a restarted worker group continues after its last finished epoch
        saved = runtime.resume
        first = resume_loop(saved, model, optimizer, (d1_batches, d2_batches), (rng1, rng2))
        prototypes, rows, kept, table = saved["prototypes"], saved["rows"], saved["kept"], saved["table"]
    for epoch in range(first, train.epochs):
        runtime.seed(config.seed, epoch)  # dropout's generator, per epoch and rank
        warm = epoch < train.warmup_epochs
        # ---- Prototype learning (Eq. 1-2): class means of D1 embeddings when warm-up ends.
        if not warm and prototypes is None:
            _, k_d1 = predict(model, d1_waves, config, runtime)
            prototypes = ipr_math.init_prototypes(k_d1, torch.from_numpy(d1_y), len(classes))
        beta = d2_weight(config, epoch)  # Eq. 7
        mu = contrastive_weight(config, beta)  # Eq. 6's mu (ipr.mu_schedule)
        steps = steps_per_epoch(config, len(d1_waves), len(d2_waves), uses_d2=not warm)
        sums = {"loss": 0.0, "ce_d1": 0.0, "ce_d2": 0.0, "contrastive": 0.0}
        updates = 0
        net.train()
        for _ in range(steps):
            # Each rank holds its shard of the global batch (emoref.runtime explains the split).
            idx = next(d1_batches)
            mine = runtime.shard(len(idx))
            batches = [make_batch(d1_waves, idx, config, True, rng1, runtime)]
            if not warm:
                # ---- D2 views: x and its augmented version, in one batch of 2N. Seeds and crops
                # are drawn for the global batch; only this rank's views are augmented.
                idx2 = next(d2_batches)
                n, mine2 = len(idx2), runtime.shard(len(idx2))
                batches.append(view_pair_batch(d2_waves, idx2, augment, config, rng2, runtime))
            with runtime.autocast():
                outputs = net(batches)
            logits = outputs[0][0].float()
            ce_d1 = runtime.share(F.cross_entropy(logits, torch.from_numpy(d1_y[idx[mine]]).to(
                logits.device), reduction="sum"), len(idx))
            ce_d2 = contrastive = torch.zeros((), device=logits.device)
            if not warm:
                logits2, k2 = outputs[1][0].float(), outputs[1][1].float()
                half = len(k2) // 2  # this rank's x views, then its x_aug views
                # (N, P), (N, C): every rank's x and x_aug, in global-batch order
                k_x, k_aug = runtime.gather(k2[:half], n), runtime.gather(k2[half:], n)
                with torch.no_grad():
                    pred_x = runtime.gather(logits2[:half].argmax(1), n).cpu()
                    pred_aug = runtime.gather(logits2[half:].argmax(1), n).cpu()
                    # ---- Pseudo labels for x and x_aug: from the prototypes (Eq. 3), or, as
                    # ipr.pseudo_labels says, the classifier's or (oracle) D2's hidden labels.
                    z = pseudo(ipr.pseudo_labels, torch.cat([k_x, k_aug]),
                               prototypes.to(k_x.device), torch.cat([pred_x, pred_aug]),
                               torch.from_numpy(d2_hidden[idx2]).repeat(2)).to(k_x.device)
                # ---- Losses (Eq. 5, 6): CE on D2 pseudo labels (clean views, this rank's rows),
                # contrastive over the global 2N views.
                z_mine = z[torch.from_numpy(mine2).to(z.device)]
                ce_d2 = runtime.share(F.cross_entropy(logits2[:half], z_mine, reduction="sum"), n)
                contrastive = ipr_math.supcon_loss(torch.cat([k_x, k_aug]), z, ipr.tau)
                # ---- Prototype update (Eq. 4): where the classifier agrees on x and x_aug; the
                # same inputs on every rank, so the same prototypes everywhere.
                with torch.no_grad():
                    if ipr.prototype_update == "agree":
                        prototypes, moved = ipr_math.update_prototypes_agree(
                            prototypes, k_x.detach().cpu(), pred_x, pred_aug, ipr.gamma)
                    else:
                        prototypes, moved = ipr_math.update_prototypes_soft(
                            prototypes, k_x.detach().cpu(), pred_x, pred_aug, ipr.gamma,
                            ipr.soft_update_temperature)
                    updates += moved
                    if ipr.d1_in_update:  # D1's labelled embeddings move their own prototype
                        k_d1 = runtime.gather(outputs[0][1].float(), len(idx)).detach().cpu()
                        prototypes = ipr_math.update_prototypes_labelled(
                            prototypes, k_d1, torch.from_numpy(d1_y[idx]), ipr.gamma)
            # Eq. 6. The CE terms are this rank's shares; the contrastive term is the global value
            # on every rank (its gradient reaches each rank's rows through the gather).
            loss = ipr.alpha * ce_d1 + beta * ce_d2 + mu * contrastive
            check_finite(epoch, ce_d1=ce_d1, ce_d2=ce_d2, contrastive=contrastive, loss=loss)
            runtime.step(loss, optimizer)
            for name, value in (("loss", loss), ("ce_d1", ce_d1), ("ce_d2", ce_d2),
                                ("contrastive", contrastive)):
                sums[name] += value.detach().item() / runtime.world / steps
        sums = runtime.sum(sums)  # over ranks: the global batch's mean losses
        # ---- Evaluation: dev selects, D3 only reports; D2's hidden labels only measure agreement.
        metrics, extras = evaluate(model, parts.evaluation, config, len(classes), runtime)
        # One pass over D2 gives both pseudo labels (Fig. 3): the classifier's and the prototypes'.
        logits_d2, k_d2 = predict(model, d2_waves, config, runtime)
        metrics.update(sums, beta=beta, mu=mu, prototype_updates=float(updates),
                       agreement_model=weighted_accuracy(d2_hidden, logits_d2.argmax(1).numpy()))
        if prototypes is not None:
            z_d2 = ipr_math.pseudo_labels(k_d2, prototypes).numpy()
            metrics["agreement_prototype"] = weighted_accuracy(d2_hidden, z_d2)
            similarity = prototype_similarity(prototypes)
            metrics.update(similarity_pairs(similarity, classes))
            extras["prototype_similarity"] = similarity.tolist()
        rows.append({"epoch": epoch, **metrics})
        if is_selected(rows):  # keep the dev-selected weights, prototypes and D2 annotation
            kept = checkpoint("ipr", config, split, model, prototypes, epoch)
            table = soft_annotation(split.d2, classes, logits_d2, k_d2, prototypes, ipr.tau)
        reporter(epoch, metrics, extras, state=lambda: loop_state(
            epoch, model, optimizer, (d1_batches, d2_batches), (rng1, rng2),
            prototypes=prototypes, rows=rows, kept=kept, table=table))
    return result("ipr", rows, table, kept)


def pseudo(source: str, k: torch.Tensor, prototypes: torch.Tensor, classifier: torch.Tensor,
           hidden: torch.Tensor) -> torch.Tensor:
    """D2's pseudo labels for the 2N views (x then x_aug), from `source` (ipr.pseudo_labels):
    "prototype", Eq. 3's argmax_c k . p_c; "classifier", the classifier's argmax on each view;
    "oracle", D2's hidden true labels (an upper bound of the machinery, never a result)."""
    if source == "prototype":
        return ipr_math.pseudo_labels(k, prototypes)
    return classifier if source == "classifier" else hidden


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
    logits, k = predict(model, load_inputs(utterances, config, model), config)
    return soft_annotation(utterances, saved["classes"], logits, k, saved["prototypes"],
                           config.ipr.tau)
