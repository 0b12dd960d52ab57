"""Evaluation metrics over integer labels: WA (accuracy), UA (mean per-class recall), macro-F1,
confusion matrices, pseudo-label agreement and prototype similarity."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def confusion(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts; rows are the true class, columns the prediction."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(pred)), 1)
    return matrix


def weighted_accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    """WA: the share of utterances classified correctly (the papers' "Acc" and "WA")."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    return float((truth == pred).mean()) if len(truth) else float("nan")


def unweighted_accuracy(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """UA: recall averaged over the classes present in `truth` (absent classes are not averaged)."""
    matrix = confusion(truth, pred, n_classes)
    support = matrix.sum(1)
    present = support > 0
    return float((np.diag(matrix)[present] / support[present]).mean()) if present.any() else float("nan")


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """F1 averaged over classes present in `truth` or `pred`; a class never predicted scores 0."""
    matrix = confusion(truth, pred, n_classes)
    tp = np.diag(matrix).astype(float)
    precision_den, recall_den = matrix.sum(0), matrix.sum(1)
    present = (precision_den + recall_den) > 0
    f1 = np.where(precision_den + recall_den > 0, 2 * tp / np.maximum(precision_den + recall_den, 1), 0)
    return float(f1[present].mean()) if present.any() else float("nan")


def classification_report(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> dict:
    return {"wa": weighted_accuracy(truth, pred), "ua": unweighted_accuracy(truth, pred, n_classes),
            "f1": macro_f1(truth, pred, n_classes),
            "confusion": confusion(truth, pred, n_classes).tolist()}


def prototype_similarity(prototypes: torch.Tensor) -> np.ndarray:
    """(C, P) unit prototypes -> (C, C) cosine similarities (the IPR paper's Fig. 2)."""
    p = torch.nn.functional.normalize(prototypes.detach().float(), dim=-1)
    return (p @ p.T).cpu().numpy()


def similarity_pairs(matrix: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """The upper triangle of a prototype similarity matrix as named scalars,
    `similarity.<a>.<b>`, so each pair's trend over epochs is a curve (the IPR paper's Fig. 2)."""
    return {f"similarity.{classes[i]}.{classes[j]}": float(matrix[i, j])
            for i in range(len(classes)) for j in range(i + 1, len(classes))}


# ----------------------------------------------------------------------------------------------------
# Against the raters: each utterance's vote distribution over the task's classes, compared with the
# model's softmax (the measures of the ambiguity literature; logs in nats unless said otherwise)
# ----------------------------------------------------------------------------------------------------

# The one smoothing: a model probability is floored at this before any log (KL, NLL), so a class
# the model gives 0 costs -log(1e-6) = 13.8 nats instead of infinity. Vote distributions are never
# smoothed: a class no rater named has probability 0.
PROBABILITY_FLOOR = 1e-6


def vote_distribution(votes: Sequence[tuple[str, int]], classes: Sequence[str],
                      fold: dict[str, str] | None = None) -> tuple[np.ndarray | None, int]:
    """An utterance's votes over `classes` (labels folded by `fold` first, e.g. excitement ->
    happiness), normalised to sum to 1, and how many votes named a label outside the task (left
    out). None when no vote names a task class: such an utterance has no distribution to score."""
    fold = fold or {}
    counts = np.zeros(len(classes))
    index = {c: i for i, c in enumerate(classes)}
    outside = 0
    for label, n in votes:
        label = fold.get(label, label)
        if label in index:
            counts[index[label]] += n
        else:
            outside += n
    return (counts / counts.sum() if counts.sum() else None), outside


def _rows(p: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.asarray(p, dtype=float))


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence per row, in bits (0: the same distribution, 1: disjoint)."""
    p, q = _rows(p), _rows(q)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / m), 0.0).sum(1)
    return (kl(p) + kl(q)) / 2


def kl_divergence(votes: np.ndarray, model: np.ndarray) -> np.ndarray:
    """KL(votes || model) per row, nats: what the model's softmax loses of the raters' votes."""
    p, q = _rows(votes), np.maximum(_rows(model), PROBABILITY_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p / q), 0.0).sum(1)


def bhattacharyya(votes: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient per row, sum_c sqrt(p_c q_c) (1: the same distribution)."""
    return np.sqrt(_rows(votes) * _rows(model)).sum(1)


def annotation_nll(counts: np.ndarray, model: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the individual annotations under the model: every
    rater's vote for a task class counts once, so an utterance with more raters weighs more."""
    counts, q = _rows(counts), np.maximum(_rows(model), PROBABILITY_FLOOR)
    return float((counts * -np.log(q)).sum() / counts.sum()) if counts.sum() else float("nan")


def expected_calibration_error(model: np.ndarray, truth: np.ndarray, bins: int = 15) -> float:
    """ECE over `bins` equal-width bins of the top probability: sum over bins of (share of
    utterances) x |accuracy - mean confidence|."""
    q, truth = _rows(model), np.asarray(truth)
    confidence, predicted = q.max(1), q.argmax(1)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.mean() * abs((predicted[inside] == truth[inside]).mean()
                                     - confidence[inside].mean())
    return float(total)


def top_k_accuracy(model: np.ndarray, truth: np.ndarray, k: int = 2) -> float:
    """The share of utterances whose label is among the model's k most probable classes (ties
    at the k-th probability broken by class order)."""
    q, truth = _rows(model), np.asarray(truth)
    top = np.argsort(-q, axis=1, kind="stable")[:, :k]
    return float((top == truth[:, None]).any(1).mean())


def multilabel_macro_f1(votes: np.ndarray, model: np.ndarray) -> float:
    """EMO-SUPERB's multi-label macro-F1: both distributions thresholded at 1/C (a class is
    present when its share is at least 1/C), F1 per class over utterances, averaged over the
    classes present in either."""
    p, q = _rows(votes), _rows(model)
    cut = 1 / p.shape[1] - 1e-9
    truth, pred = p >= cut, q >= cut
    tp = (truth & pred).sum(0)
    den = truth.sum(0) + pred.sum(0)
    present = den > 0
    return float((2 * tp[present] / den[present]).mean()) if present.any() else float("nan")


def ua_by_tier(truth: np.ndarray, pred: np.ndarray, tiers: Sequence[str], n_classes: int
               ) -> dict[str, float]:
    """UA within each agreement tier (D1, D2, D3, or agreement bins) that holds utterances."""
    truth, pred, tiers = np.asarray(truth), np.asarray(pred), np.asarray(tiers)
    return {t: unweighted_accuracy(truth[tiers == t], pred[tiers == t], n_classes)
            for t in dict.fromkeys(tiers.tolist())}
