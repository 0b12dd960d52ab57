"""IEMOCAP's ambiguity tiers: the loader keeps every annotation the ranking reads (evaluators'
label sets, the actors' own ratings apart, dimensional ratings), the ranked score orders rule by
rule as stated, and the split says what decided it. On a fabricated release in the format of the
real EmoEvaluation files."""

from pathlib import Path

import pytest

from emoref.config import build_config
from emoref.data.corpora import load_manifest, parse_emo_evaluation
from emoref.data.manifest import DataError, Utterance
from emoref.data.splits import ambiguity_score, make_split, members_hash

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def block(utt: str, code: str, lines: list[str]) -> str:
    return (f"[6.2901 - 8.2357]\t{utt}\t{code}\t[2.5000, 3.0000, 3.5000]\n" + "\n".join(lines)
            + "\n\n")


# Per class, six utterances from least to most ambiguous under the default rules (majority,
# self_rating, dilution, spread): unanimous and consistent dimensions; unanimous with spread-out
# dimensions; unanimous with an agreeing actor; unanimous with a disagreeing actor; two of three
# evaluators; two of three with one of the two naming a second category.
def utterances(name: str, other: str, prefix: str) -> list[tuple[str, str, list[str]]]:
    return [
        (f"{prefix}0", [f"C-E2:\t{name};\t()", f"C-E3:\t{name};\t()", f"C-E4:\t{name};\t()",
                        "A-E3:\tval 2; act 4; dom  4;\t()", "A-E4:\tval 2; act 4; dom  4;\t()"]),
        (f"{prefix}1", [f"C-E2:\t{name};\t()", f"C-E3:\t{name};\t()", f"C-E4:\t{name};\t()",
                        "A-E3:\tval 1; act 4; dom  4;\t()", "A-E4:\tval 5; act 4; dom  4;\t()",
                        "A-F3:\tval 6; act 6; dom ;\t()"]),                  # malformed
        (f"{prefix}2", [f"C-E2:\t{name};\t()", f"C-E3:\t{name};\t()", f"C-E4:\t{name};\t()",
                        f"C-F1:\t{name};\t(it was me)"]),
        (f"{prefix}3", [f"C-E2:\t{name};\t()", f"C-E3:\t{name};\t()", f"C-E4:\t{name};\t()",
                        f"C-M1:\t{other};\t()"]),
        (f"{prefix}4", [f"C-E1:\t{name};\t()", f"C-E2:\t{name};\t()",
                        "C-E3:\tOther:annoyed, maybe bored;\t(a comment)"]),
        (f"{prefix}5", [f"C-E1:\tFrustration; {name};\t()", f"C-E2:\t{name};\t()",
                        "C-E3:\tNeutral;\t()"]),
    ]


@pytest.fixture
def release(tmp_path: Path, tone) -> Path:
    """Session1 with one dialog: six anger, six sadness, one undecided (xxx), one frustration."""
    root = tmp_path / "IEMOCAP_full_release"
    dialog = "Ses01F_impro01"
    text = HEADER
    ids = []
    for code, name, other, letter in (("ang", "Anger", "Sadness", "F"),
                                      ("sad", "Sadness", "Anger", "M")):
        for suffix, lines in utterances(name, other, f"{dialog}_{letter}0{code[0]}"):
            ids.append(suffix)
            text += block(suffix, code, lines)
    text += block(f"{dialog}_F0x0", "xxx", ["C-E2:\tAnger;\t()", "C-E3:\tSadness;\t()",
                                            "C-E4:\tNeutral;\t()"])
    text += block(f"{dialog}_F0f0", "fru", ["C-E2:\tFrustration;\t()", "C-E3:\tFrustration;\t()",
                                            "C-E4:\tAnger;\t()"])
    evaluation = root / "Session1" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text(text)
    for utt in ids + [f"{dialog}_F0x0", f"{dialog}_F0f0"]:
        tone(root / "Session1" / "sentences" / "wav" / dialog / f"{utt}.wav", seconds=0.5)
    return root


def config(root: Path, *extra: str):
    return build_config("smoke", [f"corpus.name=iemocap", f"corpus.root={root}",
                                  "corpus.classes=anger,sadness", "split.d1_size=4",
                                  "split.d2_size=4", "split.d3_size=4", "split.dev_fraction=0",
                                  *extra], method="ipr")


def test_the_loader_keeps_every_annotation_the_ranking_reads(release):
    path = next(release.glob("Session1/dialog/EmoEvaluation/*.txt"))
    blocks = {b.utterance: b for b in parse_emo_evaluation(path, {}, False)}
    multi = blocks["Ses01F_impro01_F0a5"]
    assert multi.evaluators == [("anger", "frustration"), ("anger",), ("neutral",)]  # trailing ;
    assert blocks["Ses01F_impro01_F0a4"].evaluators[2] == ("other",)  # "Other:" with a comment
    assert blocks["Ses01F_impro01_F0a2"].actors == [("anger",)] and blocks[
        "Ses01F_impro01_F0a2"].raters == 3  # the actor's own rating is kept apart, not counted
    assert blocks["Ses01F_impro01_F0a3"].actors == [("sadness",)]
    assert blocks["Ses01F_impro01_F0a1"].dimensions == [(1.0, 4.0, 4.0), (5.0, 4.0, 4.0)]
    assert blocks["Ses01F_impro01_F0a1"].malformed_dimensions == 1
    assert blocks["Ses01F_impro01_F0x0"].label == "undecided"
    counted = parse_emo_evaluation(path, {}, True)  # corpus.include_self_ratings=true
    assert {b.utterance: b.raters for b in counted}["Ses01F_impro01_F0a2"] == 4
    manifest = load_manifest(config(release).corpus)
    first = manifest.by_id()["Ses01F_impro01_F0a5"]
    assert first.evaluator_labels == (("anger", "frustration"), ("anger",), ("neutral",))
    assert len(manifest.utterances) == 12  # undecided and frustration are not in the classes


def test_each_rule_orders_as_it_says():
    def u(**fields) -> Utterance:
        return Utterance(id="x", path="x.wav", speaker="s", label="anger", **fields)
    unanimous = (("anger",),) * 3
    rules = ("majority", "self_rating", "dilution", "spread")
    ordered = [
        u(agreement=1.0, evaluator_labels=unanimous, dimensions=((2, 4, 4), (2, 4, 4))),
        u(agreement=1.0, evaluator_labels=unanimous, dimensions=((1, 4, 4), (5, 4, 4))),
        u(agreement=1.0, evaluator_labels=unanimous, self_labels=(("anger",),)),
        u(agreement=1.0, evaluator_labels=unanimous, self_labels=(("sadness",),)),
        u(agreement=2 / 3, evaluator_labels=(("anger",), ("anger",), ("other",))),
        u(agreement=2 / 3, evaluator_labels=(("anger", "frustration"), ("anger",), ("neutral",))),
    ]
    scores = [ambiguity_score(x, rules) for x in ordered]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert scores[4][2] == pytest.approx(-2 / 3) and scores[5][2] == pytest.approx(-0.5)
    assert scores[1][3] == pytest.approx(2 / 3)  # mean over the three axes of the std (2, 0, 0)
    # The plain reading sees no difference among the unanimous ones: the hash decides them.
    assert len({ambiguity_score(x, ("majority",)) for x in ordered[:4]}) == 1
    one_rater = u(agreement=1.0, evaluator_labels=(("anger",),), dimensions=((3, 3, 3),))
    assert ambiguity_score(one_rater, rules) == (-1.0, 0.0, -1.0, 0.0)
    entropy = ambiguity_score(u(agreement=0.5, votes=(("anger", 1), ("sadness", 1))), ("entropy",))
    assert entropy[0] == pytest.approx(0.693147, abs=1e-6)


def test_the_tiers_follow_the_rules_and_say_what_the_hash_decided(release):
    split = make_split(load_manifest(config(release).corpus), config(release).split)
    tier = lambda part: sorted(u.id[-2:] for u in part)
    assert split.rules == ("majority", "self_rating", "dilution", "spread")  # IEMOCAP's default
    assert tier(split.d1) == ["a0", "a1", "s0", "s1"]   # unanimous, no actor's rating
    assert tier(split.d2) == ["a2", "a3", "s2", "s3"]   # unanimous, an actor rated it
    assert tier(split.d3) == ["a4", "a5", "s4", "s5"]   # two of three evaluators
    assert dict(split.tiebreak) == {"D1": 0, "D2": 0, "D3": 0}
    plain = make_split(load_manifest(config(release).corpus),
                       config(release, "split.ambiguity=majority", "split.seed=1").split)
    # Majority share alone: the eight unanimous ones tie; the hash deals them to D1 and D2.
    assert dict(plain.tiebreak) == {"D1": 4, "D2": 4, "D3": 0}
    assert tier(plain.d3) == tier(split.d3)
    # The hash names the rules, except for the plain reading (recorded splits keep theirs).
    assert plain.hash == members_hash([("d1", plain.d1), ("d2", plain.d2), ("dev", plain.dev),
                                       ("d3", plain.d3)])
    assert split.hash != members_hash([("d1", split.d1), ("d2", split.d2), ("dev", split.dev),
                                       ("d3", split.d3)])


def test_a_class_balanced_d3(release):
    base = config(release, "split.d1_size=2", "split.d2_size=6", "split.d3_size=4",
                  "split.d3_balanced=true")
    split = make_split(load_manifest(base.corpus), base.split)
    assert sorted(u.id[-2:] for u in split.d3) == ["a4", "a5", "s4", "s5"]
    assert {u.label for u in split.d3} == {"anger", "sadness"}


def test_runner_data_prints_the_rules_the_tiers_and_the_tiebreak(release, capsys):
    from runner import data
    data.main(["iemocap", f"corpus.root={release}", "corpus.classes=anger,sadness",
               "split.d1_size=4", "split.d2_size=4", "split.d3_size=4", "split.dev_fraction=0"])
    out = capsys.readouterr().out
    assert ("ranked from least to most ambiguous by: majority, self_rating, dilution, spread, "
            "then a seeded hash") in out
    assert "decided by the hash (a non-member with the same score could have taken their " \
           "place): D1 0 of 4, D2 0 of 4, D3 0 of 4" in out
    assert "dimensional rating lines left out as malformed: 2" in out  # one per class
    assert "split hash:" in out


def test_a_rule_the_corpus_has_no_data_for_is_named(release, tmp_path):
    rows = ["path,label,speaker,agreement"] + [
        f"{tmp_path / f'{i}.wav'},{'ab'[i % 2]},s{i % 3},{0.5 + i / 40}" for i in range(12)]
    audio = next(release.glob("Session1/sentences/wav/*/*.wav")).read_bytes()
    for i in range(12):
        (tmp_path / f"{i}.wav").write_bytes(audio)
    manifest_csv = tmp_path / "m.csv"
    manifest_csv.write_text("\n".join(rows) + "\n")
    csv = build_config("smoke", ["corpus.name=csv", f"corpus.root={manifest_csv}",
                                 "split.by=sizes", "split.d1_size=4", "split.d2_size=4",
                                 "split.d3_size=4", "split.ambiguity=majority,spread"])
    with pytest.raises(DataError) as err:
        make_split(load_manifest(csv.corpus), csv.split)
    assert str(err.value).startswith("split.ambiguity: the rule 'spread' needs dimensional "
                                     "ratings (IEMOCAP's A- lines), which the csv corpus does "
                                     "not have")


def test_sizes_the_votes_cannot_fill_say_what_there_is(release):
    too_many = config(release, "split.d1_size=10", "split.d2_size=10", "split.d3_size=10")
    with pytest.raises(DataError, match=r"exceed the 12 utterances \(by agreement: 1.00: 8, "
                                        r"0.67: 4\)"):
        make_split(load_manifest(too_many.corpus), too_many.split)


def test_the_dev_part_can_be_d2s_most_ambiguous(release):
    base = config(release, "split.d1_size=2", "split.d2_size=6", "split.d3_size=4",
                  "split.dev_fraction=0.34", "split.dev_from=ambiguous")
    split = make_split(load_manifest(base.corpus), base.split)
    # D2 is a1/s1 (spread-out dimensions), a2/s2 (agreeing actor), a3/s3 (disagreeing actor):
    # one per class goes to dev, the most ambiguous, next to D3.
    assert sorted(u.id[-2:] for u in split.dev) == ["a3", "s3"]
    drawn = make_split(load_manifest(base.corpus),
                       config(release, "split.d1_size=2", "split.d2_size=6", "split.d3_size=4",
                              "split.dev_fraction=0.34").split)
    assert len(drawn.dev) == 2 and drawn.hash != split.hash


def test_iemocap_votes_reach_the_distribution_metrics(release):
    """Each utterance's folded votes become a distribution over the task's classes: the
    evaluators only (the actors' own ratings are counted with corpus.include_self_ratings),
    votes outside the task counted, and the metrics take them."""
    import numpy as np
    from emoref.metrics import js_divergence, kl_divergence, vote_distribution
    manifest = load_manifest(config(release).corpus)
    by_id = manifest.by_id()
    p, outside = vote_distribution(by_id["Ses01F_impro01_F0a5"].votes, manifest.classes)
    assert p.tolist() == [1.0, 0.0] and outside == 2   # frustration and neutral are not tasks
    p, outside = vote_distribution(by_id["Ses01F_impro01_F0a3"].votes, manifest.classes)
    assert p.tolist() == [1.0, 0.0] and outside == 0   # the actor's "sadness" is not a vote
    counted = load_manifest(config(release, "corpus.include_self_ratings=true").corpus).by_id()
    p, _ = vote_distribution(counted["Ses01F_impro01_F0a3"].votes, manifest.classes)
    assert p.tolist() == pytest.approx([3 / 4, 1 / 4])
    model = np.array([[0.5, 0.5]])
    assert js_divergence(p, model)[0] > 0 and kl_divergence(p, model)[0] > 0
