"""IPR's equations pinned on small tensors."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from emoref.methods.ipr_math import (beta_schedule, init_prototypes, pseudo_labels, soft_labels,
                                     supcon_loss, update_prototypes_agree, update_prototypes_soft)


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


def test_init_prototypes_are_normalised_class_means():
    k = unit([1, 0], [0.8, 0.6], [0, 1])
    p = init_prototypes(k, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(p[0], F.normalize((k[0] + k[1]) / 2, dim=0))
    assert torch.allclose(p[1], k[2])
    with pytest.raises(ValueError, match="class index"):
        init_prototypes(k, torch.tensor([0, 0, 0]), 2)


def test_pseudo_labels_come_from_prototypes_not_the_classifier():
    prototypes = unit([1, 0], [0, 1])
    k = unit([0.9, 0.1], [0.2, 0.8])
    assert torch.allclose(soft_labels(k, prototypes), k @ prototypes.T)
    assert pseudo_labels(k, prototypes).tolist() == [0, 1]
    swapped = prototypes.flip(0)  # move the prototypes: the pseudo labels follow them
    assert pseudo_labels(k, swapped).tolist() == [1, 0]


def test_agree_update_moves_only_when_both_views_agree_and_by_gamma():
    prototypes = unit([1, 0], [0, 1])
    k = unit([0.6, 0.8], [0.8, 0.6])
    gamma = 0.9
    # Sample 0: both views say class 1 -> p_1 moves. Sample 1: views disagree -> nothing moves.
    new, updates = update_prototypes_agree(prototypes, k, torch.tensor([1, 0]),
                                           torch.tensor([1, 1]), gamma)
    assert updates == 1
    assert torch.equal(new[0], prototypes[0])
    expected = F.normalize(gamma * prototypes[1] + (1 - gamma) * k[0], dim=0)
    assert torch.allclose(new[1], expected)
    assert torch.allclose(new.norm(dim=1), torch.ones(2, dtype=torch.float64))
    same, none = update_prototypes_agree(prototypes, k, torch.tensor([0, 1]), torch.tensor([1, 0]),
                                         gamma)
    assert none == 0 and torch.equal(same, prototypes)


def test_soft_update_moves_every_prototype_by_its_share():
    prototypes = unit([1, 0], [0, 1])
    k = unit([0.6, 0.8])
    gamma, temperature = 0.9, 0.5
    new, updates = update_prototypes_soft(prototypes, k, torch.tensor([1]), torch.tensor([1]),
                                          gamma, temperature)
    w = torch.softmax((prototypes @ k[0]) / temperature, dim=0)
    for c in range(2):
        expected = F.normalize(prototypes[c] - (1 - gamma) * w[c] * (prototypes[c] - k[0]), dim=0)
        assert torch.allclose(new[c], expected)
    assert updates == 1 and not torch.equal(new[0], prototypes[0])


def test_supcon_equals_a_direct_computation():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(6, 4, dtype=torch.float64), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])  # anchor 3 (class 2) has no positive
    tau = 0.3
    total, anchors = 0.0, 0
    for i in range(6):
        positives = [p for p in range(6) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(6) if a != i)
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denominator)
                      for p in positives) / len(positives)
        anchors += 1
    assert supcon_loss(z, labels, tau).item() == pytest.approx(total / anchors, rel=1e-10)
    assert supcon_loss(z, torch.arange(6), tau).item() == 0.0  # no positives at all


def test_beta_schedule_endpoints_and_monotone_acceleration():
    values = [beta_schedule(e, 40, 0.5, 5.0) for e in range(41)]
    assert values[0] == 0.0 and values[-1] == pytest.approx(0.5)
    steps = np.diff(values)
    assert (steps > 0).all() and (np.diff(steps) > 0).all()  # increasing, and faster each epoch
    assert beta_schedule(80, 40, 0.5, 5.0) == 0.5
    assert beta_schedule(20, 40, 0.5, 1.0) == pytest.approx(0.25)  # r = 1: linear


def test_eq7_as_printed_reaches_weight_m_at_half_the_epochs_and_stays():
    from emoref.methods.ipr_math import beta_printed
    epochs = 50
    values = [beta_printed(e, epochs, 0.5, 5.0) for e in range(epochs)]
    assert values[0] == 0.0 and values[25] == pytest.approx(0.5)
    assert all(v == 0.5 for v in values[25:])
    steps = [b - a for a, b in zip(values, values[1:25])]
    assert all(later > earlier for earlier, later in zip(steps, steps[1:]))  # accelerates
    assert values[10] == pytest.approx(0.5 * (5.0 ** 0.4 - 1) / 4)


def test_d2_weight_and_mu_follow_the_configured_forms():
    from emoref.config import build_config
    from emoref.methods.common import contrastive_weight, d2_weight
    printed = build_config("cpu", ["train.epochs=50", "train.warmup_epochs=10"])
    ramp = build_config("cpu", ["train.epochs=50", "train.warmup_epochs=10",
                                "ipr.beta_form=ramp"])
    assert d2_weight(printed, 9) == 0.0 and d2_weight(ramp, 9) == 0.0  # warm-up: D2 unused
    assert d2_weight(printed, 25) == pytest.approx(0.5) and d2_weight(printed, 49) == 0.5
    assert d2_weight(ramp, 25) < 0.25 and d2_weight(ramp, 49) == pytest.approx(0.5)
    assert contrastive_weight(printed, 0.1) == 0.2  # constant: the paper's mu from the start
    following = build_config("cpu", ["ipr.mu_schedule=beta"])
    assert contrastive_weight(following, 0.1) == pytest.approx(0.2 * 0.1 / 0.5)
    assert contrastive_weight(following, 0.0) == 0.0


def test_pseudo_label_sources_and_the_fixed_and_labelled_prototype_updates():
    from emoref.methods.ipr import pseudo
    from emoref.methods.ipr_math import update_prototypes_agree, update_prototypes_labelled
    torch.manual_seed(0)
    protos = F.normalize(torch.randn(3, 8), dim=-1)
    k = F.normalize(torch.randn(4, 8), dim=-1)
    classifier, hidden = torch.tensor([2, 2, 0, 1]), torch.tensor([1, 0, 0, 2])
    assert torch.equal(pseudo("prototype", k, protos, classifier, hidden), pseudo_labels(k, protos))
    assert torch.equal(pseudo("classifier", k, protos, classifier, hidden), classifier)
    assert torch.equal(pseudo("oracle", k, protos, classifier, hidden), hidden)
    fixed, moved = update_prototypes_agree(protos, k, classifier, classifier, gamma=1.0)
    assert moved == 4 and torch.allclose(fixed, protos)  # gamma = 1: prototypes stay placed
    labelled = update_prototypes_labelled(protos, k[:2], torch.tensor([1, 1]), gamma=0.5)
    assert torch.equal(labelled[[0, 2]], protos[[0, 2]])  # only class 1 moved
    expected = F.normalize(0.5 * F.normalize(0.5 * protos[1] + 0.5 * k[0], dim=-1) + 0.5 * k[1],
                           dim=-1)
    assert torch.allclose(labelled[1], expected)
