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
