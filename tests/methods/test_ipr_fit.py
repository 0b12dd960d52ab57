"""IPR's training function on the smoke corpus: deterministic, reports every curve, honest selection."""

import dataclasses

import numpy as np
import pytest
import torch

from emoref.config import build_config
from emoref.runtime import Runtime
from emoref.methods import ipr
from emoref.record import ListReporter


def test_ipr_fit_reports_every_epoch_and_is_deterministic(smoke):
    config, split = smoke
    first, second = ListReporter(), ListReporter()
    result = ipr.fit(config, split, first)
    ipr.fit(config, split, second)
    assert first.rows == second.rows  # same seed, same numbers on CPU
    assert [r["epoch"] for r in first.rows] == list(range(config.train.epochs))
    warm, after = first.rows[0], first.rows[-1]
    assert warm["beta"] == 0.0 and warm["ce_d2"] == 0.0 and "agreement_prototype" not in warm
    assert after["beta"] == pytest.approx(config.ipr.beta_max)
    for key in ("d3_wa", "d3_ua", "d3_f1", "dev_wa", "dev_ua", "ce_d1", "ce_d2", "contrastive",
                "agreement_prototype", "agreement_model", "prototype_updates"):
        assert key in after
    assert after["prototype_updates"] > 0 and after["contrastive"] > 0
    sims = first.extras[-1]["prototype_similarity"]
    assert len(sims) == len(split.classes) and sims[0][0] == pytest.approx(1.0, abs=1e-5)
    assert len(result.table) == len(split.d2)
    assert {"pseudo_label", "confidence", "label", "soft_anger", "similarity_anger"} <= set(result.table[0])
    assert sum(v for k, v in result.table[0].items() if k.startswith("soft_")) == pytest.approx(1.0)
    assert result.checkpoint["epoch"] == result.selected_epoch
    assert result.checkpoint["split_hash"] == split.hash
    # Selection looks at dev only.
    best = max(first.rows, key=lambda r: (r["dev_ua"], r["epoch"]))
    assert result.selected_epoch == best["epoch"]


def test_seed_changes_the_run(smoke):
    config, split = smoke
    other = build_config("smoke", [f"corpus.cache_dir={config.corpus.cache_dir}", "seed=1"])
    a, b = ListReporter(), ListReporter()
    ipr.fit(config, split, a)
    ipr.fit(other, split, b)
    assert a.rows[0]["ce_d1"] != b.rows[0]["ce_d1"]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_ipr_trains_under_autocast(smoke, precision):
    """The autocast and gradient-scaler path of the real loop (CPU autocast here; the same code
    runs on GPU workers)."""
    config, split = smoke
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2))
    reporter = ListReporter()
    result = ipr.fit(config, split, reporter, Runtime(precision=precision))
    assert len(reporter.rows) == 2
    assert all(np.isfinite(r["loss"]) for r in reporter.rows)
    assert result.checkpoint["prototypes"].dtype == torch.float32


def one_refinement_epoch(smoke, *overrides):
    """IPR for 3 epochs (1 warm-up) on the smoke corpus: the rows and the Result (rows[1] is the
    first refinement epoch, where Eq. 7's beta is still below its ceiling)."""
    config, split = smoke
    config = build_config("smoke", [f"corpus.cache_dir={config.corpus.cache_dir}",
                                    "train.epochs=3", "train.warmup_epochs=1", *overrides])
    reporter = ListReporter()
    return reporter.rows, ipr.fit(config, split, reporter)


@pytest.mark.parametrize("setting", ["ipr.pseudo_labels=oracle", "ipr.pseudo_labels=classifier",
                                     "ipr.mu=0", "ipr.d1_in_update=true", "ipr.mu_schedule=beta"])
def test_each_oracle_and_ablation_changes_the_refinement_epoch_as_it_says(smoke, setting):
    paper, _ = one_refinement_epoch(smoke)
    rows, _ = one_refinement_epoch(smoke, setting)
    warm_up = [{k: v for k, v in r[0].items() if k != "mu"} for r in (rows, paper)]
    assert warm_up[0] == warm_up[1]  # warm-up trains the same: only the refinement differs
    after = rows[1]
    if setting == "ipr.mu=0":
        assert after["loss"] == pytest.approx(after["ce_d1"] + after["beta"] * after["ce_d2"])
    if setting == "ipr.mu_schedule=beta":
        assert after["mu"] == pytest.approx(0.2 * after["beta"] / 0.5) and after["mu"] < 0.2
    assert paper[1]["mu"] == 0.2
    changed = [k for k in ("loss", "ce_d2", "contrastive", "similarity.anger.sadness")
               if after.get(k) != paper[1].get(k)]
    assert changed, setting


def test_gamma_one_keeps_the_prototypes_where_warm_up_placed_them(smoke):
    """With gamma = 1 the prototypes (hence their similarities) after a refinement epoch do not
    depend on how the model trained in it (mu changes the training); with 0.99 they do."""
    def similarities(*overrides):
        rows, _ = one_refinement_epoch(smoke, *overrides)
        return {k: v for k, v in rows[1].items() if k.startswith("similarity.")}
    fixed = similarities("ipr.gamma=1.0", "ipr.mu=0.2")
    assert fixed and fixed == similarities("ipr.gamma=1.0", "ipr.mu=0.8")
    assert similarities("ipr.mu=0.2") != similarities("ipr.mu=0.8")
