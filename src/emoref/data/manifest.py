"""The one data model every corpus is read into: a Manifest of Utterance records."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence


class DataError(ValueError):
    """Bad corpus input: the message names the file (and line) and what was expected."""


@dataclass(frozen=True)
class Utterance:
    id: str  # unique within the corpus, e.g. "03a01Fa" or "Ses01F_impro01_F000"
    path: str  # absolute path of the audio file
    speaker: str  # speaker id as the corpus names it
    label: str  # canonical emotion label (after the class mapping)
    agreement: float | None = None  # share of raters who chose `label`, in [0, 1]; None if unknown
    votes: tuple[tuple[str, int], ...] = ()  # (canonical label, raters who gave it), most first
    n_raters: int = 0  # raters behind `votes` (a rater may name several labels)
    duration: float = 0.0  # seconds, from the file header
    corpus: str = ""  # corpus name, e.g. "emodb"
    extra: tuple[tuple[str, str], ...] = ()  # corpus-specific facts (RAVDESS intensity, EmoDB naturalness)
    # IEMOCAP: what the ambiguity score reads (data/splits.py, split.ambiguity). Each evaluator's
    # (C-E*) labels after folding, in file order; the actors' own ratings (C-F*, C-M*) apart from
    # them, () when the utterance has none; each annotator's (valence, activation, dominance)
    # ratings (A-E*, A-F*, A-M*; malformed ones are left out and counted by the loader).
    evaluator_labels: tuple[tuple[str, ...], ...] = ()
    self_labels: tuple[tuple[str, ...], ...] = ()
    dimensions: tuple[tuple[float, float, float], ...] = ()


MANIFEST_COLUMNS = ("id", "path", "speaker", "label", "agreement", "votes", "n_raters", "duration",
                    "corpus", "extra")


@dataclass(frozen=True)
class Manifest:
    corpus: str
    classes: tuple[str, ...]  # class-index order used by every model trained on this manifest
    utterances: tuple[Utterance, ...]
    skipped: tuple[str, ...] = field(default=())  # "path: reason" for files dropped by on_bad_audio=skip
    votes_from: str = ""  # whose votes, where a corpus has several kinds (CREMA-D: corpus.cremad_votes)

    def __post_init__(self) -> None:
        ids = Counter(u.id for u in self.utterances)
        repeated = [i for i, n in ids.items() if n > 1]
        if repeated:
            raise DataError(f"{self.corpus}: utterance ids must be unique; repeated: {repeated[:5]}")
        stray = sorted({u.label for u in self.utterances} - set(self.classes))
        if stray:
            raise DataError(f"{self.corpus}: labels {stray} are not among the classes {self.classes}")

    def __len__(self) -> int:
        return len(self.utterances)

    def class_counts(self, utterances: Iterable[Utterance] | None = None) -> dict[str, int]:
        counts = Counter(u.label for u in (self.utterances if utterances is None else utterances))
        return {c: counts.get(c, 0) for c in self.classes}

    def speakers(self) -> tuple[str, ...]:
        return tuple(sorted({u.speaker for u in self.utterances}))

    def by_id(self) -> dict[str, Utterance]:
        return {u.id: u for u in self.utterances}

    def to_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(MANIFEST_COLUMNS)
            for u in self.utterances:
                writer.writerow([u.id, u.path, u.speaker, u.label,
                                 "" if u.agreement is None else repr(float(u.agreement)),
                                 ";".join(f"{k}:{n}" for k, n in u.votes), u.n_raters,
                                 repr(float(u.duration)), u.corpus, json.dumps(dict(u.extra))])

    @classmethod
    def from_csv(cls, path: str | Path, corpus: str, classes: Sequence[str]) -> "Manifest":
        """Read a manifest written by `to_csv` (the full column set)."""
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        utterances = []
        for line, row in enumerate(rows, start=2):
            try:
                votes = tuple((k, int(n)) for k, n in
                              (item.rsplit(":", 1) for item in row["votes"].split(";") if item))
                utterances.append(Utterance(
                    id=row["id"], path=row["path"], speaker=row["speaker"], label=row["label"],
                    agreement=float(row["agreement"]) if row["agreement"] else None, votes=votes,
                    n_raters=int(row["n_raters"]), duration=float(row["duration"]),
                    corpus=row["corpus"], extra=tuple(json.loads(row["extra"] or "{}").items())))
            except (KeyError, ValueError) as err:
                raise DataError(f"{path}:{line}: malformed manifest row ({err})") from None
        return cls(corpus=corpus, classes=tuple(classes), utterances=tuple(utterances))


def apply_class_mapping(corpus: str, utterances: Sequence[Utterance], classes: Sequence[str],
                        merge: Sequence[str]) -> tuple[tuple[str, ...], tuple[Utterance, ...]]:
    """Fold labels by `merge` ("from:to"), keep only `classes` (all when empty), fix the class order.

    Votes are folded the same way, and agreement is recomputed from them when the corpus has votes:
    with excitement merged into happiness, a rater who answered "Excited" agrees with "happiness".
    """
    fold = dict(pair.split(":") for pair in merge)
    mapped = []
    for u in utterances:
        label = fold.get(u.label, u.label)
        votes: Counter[str] = Counter()
        for name, n in u.votes:
            votes[fold.get(name, name)] += n
        agreement = u.agreement
        if u.votes and u.n_raters:
            # A rater naming both "Happiness" and "Excited" counts once after the merge.
            agreement = min(1.0, votes[label] / u.n_raters)
            votes[label] = min(votes[label], u.n_raters)
        refold = lambda sets: tuple(tuple(sorted({fold.get(x, x) for x in labels}))
                                    for labels in sets)
        mapped.append(dataclasses.replace(u, label=label, agreement=agreement,
                                          votes=tuple(votes.most_common()),
                                          evaluator_labels=refold(u.evaluator_labels),
                                          self_labels=refold(u.self_labels)))
    present = sorted({u.label for u in mapped})
    if classes:
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise DataError(f"{corpus}: corpus.classes names {unknown}, which no utterance has after "
                            f"the mapping; the corpus has {present}")
        keep = tuple(classes)
    else:
        keep = tuple(present)
    return keep, tuple(u for u in mapped if u.label in keep)
