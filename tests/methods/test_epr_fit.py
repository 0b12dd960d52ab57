"""EPR's k-fold refinery on the smoke corpus: fresh stages, every stage scored, and under each
`epr.protocol` the profiles come from the networks the protocol says, with no test-fold leakage
where it promises none."""

import copy
import dataclasses

import numpy as np
import pytest

from emoref.config import ConfigError, build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import make_split
from emoref.methods import epr
from emoref.record import ListReporter

PROTOCOLS = ("paper", "nested", "in_sample")


def smoke_config(cache, *extra):
    """The spies below count the networks each fit trains, so stage 1 is trained here every time
    (epr.reuse_stage1=false); the store has its own tests at the end."""
    return build_config("smoke", [f"corpus.cache_dir={cache}", "split.folds=2", "epr.depth=2",
                                  "epr.max_epochs=1", "epr.inner_folds=2",
                                  "epr.reuse_stage1=false", *extra], method="epr")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    config = smoke_config(tmp_path_factory.mktemp("cache"))
    return config, make_split(load_manifest(config.corpus), config.split)


class Spy:
    """Records, for one epr.fit, each network's job (from epr.plan, in training order), what it
    trained on, the targets and labels it saw, the weights it ended with, the profiles it served,
    and each forest's fit and scored utterances."""

    def __init__(self, monkeypatch):
        self.jobs, self.networks, self.forests, self.served = [], [], [], []
        self.training = False
        real_plan, real_train = epr.plan, epr.train_network
        real_predict, real_forest = epr.predict_profiles, epr.forest_labels

        def plan(*args, **kwargs):
            self.jobs = real_plan(*args, **kwargs)
            return self.jobs

        def train(network, bank, fit_segs, val_segs, targets, segment_labels, *args, **kwargs):
            segs = np.concatenate([fit_segs, val_segs])
            self.training = True
            real_train(network, bank, fit_segs, val_segs, targets, segment_labels, *args, **kwargs)
            self.training = False
            self.bank = bank
            self.networks.append({
                "job": self.jobs[len(self.networks) % len(self.jobs)],
                "trained_on": set(np.unique(bank.owner[segs]).tolist()),
                "targets": targets[segs].clone(), "labels": segment_labels[segs].copy(),
                "weights": epr.fingerprint(network)})

        def predict(network, bank, norm, batch_size, segs=None, runtime=epr.LOCAL):
            if not self.training:  # a served profile, not early stopping's validation pass
                self.served.append(set(np.unique(bank.owner[segs]).tolist()))
            return real_predict(network, bank, norm, batch_size, segs, runtime)

        def forest(features, labels, fit, score, *args, **kwargs):
            self.forests.append({"fit": set(fit.tolist()), "score": set(score.tolist()),
                                 "x": features[fit].copy(), "y": labels[fit].copy()})
            return real_forest(features, labels, fit, score, *args, **kwargs)

        for name, spy in (("plan", plan), ("train_network", train),
                          ("predict_profiles", predict), ("forest_labels", forest)):
            monkeypatch.setattr(epr, name, spy)


def positions(split):
    """Utterance positions as epr.fit numbers them (test folds first) and each fold's test set."""
    utterances = list({u.id: u for f in split.folds for u in (*f.test, *f.train)})
    position = {u: i for i, u in enumerate(utterances)}
    return utterances, [{position[u.id] for u in f.test} for f in split.folds]


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
    # The decision without the forest (argmax of the mean profile) is kept beside the forest's.
    for stage in (1, 2):
        hits = [row[f"argmax_stage{stage}"] == row["label"] for row in result.table]
        assert result.final[f"argmax_stage{stage}_wa"] == pytest.approx(np.mean(hits))
        assert 0.0 <= result.final[f"argmax_stage{stage}_ua"] <= 1.0
    epochs = [r for r in first.rows if "val_loss" in r]
    assert epochs and all(r["lr"] == pytest.approx(config.epr.lr) for r in epochs)
    # A few utterances, one of each class, have one profile per stage, each (segments, K).
    profiles = first.extras[-1]["figure_profiles"]
    labels = {u.id: u.label for f in split.folds for u in f.test}
    assert len(profiles) == config.epr.figure_count == len({labels[u] for u in profiles})
    for stages in profiles.values():
        assert len(stages) == 2 and len(stages[0][0]) == len(split.classes)


def test_every_network_starts_from_a_fresh_initialisation(smoke):
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, "epr.protocol=nested")
    reporter = ListReporter()
    epr.fit(config, split, reporter)
    seen = [(r["fold"], r["stage"], r.get("inner", -1), x["init_fingerprint"])
            for r, x in zip(reporter.rows, reporter.extras) if "init_fingerprint" in x]
    # Per fold and stage: one network per inner part and the fold's own.
    assert len(seen) == len(split.folds) * config.epr.depth * (config.epr.inner_folds + 1)
    for fold, stage, inner, value in seen:
        fresh = epr.new_network(config, len(split.classes),
                                epr.stage_seed(config.seed, int(fold), int(stage), int(inner)))
        assert value == pytest.approx(epr.fingerprint(fresh), rel=1e-12)
    assert len({round(v, 6) for *_, v in seen}) == len(seen)  # no network reuses another's start


def test_a_seeds_stage_one_fold_networks_are_the_same_under_every_protocol_and_kind(
        smoke, monkeypatch):
    """Rows of one seed pair at stage 1 by construction (the same networks, bit for bit), so the
    stage-1 difference between two protocols' rows is their forests' alone (runner.report pairs
    EPR rows stage by stage): the test utterances' stage-1 profiles, hence the argmax of their
    mean, are the same in every row."""
    config, split = smoke
    weights, argmax = {}, {}
    for protocol in PROTOCOLS:
        for labels in ("mixed", "soft"):
            with monkeypatch.context() as patch:  # one spy at a time, not spies of spies
                spy = Spy(patch)
                result = epr.fit(smoke_config(config.corpus.cache_dir, f"epr.protocol={protocol}",
                                              f"epr.labels={labels}"), split, ListReporter())
            argmax[protocol, labels] = {row["id"]: row["argmax_stage1"] for row in result.table}
            stage_one = spy.networks[:len(spy.jobs)]
            weights[protocol, labels] = {n["job"].fold: n["weights"] for n in stage_one
                                         if n["job"].inner < 0}
            # Stage 2 trains other networks: the rows can differ from there on.
            assert spy.networks[len(spy.jobs)]["weights"] != stage_one[0]["weights"]
    first = weights["paper", "mixed"]
    assert len(first) == len(split.folds)
    assert all(w == first for w in weights.values())
    assert all(a == argmax["paper", "mixed"] for a in argmax.values())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("labels", ["mixed", "static"])  # static reads other segments of the utterance
def test_no_test_fold_utterance_reaches_its_folds_networks_or_forests(smoke, protocol, labels,
                                                                      monkeypatch):
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, f"epr.labels={labels}",
                          f"epr.protocol={protocol}")
    utterances, tests = positions(split)
    spy = Spy(monkeypatch)
    epr.fit(config, split, ListReporter())
    per_stage = len(split.folds) * (config.epr.inner_folds + 1 if protocol == "nested" else 1)
    assert len(spy.jobs) == per_stage and len(spy.networks) == per_stage * config.epr.depth
    for network in spy.networks:
        job = network["job"]
        assert not network["trained_on"] & tests[job.fold], "a test-fold utterance was trained on"
        if job.inner < 0 and protocol != "nested":  # and every other utterance was
            assert len(network["trained_on"]) + len(tests[job.fold]) == len(utterances)
    # Per stage and fold: the test fold's forest, then the dev forest on the early-stopping share.
    assert len(spy.forests) == 2 * len(split.folds) * config.epr.depth
    for i, forest in enumerate(spy.forests):
        test = tests[(i // 2) % len(split.folds)]
        assert not forest["fit"] & forest["score"] and not forest["fit"] & test
        # The test fold's forest labels exactly its test fold; the dev forest, training utterances.
        assert forest["score"] == test if i % 2 == 0 else not forest["score"] & test


def test_under_paper_every_profile_comes_from_a_network_that_did_not_train_on_it(smoke,
                                                                               monkeypatch):
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, "epr.protocol=paper")
    utterances, tests = positions(split)
    spy = Spy(monkeypatch)
    epr.fit(config, split, ListReporter())
    assert len(spy.served) == len(spy.networks) == len(split.folds) * config.epr.depth
    for stage in range(config.epr.depth):
        chunk = range(stage * len(split.folds), (stage + 1) * len(split.folds))
        for i in chunk:
            assert spy.served[i] and not spy.served[i] & spy.networks[i]["trained_on"]
        assert set().union(*(spy.served[i] for i in chunk)) == set(range(len(utterances)))
    # The forest is cross-validated: each fold's is scored on its test fold only, never fitted on it.
    tested = [f["score"] for f in spy.forests[::2]]
    assert all(not f["fit"] & f["score"] for f in spy.forests)
    assert set().union(*tested) == set(range(len(utterances)))


def altered(split, fold=0):
    """`split` with fold `fold`'s test utterances relabelled (each class to the next)."""
    classes, ids = split.classes, {u.id for u in split.folds[fold].test}

    def relabel(u):
        if u.id not in ids:
            return u
        return dataclasses.replace(u, label=classes[(classes.index(u.label) + 1) % len(classes)])

    return dataclasses.replace(split, folds=tuple(
        dataclasses.replace(f, train=tuple(map(relabel, f.train)), test=tuple(map(relabel, f.test)))
        for f in split.folds))


def fold_zero_inputs(config, split, monkeypatch, change):
    """What fold 0's networks and forests learn from: each network's targets, labels and final
    weights, each forest's fit features and labels. `change` relabels fold 0's test utterances
    and replaces their audio's log-Mel frames with noise."""
    ids = {u.id for u in split.folds[0].test}
    if change:
        split = altered(split)
        real_frames = epr.logmel_frames

        def frames(utterances, *args, **kwargs):
            out = real_frames(utterances, *args, **kwargs)
            rng = np.random.default_rng(0)
            return [rng.normal(size=m.shape).astype(m.dtype) if u.id in ids else m
                    for u, m in zip(utterances, out)]

        monkeypatch.setattr(epr, "logmel_frames", frames)
    spy = Spy(monkeypatch)
    epr.fit(config, split, ListReporter())
    monkeypatch.undo()
    mine = [n for n in spy.networks if n["job"].fold == 0]
    forests = [f for i, f in enumerate(spy.forests) if (i // 2) % len(split.folds) == 0]
    return mine, forests


@pytest.mark.parametrize("protocol", ["nested", "paper"])
def test_nested_keeps_test_labels_and_audio_out_of_every_training_target(smoke, protocol,
                                                                         monkeypatch):
    """Under nested, relabelling fold 0's test utterances and replacing their audio changes
    nothing any network or forest of fold 0 learns from (bitwise). Under paper the same change
    reaches fold 0's stage-2 targets through the other folds' networks: the leak nested removes,
    and the proof that this test can see one."""
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, f"epr.protocol={protocol}")
    before, forests_before = fold_zero_inputs(config, split, monkeypatch, change=False)
    after, forests_after = fold_zero_inputs(config, split, monkeypatch, change=True)
    assert len(before) == len(after) and len(forests_before) == len(forests_after)
    same = [bool((a["targets"] == b["targets"]).all()) and (a["labels"] == b["labels"]).all()
            and a["weights"] == b["weights"] for a, b in zip(before, after)]
    same_forests = [np.array_equal(a["x"], b["x"]) and np.array_equal(a["y"], b["y"])
                    for a, b in zip(forests_before, forests_after)]
    if protocol == "nested":
        assert all(same) and all(same_forests)
    else:
        stage1 = len(before) // config.epr.depth
        assert all(same[:stage1])  # stage 1 learns from the labels of its own training folds
        assert not all(same[stage1:]) and not all(same_forests)


def test_hold_out_is_stratified_and_disjoint():
    labels = np.array([0] * 20 + [1] * 10)
    train = np.arange(30)
    fit, val = epr.hold_out(train, labels, 0.1, np.random.default_rng(0))
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 30
    assert sorted(labels[val].tolist()) == [0, 0, 1]


def test_layout_places_every_utterance_once_test_folds_first(smoke):
    _, split = smoke
    at = epr.layout(split)
    assert len({u.id for u in at.utterances}) == len(at.utterances)
    assert [at.position[u.id] for u in at.utterances] == list(range(len(at.utterances)))
    for k, fold in enumerate(split.folds):
        assert [at.utterances[i].id for i in at.tests[k]] == [u.id for u in fold.test]
        assert [at.utterances[i].id for i in at.trains[k]] == [u.id for u in fold.train]
        assert (at.home[at.tests[k]] == k).all()
        assert not np.isin(at.tests[k], at.trains[k]).any()
    assert [split.classes[c] for c in at.labels] == [u.label for u in at.utterances]
    # A subset of folds: training utterances no test fold holds come last, at home -1.
    first = epr.layout(dataclasses.replace(split, folds=split.folds[:1]))
    assert (first.home[:len(first.tests[0])] == 0).all() and (first.home[len(first.tests[0]):] == -1).all()


def test_early_stopping_share_is_the_fold_networks_at_every_stage(smoke):
    config, split = smoke
    at = epr.layout(split)
    fit, val = epr.early_stopping_share(config, split.folds[0].index, at.trains[0], at.labels)
    again = epr.early_stopping_share(config, split.folds[0].index, at.trains[0], at.labels)
    assert np.array_equal(fit, again[0]) and np.array_equal(val, again[1])
    assert sorted([*fit, *val]) == sorted(at.trains[0]) and len(val)
    inner = epr.early_stopping_share(config, split.folds[0].index, at.trains[0], at.labels, 0)
    assert not np.array_equal(val, inner[1])  # an inner part's network draws its own share


@pytest.mark.parametrize("protocol", ["nested", "in_sample"])
def test_a_subset_of_folds_scores_only_its_test_utterances(smoke, protocol):
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, f"epr.protocol={protocol}")
    first = dataclasses.replace(split, folds=split.folds[:1])
    result = epr.fit(config, first, ListReporter())
    assert sorted(r["id"] for r in result.table) == sorted(u.id for u in split.folds[0].test)


def test_paper_refuses_folds_that_leave_utterances_out(smoke):
    config, split = smoke
    with pytest.raises(ConfigError, match="protocol=paper .* cover the corpus"):
        epr.fit(config, dataclasses.replace(split, folds=split.folds[:1]), ListReporter())


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


@pytest.mark.parametrize("monitor", ["loss", "accuracy"])
def test_early_stopping_keeps_the_best_epoch_of_what_it_monitors(smoke, monitor):
    """epr.monitor=loss: the lowest validation loss against the refined targets; accuracy: the
    highest segment accuracy against the utterance label (the best epoch's weights are kept)."""
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, "epr.max_epochs=4", "epr.patience=4",
                          "epr.lr=0.01", f"epr.monitor={monitor}")
    utterances = [u for f in split.folds for u in f.test]
    bank = epr.bank_from_frames(epr.logmel_frames(utterances, config), config.audio)
    labels = np.array([split.classes.index(u.label) for u in utterances])[bank.owner]
    segs = np.arange(len(labels))
    fit_segs, val_segs = segs[segs % 5 != 0], segs[segs % 5 == 0]
    # The validation segments (neighbours of training ones) are scored against the next class's
    # label: the better the network fits its own, the worse both monitors get, so the best epoch
    # is an early one and keeping its weights is visible (with true labels the curves' turn
    # depended on the CPU's arithmetic: on some the last of 4 epochs was best).
    labels[val_segs] = (labels[val_segs] + 1) % len(split.classes)
    targets = epr.F.one_hot(epr.torch.from_numpy(labels), len(split.classes)).float()
    network = epr.new_network(config, len(split.classes), 0)
    rows, states = [], []  # each epoch's metrics and a copy of its checkpoint state
    epr.train_network(network, bank, fit_segs, val_segs, targets, labels,
                      epr.normaliser(bank, fit_segs), config,
                      lambda epoch, metrics, state: (rows.append(metrics),
                                                     states.append(copy.deepcopy(state()))))
    watched = [r["val_loss"] if monitor == "loss" else -r["val_segment_acc"] for r in rows]
    best = int(np.argmin(watched))
    assert len(rows) == 4 and states[-1]["best"] == pytest.approx(watched[best])
    assert best < 3, "the last epoch was best: the kept weights would not tell the monitors apart"
    for key, value in states[best]["model"].items():  # the weights it ended with: that epoch's
        assert epr.torch.equal(network.state_dict()[key], value)


@pytest.mark.parametrize("protocol", ["paper", "nested"])
def test_a_resumed_fit_reports_what_an_uninterrupted_one_would(smoke, protocol):
    """The checkpoint cursor (stage, network, epoch): resumed from inside a stage-2 network and
    from the end of stage 1 (forests done), fit reports the remaining rows and the same result."""
    from emoref.runtime import LOCAL
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, f"epr.protocol={protocol}",
                          "epr.max_epochs=2", "epr.patience=5")
    states = []

    def keep(epoch, metrics, extras, state=None):
        whole.rows.append({"epoch": epoch, **metrics})
        states.append(copy.deepcopy(state()))

    whole = ListReporter()
    expected = epr.fit(config, split, keep)
    stage_end = max(i for i, r in enumerate(whole.rows) if "fold_wa" in r and r["stage"] == 1)
    inside = next(i for i, r in enumerate(whole.rows) if r["stage"] == 2 and "stage_epoch" in r)
    for at in (stage_end, inside):
        again = ListReporter()
        result = epr.fit(config, split, again, dataclasses.replace(LOCAL, resume=states[at]))
        assert again.rows == whole.rows[at + 1:]
        assert result.final == expected.final and result.table == expected.table


def test_inner_parts_cut_the_training_folds_as_the_outer_folds_were_cut():
    labels = np.array([0] * 12 + [1] * 6)
    speakers = np.array([f"s{i % 6}" for i in range(18)])
    train = np.arange(18)
    by_label = epr.inner_parts(train, labels, speakers, 3, "random", np.random.default_rng(0))
    assert sorted(np.concatenate(by_label).tolist()) == list(range(18))
    assert [np.bincount(labels[p], minlength=2).tolist() for p in by_label] == [[4, 2]] * 3
    by_speaker = epr.inner_parts(train, labels, speakers, 3, "speaker", np.random.default_rng(0))
    assert sorted(np.concatenate(by_speaker).tolist()) == list(range(18))
    owners = [set(speakers[p]) for p in by_speaker]
    assert all(len(o) == 2 for o in owners) and len(set().union(*owners)) == 6  # disjoint
    with pytest.raises(ConfigError, match="inner_folds=7 needs at least 7 speakers"):
        epr.inner_parts(train, labels, speakers, 7, "speaker", np.random.default_rng(0))


def test_figure_utterances_are_one_per_class_after_the_one_asked_for(smoke):
    config, split = smoke
    asked = split.folds[1].test[0]
    chosen = epr.figure_ids(split, smoke_config(config.corpus.cache_dir,
                                                f"epr.figure_utterance={asked.id}"))
    labels = {u.id: u.label for f in split.folds for u in f.test}
    assert chosen[0] == asked.id and len({labels[u] for u in chosen}) == len(chosen) == 3
    with pytest.raises(ConfigError, match="epr.figure_utterance=nobody"):
        epr.figure_ids(split, smoke_config(config.corpus.cache_dir, "epr.figure_utterance=nobody"))


# ----------------------------------------------------------------------------------------------------
# The stage-1 store (epr.reuse_stage1)
# ----------------------------------------------------------------------------------------------------

def stored_fit(cache, split, monkeypatch, *extra):
    """One fit with the store in `cache`: (result, reporter rows, how many networks it trained)."""
    config = smoke_config(cache, "epr.reuse_stage1=true", *extra)
    trained, real = [], epr.train_network
    with monkeypatch.context() as patch:
        patch.setattr(epr, "train_network", lambda *a, **k: (trained.append(1), real(*a, **k)))
        reporter = ListReporter()
        result = epr.fit(config, split, reporter)
    return result, reporter.rows, len(trained)


@pytest.mark.parametrize("protocol", ["in_sample", "nested"])
def test_a_second_row_of_a_seed_loads_stage_one_and_reports_what_training_it_would(
        smoke, protocol, tmp_path, monkeypatch):
    """pEPR then sEPR of one seed: the second trains no stage-1 network, yet its rows (curves
    included), stage tables and predictions are those of training every network."""
    config, split = smoke
    per_stage = len(split.folds) * (config.epr.inner_folds + 1 if protocol == "nested" else 1)
    first, _, trained = stored_fit(tmp_path, split, monkeypatch, f"epr.protocol={protocol}")
    assert trained == 2 * per_stage and first.final["reused_stage1_networks"] == 0
    assert len(list((tmp_path / "networks" / "epr-stage1").glob("*.pt"))) == per_stage
    second, rows, trained = stored_fit(tmp_path, split, monkeypatch, f"epr.protocol={protocol}",
                                       "epr.labels=soft")
    assert trained == per_stage and second.final["reused_stage1_networks"] == per_stage
    fresh = ListReporter()
    expected = epr.fit(smoke_config(config.corpus.cache_dir, f"epr.protocol={protocol}",
                                    "epr.labels=soft"), split, fresh)
    def bare(metrics):  # all but the count that tells the two runs apart
        return {k: v for k, v in metrics.items() if k != "reused_stage1_networks"}

    assert [bare(r) for r in rows] == [bare(r) for r in fresh.rows]
    assert bare(second.final) == bare(expected.final) and second.table == expected.table


def test_a_stage_one_network_resumed_mid_training_is_stored_whole(smoke, tmp_path, monkeypatch):
    """A run stopped inside a stage-1 network and resumed from its checkpoint stores that
    network with every epoch's metrics, so the seed's next row loads it and reports what an
    uninterrupted run would."""
    from emoref.runtime import LOCAL
    _, split = smoke
    extra = ("epr.depth=1", "epr.max_epochs=2", "epr.patience=5")
    config = smoke_config(tmp_path, "epr.reuse_stage1=true", *extra)
    rows, states = [], []

    def keep(epoch, metrics, extras, state=None):
        rows.append(metrics)
        states.append(copy.deepcopy(state()))

    epr.fit(config, split, keep)
    store = tmp_path / "networks" / "epr-stage1"
    assert len(list(store.glob("*.pt"))) == len(split.folds)
    second = split.folds[1].index  # after the first epoch of the second fold's network
    inside = next(i for i, r in enumerate(rows)
                  if r.get("fold") == second and r.get("stage_epoch") == 0)
    for stored in store.glob("*.pt"):
        stored.unlink()
    epr.fit(config, split, ListReporter(), dataclasses.replace(LOCAL, resume=states[inside]))
    # The first fold's network finished before the checkpoint (not stored by the resumed run);
    # the resumed one and the rest are stored.
    assert len(list(store.glob("*.pt"))) == len(split.folds) - 1
    again, replayed, trained = stored_fit(tmp_path, split, monkeypatch, *extra)
    assert trained == 1 and again.final["reused_stage1_networks"] == len(split.folds) - 1
    def bare(metrics):  # all but the step and the count that tells the runs apart
        return {k: v for k, v in metrics.items() if k not in ("epoch", "reused_stage1_networks")}

    assert [bare(r) for r in replayed] == [bare(r) for r in rows]


@pytest.mark.parametrize("change", ["seed=1", "epr.lr=0.002", "epr.monitor=accuracy",
                                    "audio.n_mels=32"])
def test_a_setting_stage_one_reads_keys_its_networks_apart(smoke, change, tmp_path, monkeypatch):
    config, split = smoke
    stored_fit(tmp_path, split, monkeypatch, "epr.depth=1")
    result, _, trained = stored_fit(tmp_path, split, monkeypatch, "epr.depth=1", change)
    assert trained == len(split.folds) and result.final["reused_stage1_networks"] == 0


def test_an_unreadable_stored_network_is_named(smoke, tmp_path, monkeypatch):
    config, split = smoke
    stored_fit(tmp_path, split, monkeypatch, "epr.depth=1")
    victim = sorted((tmp_path / "networks" / "epr-stage1").glob("*.pt"))[0]
    victim.write_bytes(b"not a network")
    with pytest.raises(OSError, match=f"{victim.name}: unreadable stored stage-1 network"):
        stored_fit(tmp_path, split, monkeypatch, "epr.depth=1")


@pytest.mark.parametrize("protocol", ["paper", "nested"])
def test_fold_network_forests_fit_what_in_sample_forests_fit_and_teach_nothing_new(
        smoke, protocol, monkeypatch):
    """epr.forest_fit=fold_network changes only what each fold's forests are fitted on: at stage 1
    (the same networks under every protocol) they get, bit for bit, the features in_sample's
    forests get (the fold network's own profiles of its training utterances), so they decide
    stage 1 as in_sample does; every network's targets stay the protocol's, and no forest is
    fitted on an utterance it scores or on its fold's test utterances."""
    config, split = smoke
    runs = {}
    for name, extra in (("default", []), ("fold_network", ["epr.forest_fit=fold_network"]),
                        ("in_sample", [])):
        with monkeypatch.context() as patch:
            spy = Spy(patch)
            chosen = "in_sample" if name == "in_sample" else protocol
            result = epr.fit(smoke_config(config.corpus.cache_dir, f"epr.protocol={chosen}",
                                          *extra), split, ListReporter())
        runs[name] = spy, result
    (base, _), (own, own_result), (inside, inside_result) = (
        runs["default"], runs["fold_network"], runs["in_sample"])
    stage1 = 2 * len(split.folds)  # each fold's test forest and dev forest
    for a, b in zip(own.forests[:stage1], inside.forests[:stage1]):
        assert a["fit"] == b["fit"] and np.array_equal(a["x"], b["x"]) and np.array_equal(
            a["y"], b["y"])
    for key in ("stage1_wa", "stage1_ua", "stage1_dev_ua"):
        assert own_result.final[key] == inside_result.final[key]
    assert not all(np.array_equal(a["x"], b["x"])
                   for a, b in zip(own.forests[:stage1], base.forests[:stage1]))
    for a, b in zip(own.networks, base.networks):  # the protocol's targets teach every stage
        assert bool((a["targets"] == b["targets"]).all()) and a["weights"] == b["weights"]
    _, tests = positions(split)
    for i, forest in enumerate(own.forests):
        assert not forest["fit"] & forest["score"]
        assert not forest["fit"] & tests[(i // 2) % len(split.folds)]


def test_fold_network_forests_resume_where_they_stopped(smoke):
    """The fold networks' own profiles are part of the checkpoint: resumed inside stage 2, the
    fit reports what an uninterrupted one does."""
    from emoref.runtime import LOCAL
    config, split = smoke
    config = smoke_config(config.corpus.cache_dir, "epr.forest_fit=fold_network",
                          "epr.max_epochs=2", "epr.patience=5")
    states, whole = [], ListReporter()

    def keep(epoch, metrics, extras, state=None):
        whole.rows.append({"epoch": epoch, **metrics})
        states.append(copy.deepcopy(state()))

    expected = epr.fit(config, split, keep)
    inside = next(i for i, r in enumerate(whole.rows) if r["stage"] == 2 and "stage_epoch" in r
                  and r["fold"] == split.folds[-1].index)
    again = ListReporter()
    result = epr.fit(config, split, again, dataclasses.replace(LOCAL, resume=states[inside]))
    assert again.rows == whole.rows[inside + 1:] and result.final == expected.final
