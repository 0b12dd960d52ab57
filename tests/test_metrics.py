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


# ---- Against the raters: hand-computed values

from emoref.metrics import (annotation_nll, bhattacharyya, expected_calibration_error,  # noqa: E402
                            js_divergence, kl_divergence, multilabel_macro_f1, top_k_accuracy,
                            ua_by_tier, vote_distribution)


def test_votes_fold_into_the_task_and_outside_votes_are_counted():
    p, outside = vote_distribution([("anger", 2), ("excitement", 1), ("frustration", 1)],
                                   ["anger", "happiness"], {"excitement": "happiness"})
    assert p.tolist() == pytest.approx([2 / 3, 1 / 3]) and outside == 1
    assert vote_distribution([("frustration", 3)], ["anger", "happiness"]) == (None, 3)
    one, _ = vote_distribution([("anger", 1)], ["anger", "happiness"])  # one rater: one-hot
    assert one.tolist() == [1.0, 0.0]


def test_js_kl_and_bhattacharyya():
    assert js_divergence([1, 0], [0, 1])[0] == pytest.approx(1.0)
    assert js_divergence([0.3, 0.7], [0.3, 0.7])[0] == pytest.approx(0.0)
    # M = (0.75, 0.25): (0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25) + log2(1/0.75)) / 2
    assert js_divergence([0.5, 0.5], [1, 0])[0] == pytest.approx(0.311278, abs=1e-6)
    # 2/3 ln(4/3) + 1/3 ln(2/3); a class no rater named (0 votes) adds nothing
    assert kl_divergence([2 / 3, 1 / 3, 0], [0.5, 0.5, 0])[0] == pytest.approx(0.056633, abs=1e-6)
    # a voted class the model gives 0: the floor, -ln(1e-6) per unit of vote
    assert kl_divergence([1, 0], [0, 1])[0] == pytest.approx(13.815511, abs=1e-5)
    assert bhattacharyya([2 / 3, 1 / 3], [0.5, 0.5])[0] == pytest.approx(0.985599, abs=1e-6)
    assert bhattacharyya([1, 0], [0, 1])[0] == 0.0


def test_annotation_nll_weighs_each_rater_once():
    counts = np.array([[2, 1], [0, 1]])  # three raters, then one
    model = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert annotation_nll(counts, model) == pytest.approx(
        (3 * np.log(2) - np.log(0.75)) / 4)


def test_ece_top2_and_ties():
    model = np.array([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    # bins of width 1/15: 0.9 alone (right: |1 - 0.9|), the two 0.6 together (one right:
    # |0.5 - 0.6|): 1/3 * 0.1 + 2/3 * 0.1
    assert expected_calibration_error(model, [0, 1, 0]) == pytest.approx(0.1)
    three = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])
    assert top_k_accuracy(three, [1, 1, 0]) == pytest.approx(2 / 3)
    assert top_k_accuracy(np.array([[0.4, 0.3, 0.3]]), [2], k=2) == 0.0  # tie: class order


def test_multilabel_f1_thresholds_both_at_one_over_c_with_ties_in():
    votes = np.array([[1 / 3, 2 / 3, 0], [1.0, 0, 0]])  # 1/3 is exactly the threshold: in
    model = np.array([[0.2, 0.5, 0.3], [0.6, 0.4, 0.0]])
    # class 0: truth rows {0, 1}, predicted {1}: F1 = 2/(2 + 1); class 1: truth {0}, predicted
    # {0, 1}: 2/3;
    # class 2: in neither (row 0 gives it 0.3 < 1/3): left out of the average
    assert multilabel_macro_f1(votes, model) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_ua_per_tier():
    tiers = ["D1", "D1", "D3", "D3", "D3"]
    assert ua_by_tier([0, 1, 0, 1, 1], [0, 1, 1, 1, 0], tiers, 2) == {
        "D1": 1.0, "D3": pytest.approx((0 + 0.5) / 2)}
