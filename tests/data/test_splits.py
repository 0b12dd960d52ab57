"""Ambiguity and k-fold splits: deterministic, hashed, stratified, and loud about empty classes."""

import dataclasses

import pytest

from emoref.config import SplitConfig
from emoref.data.manifest import DataError, Manifest, Utterance
from emoref.data.splits import ambiguity_split, kfold_split

CLASSES = ("anger", "happiness", "sadness", "neutral")


def manifest(n_per_class: int = 30, speakers: int = 6) -> Manifest:
    utterances = []
    for c, label in enumerate(CLASSES):
        for i in range(n_per_class):
            utterances.append(Utterance(
                id=f"{label[:3]}{i:03d}", path=f"/x/{label}{i}.wav", speaker=f"s{(i + c) % speakers}",
                label=label, agreement=round(0.3 + 0.7 * ((i * 7 + c) % 10) / 9, 4)))
    return Manifest(corpus="toy", classes=CLASSES, utterances=tuple(utterances))


THRESHOLDS = SplitConfig(d1_min_agreement=0.9, d2_min_agreement=0.5, d3_min_agreement=0.0)


def test_thresholds_partition_and_dev():
    m = manifest()
    split = ambiguity_split(m, THRESHOLDS)
    ids = [u.id for part in (split.d1, split.d2, split.dev, split.d3, split.excluded) for u in part]
    assert sorted(ids) == sorted(u.id for u in m.utterances)  # every utterance exactly once
    assert all(u.agreement >= 0.9 for u in split.d1)
    assert all(0.5 <= u.agreement < 0.9 for u in split.d2 + split.dev)
    assert all(u.agreement < 0.5 for u in split.d3)
    d2_all = len(split.d2) + len(split.dev)
    assert abs(len(split.dev) - 0.1 * d2_all) <= len(CLASSES)  # stratified rounding per class
    assert {u.label for u in split.dev} == set(CLASSES)


def test_sizes_most_agreed_first_and_tie_breaking_is_seeded():
    m = manifest()
    config = SplitConfig(by="sizes", d1_size=20, d2_size=70, d3_size=20, dev_fraction=0.0)
    split = ambiguity_split(m, config)
    assert (len(split.d1), len(split.d2), len(split.d3)) == (20, 70, 20)
    assert min(u.agreement for u in split.d1) >= max(u.agreement for u in split.d2)
    assert min(u.agreement for u in split.d2) >= max(u.agreement for u in split.d3)
    again = ambiguity_split(m, config)
    assert again == split and again.hash == split.hash
    other = ambiguity_split(m, dataclasses.replace(config, seed=1))
    assert other.hash != split.hash  # ties at the band edges are broken differently


def test_hash_is_independent_of_manifest_order():
    m = manifest()
    shuffled = dataclasses.replace(m, utterances=tuple(reversed(m.utterances)))
    assert ambiguity_split(m, THRESHOLDS).hash == ambiguity_split(shuffled, THRESHOLDS).hash


def test_sizes_larger_than_corpus():
    with pytest.raises(DataError, match="exceed the 120 utterances"):
        ambiguity_split(manifest(), SplitConfig(by="sizes", d1_size=100, d2_size=20, d3_size=5))


def test_empty_class_after_split_is_named():
    m = manifest()
    # Make every sadness utterance highly agreed: D3 then has no sadness.
    m = dataclasses.replace(m, utterances=tuple(
        dataclasses.replace(u, agreement=1.0) if u.label == "sadness" else u for u in m.utterances))
    with pytest.raises(DataError, match=r"class\(es\) \['sadness'\] have no utterance in D3"):
        ambiguity_split(m, THRESHOLDS)


def test_missing_agreement_is_explained():
    m = manifest()
    m = dataclasses.replace(m, utterances=(dataclasses.replace(m.utterances[0], agreement=None),
                                           *m.utterances[1:]))
    with pytest.raises(DataError, match="no agreement score.*split.kind=kfold"):
        ambiguity_split(m, THRESHOLDS)


def test_kfold_random_is_stratified_and_covers_everything():
    m = manifest()
    split = kfold_split(m, SplitConfig(kind="kfold", folds=5))
    assert len(split.folds) == 5
    tested = [u.id for f in split.folds for u in f.test]
    assert sorted(tested) == sorted(u.id for u in m.utterances)
    for fold in split.folds:
        assert not {u.id for u in fold.test} & {u.id for u in fold.train}
        counts = m.class_counts(fold.test)
        assert all(n == 6 for n in counts.values())
    assert split.hash == kfold_split(m, SplitConfig(kind="kfold", folds=5)).hash
    assert split.hash != kfold_split(m, SplitConfig(kind="kfold", folds=5, seed=3)).hash


def test_kfold_speaker_independent():
    m = manifest()
    loso = kfold_split(m, SplitConfig(kind="kfold", fold_by="speaker"))
    assert len(loso.folds) == 6
    for fold in loso.folds:
        test_speakers = {u.speaker for u in fold.test}
        assert len(test_speakers) == 1 and not test_speakers & {u.speaker for u in fold.train}
    grouped = kfold_split(m, SplitConfig(kind="kfold", fold_by="speaker", speaker_groups=3))
    assert len(grouped.folds) == 3
    assert sorted(len({u.speaker for u in f.test}) for f in grouped.folds) == [2, 2, 2]
    with pytest.raises(DataError, match="speaker folds need"):
        kfold_split(m, SplitConfig(kind="kfold", fold_by="speaker", speaker_groups=7))


def confounded() -> Manifest:
    """Anger mostly agreed on, sadness mostly not: the thresholds' tiers differ in class mix."""
    utterances = []
    for label, agreements in (("anger", [1.0] * 30 + [0.9] * 8 + [0.8] * 2),
                              ("sadness", [1.0] * 3 + [0.9] * 10 + [0.8] * 17),
                              ("neutral", [1.0] * 10 + [0.9] * 10 + [0.8] * 10)):
        for i, a in enumerate(agreements):
            utterances.append(Utterance(id=f"{label}{i:02d}", path=f"/x/{label}{i}.wav",
                                        speaker=f"s{i % 4}", label=label, agreement=a))
    return Manifest(corpus="toy", classes=("anger", "sadness", "neutral"),
                    utterances=tuple(utterances))


def test_rank_split_keeps_tier_sizes_and_gives_each_tier_the_corpus_class_mix():
    m = confounded()
    config = SplitConfig(dev_fraction=0.0)  # thresholds 1.0 / 0.9 / 0.8
    plain = ambiguity_split(m, config)
    ranked = ambiguity_split(m, dataclasses.replace(config, by="rank"))
    for part in ("d1", "d2", "d3"):
        assert len(getattr(ranked, part)) == len(getattr(plain, part))  # the tier sizes as today
    assert not ranked.excluded  # the tiers take every eligible utterance: none lost to rounding,
    ids = [u.id for part in ("d1", "d2", "d3") for u in getattr(ranked, part)]
    assert len(ids) == len(set(ids)) == len(m.utterances)  # and none in two tiers
    total = {c: sum(u.label == c for u in m.utterances) for c in m.classes}
    for part in ("d1", "d2", "d3"):
        members = getattr(ranked, part)
        for c in m.classes:
            share = len(members) * total[c] / len(m.utterances)
            assert abs(sum(u.label == c for u in members) - share) < 1, (part, c)
    assert sum(u.label == "anger" for u in plain.d1) == 30  # the confound the rank split removes
    for c in m.classes:  # within a class, D1 is at least as agreed as D2, and D2 as D3
        a = [[u.agreement for u in getattr(ranked, p) if u.label == c] for p in ("d1", "d2", "d3")]
        assert min(a[0]) >= max(a[1]) and min(a[1]) >= max(a[2])


def test_rank_split_with_sizes_and_its_hash_differs():
    m = confounded()
    config = SplitConfig(by="rank", d1_size=30, d2_size=30, d3_size=30, dev_fraction=0.0)
    split = ambiguity_split(m, config)
    assert (len(split.d1), len(split.d2), len(split.d3)) == (30, 30, 30)
    assert len(split.excluded) == len(m.utterances) - 90
    assert split.hash != ambiguity_split(m, SplitConfig(dev_fraction=0.0)).hash
