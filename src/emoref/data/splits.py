"""Deterministic, hashed splits: D1/D2/dev/D3 by annotator agreement, and k folds.

Determinism: ties are never broken by file order or Python's hash. Each utterance gets a key
sha256(f"{seed}:{purpose}:{id}"), so the same manifest and split config give the same members on any
machine, and the order does not favour a session or speaker the way sorting by id would.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from emoref.config import SplitConfig
from emoref.data.manifest import DataError, Manifest, Utterance

_EPS = 1e-9  # agreement scores are ratios of small integers; compare thresholds with slack


def tie_key(seed: int, purpose: str, utt_id: str) -> str:
    return hashlib.sha256(f"{seed}:{purpose}:{utt_id}".encode()).hexdigest()


def members_hash(parts: Iterable[tuple[str, Sequence[Utterance]]]) -> str:
    """Stable hash of named parts' member ids (order-free within a part), 16 hex digits."""
    digest = hashlib.sha256()
    for name, utterances in parts:
        digest.update(f"[{name}]".encode())
        for utt_id in sorted(u.id for u in utterances):
            digest.update(utt_id.encode() + b"\n")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class AmbiguitySplit:
    classes: tuple[str, ...]
    d1: tuple[Utterance, ...]  # precise, labelled: trains
    d2: tuple[Utterance, ...]  # ambiguous: trains with labels hidden (except the supervised baseline)
    dev: tuple[Utterance, ...]  # labelled part carved from D2: model selection, the tuning objective
    d3: tuple[Utterance, ...]  # most ambiguous, labelled: test only
    excluded: tuple[Utterance, ...]  # below the lowest threshold, or between size bands
    rules: tuple[str, ...] = ("majority",)  # split.ambiguity: how the utterances were ranked
    votes_from: str = ""  # whose votes gave the agreement, where a corpus has several (CREMA-D)
    # by=sizes / rank: per tier, how many members the seeded hash decided (a non-member with the
    # same score under every rule could have taken their place); () for thresholds
    tiebreak: tuple[tuple[str, int], ...] = ()

    @property
    def hash(self) -> str:
        """The members' hash; it names the ranking rules too, unless they are the plain reading
        (majority share alone), so that a split recorded before the rules existed keeps its hash."""
        named = [] if self.rules == ("majority",) else [(f"rules {','.join(self.rules)}", ())]
        named += [(f"votes {self.votes_from}", ())] if self.votes_from else []
        return members_hash([("d1", self.d1), ("d2", self.d2), ("dev", self.dev), ("d3", self.d3),
                             *named])

    def parts(self) -> dict[str, tuple[Utterance, ...]]:
        return {"d1": self.d1, "d2": self.d2, "dev": self.dev, "d3": self.d3}


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[Utterance, ...]
    test: tuple[Utterance, ...]


@dataclass(frozen=True)
class KFoldSplit:
    classes: tuple[str, ...]
    folds: tuple[Fold, ...]
    by: str  # random | speaker

    @property
    def hash(self) -> str:
        return members_hash([(f"fold{f.index}", f.test) for f in self.folds])


# ----------------------------------------------------------------------------------------------------
# The ambiguity score (split.ambiguity): each rule maps an utterance to a number, lower = less
# ambiguous; an utterance's score is the tuple of its rules' numbers, compared rule by rule.
# ----------------------------------------------------------------------------------------------------

def _majority(u: Utterance) -> float:
    """The evaluators' majority share (the corpus's agreement score), higher = more consensus."""
    return -round(u.agreement, 9)


def _self_rating(u: Utterance) -> float:
    """No actor rating (0) < actors' own ratings that all name the label (1) < one that does not
    (2): an actor disagreeing with the evaluators is variability in the assessments."""
    if not u.self_labels:
        return 0.0
    return 1.0 if all(u.label in labels for labels in u.self_labels) else 2.0


def _dilution(u: Utterance) -> float:
    """The label's share when each evaluator splits one vote evenly over the labels they named:
    a majority made of "Frustration; Anger;" answers is weaker than one of "Anger;" answers."""
    if not u.evaluator_labels:
        return 0.0
    mass = sum(u.label in labels and 1 / len(labels) for labels in u.evaluator_labels)
    return -round(mass / len(u.evaluator_labels), 9)


def _entropy(u: Utterance) -> float:
    """The entropy (nats) of the vote distribution over every label named."""
    total = sum(n for _, n in u.votes)
    return round(-sum(n / total * math.log(n / total) for _, n in u.votes if n), 9) if total \
        else 0.0


def _spread(u: Utterance) -> float:
    """The mean over valence, activation and dominance of the annotators' standard deviation."""
    if len(u.dimensions) < 2:
        return 0.0
    return round(sum(statistics.pstdev(axis) for axis in zip(*u.dimensions)) / 3, 9)


# rule -> (its number, what it needs, and whether a manifest has it)
SCORE_RULES: dict[str, tuple[Callable[[Utterance], float], str, Callable[[Utterance], bool]]] = {
    "majority": (_majority, "an agreement score", lambda u: u.agreement is not None),
    "self_rating": (_self_rating, "per-rater annotations (IEMOCAP's C-E, C-F and C-M lines)",
                    lambda u: bool(u.evaluator_labels)),
    "dilution": (_dilution, "each evaluator's categories (IEMOCAP's C-E lines)",
                 lambda u: bool(u.evaluator_labels)),
    "entropy": (_entropy, "rater votes", lambda u: bool(u.votes)),
    "spread": (_spread, "dimensional ratings (IEMOCAP's A- lines)", lambda u: bool(u.dimensions)),
}


def check_rules(manifest: Manifest, rules: Sequence[str]) -> None:
    """DataError naming the rule and the corpus when a rule needs data no utterance has."""
    for rule in rules:
        _, needs, has = SCORE_RULES[rule]
        if not any(has(u) for u in manifest.utterances):
            usable = [r for r, (_, _, h) in SCORE_RULES.items()
                      if any(h(u) for u in manifest.utterances)]
            raise DataError(f"split.ambiguity: the rule {rule!r} needs {needs}, which the "
                            f"{manifest.corpus} corpus does not have; its rules: {usable}")


def ambiguity_score(u: Utterance, rules: Sequence[str]) -> tuple[float, ...]:
    return tuple(SCORE_RULES[rule][0](u) for rule in rules)


def decided_by_hash(tiers: dict[str, list[Utterance]], eligible: Sequence[Utterance],
                    score: dict[str, tuple[float, ...]], by_class: bool) -> tuple[tuple[str, int], ...]:
    """Per tier, its members whose place a non-member of the same score (and class, when tiers
    are filled class by class) could have taken: the seeded hash chose between them."""
    out = []
    for name, members in tiers.items():
        inside = {u.id for u in members}
        outside = Counter((score[u.id], u.label if by_class else "") for u in eligible
                          if u.id not in inside)
        out.append((name, sum(outside[(score[u.id], u.label if by_class else "")] > 0
                              for u in members)))
    return tuple(out)


def ambiguity_split(manifest: Manifest, config: SplitConfig) -> AmbiguitySplit:
    """D1/D2/D3 by agreement thresholds or target sizes, and a stratified dev part of D2."""
    missing = [u for u in manifest.utterances if u.agreement is None]
    if missing:
        raise DataError(f"{manifest.corpus}: {len(missing)} utterances have no agreement score "
                        f"(e.g. {missing[0].path}); the ambiguity split needs rater agreement. Use "
                        f"split.kind=kfold, or a CSV manifest with an agreement column")
    rules = tuple(config.ambiguity)
    check_rules(manifest, rules)
    key = {u.id: tie_key(config.seed, "rank", u.id) for u in manifest.utterances}
    score = {u.id: ambiguity_score(u, rules) for u in manifest.utterances}
    ranked = sorted(manifest.utterances, key=lambda u: (score[u.id], key[u.id]))
    tiebreak: tuple[tuple[str, int], ...] = ()
    if config.by == "thresholds":
        d1 = [u for u in ranked if u.agreement >= config.d1_min_agreement - _EPS]
        d2 = [u for u in ranked if config.d2_min_agreement - _EPS <= u.agreement
              < config.d1_min_agreement - _EPS]
        d3 = [u for u in ranked if config.d3_min_agreement - _EPS <= u.agreement
              < config.d2_min_agreement - _EPS]
    elif config.by == "rank":
        d1, d2, d3 = ranked_within_classes(manifest, config, ranked)
        tiebreak = decided_by_hash({"D1": d1, "D2": d2, "D3": d3}, ranked, score, True)
    else:
        total = config.d1_size + config.d2_size + config.d3_size
        if total > len(ranked):
            levels = Counter(round(u.agreement, 2) for u in ranked)
            raise DataError(f"{manifest.corpus}: split sizes {config.d1_size}+{config.d2_size}+"
                            f"{config.d3_size} = {total} exceed the {len(ranked)} utterances "
                            f"(by agreement: " + ", ".join(f"{a:.2f}: {n}" for a, n in
                                                           sorted(levels.items(), reverse=True))
                            + ")")
        if config.d3_balanced:  # D3: each class's most ambiguous, in equal numbers
            quota = apportion({c: 1 for c in manifest.classes}, config.d3_size,
                              len(manifest.classes))
            d3 = [u for c in manifest.classes
                  for u in [v for v in ranked if v.label == c][::-1][:quota[c]]]
            short = [c for c in manifest.classes if sum(u.label == c for u in d3) < quota[c]]
            if short:
                raise DataError(f"{manifest.corpus}: split.d3_balanced: class(es) {short} have "
                                f"fewer than {min(quota.values())} utterances for D3")
            rest = [u for u in ranked if u.id not in {v.id for v in d3}]
        else:
            d3 = ranked[len(ranked) - config.d3_size:]
            rest = ranked[:len(ranked) - config.d3_size]
        d1 = rest[:config.d1_size]
        d2 = rest[config.d1_size:config.d1_size + config.d2_size]
        tiebreak = (decided_by_hash({"D1": d1, "D2": d2}, ranked, score, False) +
                    decided_by_hash({"D3": d3}, ranked, score, config.d3_balanced))
    chosen = {u.id for u in (*d1, *d2, *d3)}
    # Every rule above must deal each utterance to one tier at most: one in D2 (or dev) and D3
    # would train on, or select by, a test utterance.
    assert len(chosen) == len(d1) + len(d2) + len(d3), "an utterance was dealt to two tiers"
    excluded = [u for u in ranked if u.id not in chosen]

    # Dev: per class, round(dev_fraction * n) D2 members: the first in seeded hash order
    # (dev_from=random), or the most ambiguous by the split's ranking (dev_from=ambiguous).
    dev_ids: set[str] = set()
    for label in manifest.classes:
        if config.dev_from == "ambiguous":
            members = sorted((u for u in d2 if u.label == label),
                             key=lambda u: (score[u.id], key[u.id]), reverse=True)
        else:
            members = sorted((u for u in d2 if u.label == label),
                             key=lambda u: tie_key(config.seed, "dev", u.id))
        dev_ids.update(u.id for u in members[:round(config.dev_fraction * len(members))])
    dev = [u for u in d2 if u.id in dev_ids]
    d2 = [u for u in d2 if u.id not in dev_ids]

    for name, part in (("D1", d1), ("D3", d3)):
        counts = manifest.class_counts(part)
        empty = [c for c, n in counts.items() if n == 0]
        if empty:
            raise DataError(f"{manifest.corpus}: class(es) {empty} have no utterance in {name} "
                            f"(counts {counts}); adjust the split thresholds/sizes or "
                            f"corpus.classes")
    if not d2:
        raise DataError(f"{manifest.corpus}: D2 is empty; adjust split.d2_min_agreement or sizes")
    order = {u.id: i for i, u in enumerate(manifest.utterances)}  # keep corpus order inside parts

    def ordered(part: list[Utterance]) -> tuple[Utterance, ...]:
        return tuple(sorted(part, key=lambda u: order[u.id]))

    return AmbiguitySplit(classes=manifest.classes, d1=ordered(d1), d2=ordered(d2), dev=ordered(dev),
                          d3=ordered(d3), excluded=ordered(excluded), rules=rules,
                          votes_from=manifest.votes_from, tiebreak=tiebreak)


def ranked_within_classes(manifest: Manifest, config: SplitConfig, ranked: list[Utterance]
                          ) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
    """split.by=rank: the tier sizes n1, n2, n3 of the thresholds (or d*_size when all three are
    set), filled class by class. Of the N utterances taking part, class c (n_c of them) gives its
    n_c * n1 / N most agreed utterances to D1, the next n_c * n2 / N to D2 and its n_c * n3 / N
    least agreed to D3 (largest remainders keep the tier sizes exact, to within one utterance per
    class and tier), so every tier has the corpus's class mix and D3 no longer measures a shift of
    the class prior."""
    if config.d1_size and config.d2_size and config.d3_size:
        eligible = ranked
        sizes = (config.d1_size, config.d2_size, config.d3_size)
        if sum(sizes) > len(ranked):
            raise DataError(f"{manifest.corpus}: split sizes {'+'.join(map(str, sizes))} exceed "
                            f"the {len(ranked)} utterances")
    else:
        eligible = [u for u in ranked if u.agreement >= config.d3_min_agreement - _EPS]
        n1 = sum(u.agreement >= config.d1_min_agreement - _EPS for u in eligible)
        n2 = sum(u.agreement >= config.d2_min_agreement - _EPS for u in eligible) - n1
        sizes = (n1, n2, len(eligible) - n1 - n2)
    # Quotas tier by tier (D1, then D3, then D2), each apportioned over what the tiers before it
    # left of every class: a class's quotas then never sum to more than it holds, and when the
    # tiers take every eligible utterance (the thresholds' sizes) none is left over by rounding.
    left = {c: sum(u.label == c for u in eligible) for c in manifest.classes}
    remaining, quotas = len(eligible), [{}, {}, {}]
    for tier in (0, 2, 1):
        quotas[tier] = apportion(left, sizes[tier], remaining)
        left = {c: left[c] - quotas[tier][c] for c in left}
        remaining -= sizes[tier]
    d1, d2, d3 = [], [], []
    for c in manifest.classes:  # `ranked` order: most agreed first, hashed ties
        members = [u for u in eligible if u.label == c]
        q1, q2, q3 = (q[c] for q in quotas)
        d1 += members[:q1]
        d2 += members[q1:q1 + q2]
        d3 += members[len(members) - q3:] if q3 else []
    return d1, d2, d3


def apportion(counts: dict[str, int], take: int, total: int) -> dict[str, int]:
    """How many of each class's `counts` go into the first `take` of `total`: floor of the exact
    share, then one more to the largest remainders (ties: class order) until the sum is `take`."""
    exact = {c: n * take / total if total else 0.0 for c, n in counts.items()}
    given = {c: int(v) for c, v in exact.items()}
    for c in sorted(counts, key=lambda c: -(exact[c] - given[c]))[:take - sum(given.values())]:
        given[c] += 1
    return given


def kfold_split(manifest: Manifest, config: SplitConfig) -> KFoldSplit:
    """k folds: stratified by label (random) or speaker-independent (speaker)."""
    fold_of: dict[str, int] = {}
    if config.fold_by == "random":
        k = config.folds
        position = 0  # dealt round-robin across classes so fold sizes differ by at most one
        for label in manifest.classes:
            members = sorted((u for u in manifest.utterances if u.label == label),
                             key=lambda u: tie_key(config.seed, "fold", u.id))
            for u in members:
                fold_of[u.id] = position % k
                position += 1
    else:
        speakers = sorted(manifest.speakers(), key=lambda s: tie_key(config.seed, "speaker", s))
        k = config.speaker_groups or len(speakers)
        if k < 2 or k > len(speakers):
            raise DataError(f"{manifest.corpus}: speaker folds need 2 <= groups <= {len(speakers)} "
                            f"speakers, got split.speaker_groups={config.speaker_groups}")
        sizes = {s: sum(u.speaker == s for u in manifest.utterances) for s in speakers}
        load, group = [0] * k, {}
        for speaker in sorted(speakers, key=lambda s: -sizes[s]):  # stable: ties keep hash order
            g = min(range(k), key=lambda i: (load[i], i))
            group[speaker] = g
            load[g] += sizes[speaker]
        fold_of = {u.id: group[u.speaker] for u in manifest.utterances}
    folds = []
    for index in range(k):
        test = tuple(u for u in manifest.utterances if fold_of[u.id] == index)
        train = tuple(u for u in manifest.utterances if fold_of[u.id] != index)
        empty = [c for c, n in manifest.class_counts(train).items() if n == 0]
        if empty or not test:
            raise DataError(f"{manifest.corpus}: fold {index} has an empty test part or no training "
                            f"utterance of {empty}; use fewer folds or more data")
        folds.append(Fold(index=index, train=train, test=test))
    return KFoldSplit(classes=manifest.classes, folds=tuple(folds), by=config.fold_by)


def make_split(manifest: Manifest, config: SplitConfig) -> AmbiguitySplit | KFoldSplit:
    return ambiguity_split(manifest, config) if config.kind == "ambiguity" else kfold_split(
        manifest, config)


def summary_line(split: AmbiguitySplit | KFoldSplit) -> str:
    """One line on what a split holds (logged beside its hash)."""
    classes = ", ".join(split.classes)
    if isinstance(split, AmbiguitySplit):
        return (f"D1 {len(split.d1)}, D2 {len(split.d2)}, dev {len(split.dev)}, D3 {len(split.d3)}"
                f" utterances; classes {classes}")
    total = sum(len(f.test) for f in split.folds)
    return f"{len(split.folds)} folds ({split.by}), {total} utterances; classes {classes}"
