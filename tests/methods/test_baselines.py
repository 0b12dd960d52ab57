"""The three baselines and the honesty rules all IPR-family methods share, on the smoke corpus."""

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from emoref.methods import METHODS, baselines
from emoref.methods.common import soft_cross_entropy
from emoref.record import ListReporter

LOSSES = ("loss", "ce_d1", "ce_d2", "contrastive")


def run(method, config, split):
    reporter = ListReporter()
    result = METHODS[method](config, split, reporter)
    return reporter.rows, result


def relabel(utterances, shift):
    """The same audio with every label moved `shift` classes along: a different hidden truth."""
    classes = sorted({u.label for u in utterances})
    return tuple(dataclasses.replace(u, label=classes[(classes.index(u.label) + shift) % len(classes)])
                 for u in utterances)


def test_soft_cross_entropy_matches_torch():
    logits = torch.randn(5, 4)
    targets = torch.softmax(torch.randn(5, 4), dim=1)
    assert soft_cross_entropy(logits, targets) == pytest.approx(
        F.cross_entropy(logits, targets).item(), rel=1e-6)
    hard = torch.tensor([0, 3, 1, 1, 2])
    assert soft_cross_entropy(logits, F.one_hot(hard, 4).float()) == pytest.approx(
        F.cross_entropy(logits, hard).item(), rel=1e-6)


def test_baseline_uses_d1_only(smoke):
    config, split = smoke
    rows, result = run("baseline", config, split)
    assert all(r["ce_d2"] == 0.0 and r["beta"] == 0.0 for r in rows)
    assert result.checkpoint["prototypes"] is None and result.method == "baseline"


def test_baseline_star_adds_its_own_soft_labels_after_warm_up(smoke):
    config, split = smoke
    rows, _ = run("baseline_star", config, split)
    warm = config.train.warmup_epochs
    assert all(r["ce_d2"] == 0.0 for r in rows[:warm])
    assert all(r["ce_d2"] > 0.0 for r in rows[warm:])
    assert rows[-1]["beta"] == pytest.approx(config.ipr.beta_max)


def test_supervised_trains_on_d2_labels_from_the_first_epoch(smoke):
    config, split = smoke
    rows, _ = run("supervised", config, split)
    assert all(r["ce_d2"] > 0.0 and r["beta"] == 1.0 for r in rows)
    # Its D2 labels matter: other labels, other training.
    other, _ = run("supervised", config, dataclasses.replace(split, d2=relabel(split.d2, 1)))
    assert [r["loss"] for r in rows] != [r["loss"] for r in other]


@pytest.mark.parametrize("method", ["ipr", "baseline", "baseline_star"])
def test_hidden_labels_never_reach_training(smoke, method):
    """D2's labels are hidden and D3's only test: changing them leaves every loss, the dev curve and
    the selected epoch exactly as they were (only the agreement and D3 numbers may move)."""
    config, split = smoke
    rows, result = run(method, config, split)
    changed = dataclasses.replace(split, d2=relabel(split.d2, 1), d3=relabel(split.d3, 2))
    rows2, result2 = run(method, config, changed)
    for key in (*LOSSES, "dev_ua", "dev_wa", "prototype_updates"):
        assert [r.get(key) for r in rows] == [r.get(key) for r in rows2], key
    assert result.selected_epoch == result2.selected_epoch
    assert [r["agreement_model"] for r in rows] != [r["agreement_model"] for r in rows2]


def test_warm_up_is_identical_across_methods(smoke):
    """Same seed: same initial weights, D1 batches and crops, so warm-up epochs match exactly."""
    config, split = smoke
    ipr_rows, _ = run("ipr", config, split)
    star_rows, _ = run("baseline_star", config, split)
    base_rows, _ = run("baseline", config, split)
    warm = config.train.warmup_epochs
    for key in ("ce_d1", "dev_ua", "d3_ua", "agreement_model"):
        assert [r[key] for r in ipr_rows[:warm]] == [r[key] for r in base_rows[:warm]], key
        assert [r[key] for r in star_rows[:warm]] == [r[key] for r in base_rows[:warm]], key


def test_unknown_variant_is_refused(smoke):
    config, split = smoke
    with pytest.raises(ValueError, match="variant"):
        baselines.fit(config, split, ListReporter(), variant="semi")


def test_a_class_missing_from_d1_is_refused_before_training(smoke):
    from emoref.data.manifest import DataError
    config, split = smoke
    without = dataclasses.replace(split, d1=tuple(u for u in split.d1 if u.label != "sadness"))
    for method in METHODS:
        if method == "epr":
            continue
        with pytest.raises(DataError, match=r"D1 has no utterance of class\(es\) \['sadness'\]"):
            METHODS[method](config, without, ListReporter())
    with pytest.raises(DataError, match="D3 is empty"):
        METHODS["ipr"](config, dataclasses.replace(split, d3=()), ListReporter())
