import numpy as np
import pytest
import torch

from emoref.metrics import (classification_report, confusion, macro_f1, prototype_similarity,
                            similarity_pairs, unweighted_accuracy, weighted_accuracy)


def test_wa_ua_f1_on_an_imbalanced_example():
    truth = np.array([0, 0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 0, 1, 1, 0, 2])
    assert weighted_accuracy(truth, pred) == pytest.approx(5 / 7)
    assert unweighted_accuracy(truth, pred, 3) == pytest.approx((3 / 4 + 1 / 2 + 1) / 3)
    # per class F1: c0 p=3/4 r=3/4; c1 p=1/2 r=1/2; c2 1.
    assert macro_f1(truth, pred, 3) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert confusion(truth, pred, 3).tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    report = classification_report(truth, pred, 3)
    assert set(report) == {"wa", "ua", "f1", "confusion"}


def test_ua_ignores_absent_classes_and_f1_counts_spurious_predictions():
    truth, pred = np.array([0, 0]), np.array([0, 1])
    assert unweighted_accuracy(truth, pred, 3) == 0.5
    assert macro_f1(truth, pred, 3) == pytest.approx((2 / 3 + 0.0) / 2)


def test_prototype_similarity():
    sims = prototype_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert sims[0, 0] == pytest.approx(1.0) and sims[0, 1] == pytest.approx(2 ** -0.5)


def test_similarity_pairs_name_each_pair_once_in_class_order():
    sims = prototype_similarity(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]))
    pairs = similarity_pairs(sims, ["anger", "sadness", "neutral"])
    assert list(pairs) == ["similarity.anger.sadness", "similarity.anger.neutral",
                           "similarity.sadness.neutral"]
    assert pairs["similarity.anger.neutral"] == pytest.approx(0.0, abs=1e-7)
    assert pairs["similarity.sadness.neutral"] == pytest.approx(2 ** -0.5)
