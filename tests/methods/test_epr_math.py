"""EPR's refinement rules and utterance statistics on small arrays."""

import numpy as np
import pytest
import torch

from emoref.methods.epr_math import refine_targets, utterance_features

PROFILE = torch.tensor([[0.6, 0.1, 0.1, 0.2], [0.1, 0.7, 0.1, 0.1], [0.3, 0.3, 0.2, 0.2]])
ONEHOT = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0]])
OWNER = np.array([0, 0, 1])


def test_pepr_mixing_reproduces_the_papers_example():
    mixed = refine_targets(PROFILE, ONEHOT, OWNER, "mixed", 0.5)
    assert mixed[0].tolist() == pytest.approx([0.8, 0.05, 0.05, 0.1])
    assert mixed.sum(1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert refine_targets(PROFILE, ONEHOT, OWNER, "mixed", 1.0).tolist() == ONEHOT.tolist()


def test_sepr_uses_the_profiles_themselves():
    assert torch.equal(refine_targets(PROFILE, ONEHOT, OWNER, "soft", 0.5), PROFILE)


def test_hard_dynamic_is_the_argmax_per_segment():
    hard = refine_targets(PROFILE, ONEHOT, OWNER, "hard", 0.5)
    assert hard.argmax(1).tolist() == [0, 1, 0] and hard.sum(1).tolist() == [1.0, 1.0, 1.0]


def test_soft_static_is_the_utterance_mean_on_every_segment():
    static = refine_targets(PROFILE, ONEHOT, OWNER, "static", 0.5)
    mean = PROFILE[:2].mean(0)
    assert torch.allclose(static[0], mean) and torch.allclose(static[1], mean)
    assert torch.allclose(static[2], PROFILE[2])


def test_unknown_refinement_is_refused():
    with pytest.raises(ValueError, match="labels"):
        refine_targets(PROFILE, ONEHOT, OWNER, "fuzzy", 0.5)


def test_utterance_features_are_statistics_per_dimension():
    rng = np.random.default_rng(0)
    profiles = rng.dirichlet(np.ones(3), size=7)
    owner = np.array([1, 0, 1, 1, 0, 1, 1])
    stats = ("mean", "std", "min", "max", "median", "q25", "q75")
    out = utterance_features(profiles, owner, 3, stats)
    assert out.shape == (3, 3 * len(stats))
    rows = profiles[owner == 1]
    expected = np.concatenate([rows.mean(0), rows.std(0), rows.min(0), rows.max(0),
                               np.median(rows, 0), np.percentile(rows, 25, 0),
                               np.percentile(rows, 75, 0)])
    np.testing.assert_allclose(out[1], expected)
    assert not out[2].any()  # an utterance without segments gets zeros, not an error


def test_share_counts_the_segments_whose_top_class_is_each_emotion():
    profiles = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    owner = np.array([0, 0, 0, 1])
    out = utterance_features(profiles, owner, 2, ("mean", "share"))
    np.testing.assert_allclose(out[0, 3:], [2 / 3, 1 / 3, 0.0])
    np.testing.assert_allclose(out[1, 3:], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out[:, :3].sum(1), 1.0)
