"""EPR's k-fold refinery on the smoke corpus: fresh stages, no test-fold leakage, every stage scored."""

import numpy as np
import pytest

from emoref.config import build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split
from emoref.methods import epr
from emoref.record import ListReporter


def smoke_config(cache, *extra):
    return build_config("smoke", [f"corpus.cache_dir={cache}", "split.folds=2", "epr.depth=2",
                                  "epr.max_epochs=1", *extra], method="epr")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    config = smoke_config(tmp_path_factory.mktemp("cache"))
    return config, make_split(load_manifest(config.corpus), config.split)


def test_epr_scores_every_stage_and_is_deterministic(smoke):
    config, split = smoke
    first, second = ListReporter(), ListReporter()
    result = epr.fit(config, split, first)
    epr.fit(config, split, second)
    assert first.rows == second.rows
    for stage in (1, 2):
        for key in ("wa", "ua", "f1"):
            assert 0.0 <= result.final[f"stage{stage}_{key}"] <= 1.0
        assert f"stage{stage}_confusion" in first.extras[-1]
    n = sum(len(f.test) for f in split.folds)
    assert len(result.table) == n and {"stage1", "stage2", "fold"} <= set(result.table[0])
    epochs = [r for r in first.rows if "val_loss" in r]
    assert epochs and all(r["lr"] == pytest.approx(config.epr.lr) for r in epochs)
    # The figure utterance has one profile per stage, each (segments, K).
    profiles = first.extras[-1]["figure_profiles"]
    assert len(profiles) == 2 and len(profiles[0][0]) == len(split.classes)


def test_every_stage_starts_from_a_fresh_initialisation(smoke):
    config, split = smoke
    reporter = ListReporter()
    epr.fit(config, split, reporter)
    seen = [(r["fold"], r["stage"], x["init_fingerprint"])
            for r, x in zip(reporter.rows, reporter.extras) if "init_fingerprint" in x]
    assert len(seen) == len(split.folds) * config.epr.depth
    for fold, stage, value in seen:
        fresh = epr.new_network(config, len(split.classes),
                                epr.stage_seed(config.seed, int(fold), int(stage)))
        assert value == pytest.approx(epr.fingerprint(fresh), rel=1e-12)
    assert len({round(v, 6) for _, _, v in seen}) == len(seen)  # no stage reuses another's start


@pytest.mark.parametrize("labels", ["mixed", "static"])  # static reads other segments of the utterance
def test_no_test_fold_utterance_reaches_training_or_the_forest(smoke, labels, monkeypatch):
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, f"epr.labels={labels}")
    utterances = [u for f in split.folds for u in f.test]  # fit()'s order
    calls, sizes = {"train": 0, "forest": 0}, []
    real_train, real_forest = epr.train_network, epr.fit_forest

    def current_test_ids(kind):  # the forest is fitted twice per stage: test fold, then dev
        fold = split.folds[calls[kind] // (config.epr.depth * (2 if kind == "forest" else 1))]
        calls[kind] += 1
        return {u.id for u in fold.test}

    def spy_train(network, bank, fit_segs, val_segs, *args, **kwargs):
        test_ids = current_test_ids("train")
        used = {utterances[i].id for i in np.unique(bank.owner[np.concatenate([fit_segs, val_segs])])}
        assert not used & test_ids, "a test-fold utterance reached a training step"
        assert len(used) + len(test_ids) == len(utterances)  # and every other utterance did
        return real_train(network, bank, fit_segs, val_segs, *args, **kwargs)

    def spy_forest(features, labels_, ids, *args, **kwargs):
        test_ids = current_test_ids("forest")
        assert not set(ids) & test_ids, "a test-fold utterance reached the forest's fit"
        sizes.append(len(ids))
        return real_forest(features, labels_, ids, *args, **kwargs)

    monkeypatch.setattr(epr, "train_network", spy_train)
    monkeypatch.setattr(epr, "fit_forest", spy_forest)
    epr.fit(config, split, ListReporter())
    assert calls == {"train": 4, "forest": 8}
    # The dev forest (every second fit) leaves out the validation utterances it is scored on.
    assert all(dev < test for test, dev in zip(sizes[::2], sizes[1::2]))


def test_hold_out_is_stratified_and_disjoint():
    labels = np.array([0] * 20 + [1] * 10)
    train = np.arange(30)
    fit, val = epr.hold_out(train, labels, 0.1, np.random.default_rng(0))
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 30
    assert sorted(labels[val].tolist()) == [0, 0, 1]


def test_a_subset_of_folds_scores_only_its_test_utterances(smoke):
    import dataclasses
    config, split = smoke
    first = dataclasses.replace(split, folds=split.folds[:1])
    result = epr.fit(config, first, ListReporter())
    assert sorted(r["id"] for r in result.table) == sorted(u.id for u in split.folds[0].test)


def test_dev_ua_comes_from_held_out_training_utterances_for_every_stage(smoke):
    config, split = smoke
    reporter = ListReporter()
    result = epr.fit(config, split, reporter)
    depth = config.epr.depth
    assert result.final["dev_ua"] == result.final[f"stage{depth}_dev_ua"]
    per_fold = [r["fold_dev_ua"] for r in reporter.rows
                if r.get("stage") == depth and "fold_dev_ua" in r]
    assert len(per_fold) == len(split.folds)
    assert result.final["dev_ua"] == pytest.approx(np.mean(per_fold))
    assert all(0.0 <= result.final[f"stage{t}_dev_ua"] <= 1.0 for t in range(1, depth + 1))
