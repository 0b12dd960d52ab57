"""Plain-text description of a manifest and its split, for the data command and run logs."""

from __future__ import annotations

from collections import Counter

from emoref.config import RunConfig
from emoref.data.manifest import Manifest
from emoref.data.splits import AmbiguitySplit, KFoldSplit


def _table(header: list[str], rows: list[list[object]]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def agreement_histogram(manifest: Manifest, bins: int = 20, width: int = 40) -> str:
    scores = [u.agreement for u in manifest.utterances if u.agreement is not None]
    if not scores:
        return "agreement: none recorded for this corpus"
    counts = Counter(min(int(a * bins), bins - 1) for a in scores)
    top = max(counts.values())
    lines = [f"agreement histogram ({len(scores)} utterances with a score):"]
    for b in range(bins):
        n = counts.get(b, 0)
        high = "]" if b == bins - 1 else ")"
        lines.append(f"  [{b / bins:.2f}, {(b + 1) / bins:.2f}{high} {n:6d} "
                     f"{'#' * round(width * n / top)}")
    return "\n".join(lines)


def describe(manifest: Manifest, split: AmbiguitySplit | KFoldSplit, config: RunConfig) -> str:
    speakers = Counter(u.speaker for u in manifest.utterances)
    hours = sum(u.duration for u in manifest.utterances) / 3600
    out = [f"corpus: {manifest.corpus}  root: {config.corpus.root or config.corpus.cache_dir}",
           f"utterances: {len(manifest)}  speakers: {len(speakers)}  classes: {len(manifest.classes)}"
           f"  audio: {hours:.2f} h",
           f"speakers: {', '.join(f'{s} ({n})' for s, n in sorted(speakers.items()))}"]
    if manifest.skipped:
        out.append(f"skipped ({len(manifest.skipped)}, corpus.on_bad_audio=skip):")
        out += [f"  {line}" for line in manifest.skipped]
    out.append("")
    if isinstance(split, AmbiguitySplit):
        parts = {**split.parts(), "excluded": split.excluded}
        rows = [[c] + [manifest.class_counts(p)[c] for p in parts.values()]
                + [manifest.class_counts()[c]] for c in manifest.classes]
        rows.append(["total"] + [len(p) for p in parts.values()] + [len(manifest)])
        s = config.split
        thresholds = (f"thresholds d1 >= {s.d1_min_agreement:g}, d2 >= {s.d2_min_agreement:g}, "
                      f"d3 >= {s.d3_min_agreement:g}")
        sizes = f"sizes {s.d1_size}/{s.d2_size}/{s.d3_size}"
        explicit = bool(s.d1_size and s.d2_size and s.d3_size)
        rule = {"thresholds": thresholds, "sizes": sizes,
                "rank": "ranked within each class, tier sizes of the "
                        + (sizes if explicit else thresholds)}[s.by]
        out.append(f"ambiguity split ({rule}; dev = {s.dev_fraction:g} of D2):")
        out.append(_table(["class", "D1", "D2", "dev", "D3", "excluded", "all"], rows))
        if s.by != "thresholds":
            out.append(f"ranked from least to most ambiguous by: {', '.join(split.rules)}, then a "
                       f"seeded hash (split.ambiguity; split.seed={s.seed})"
                       + ("; D3 class-balanced" if s.d3_balanced else ""))
            sizes_of = {"D1": len(split.d1), "D2": len(split.d2) + len(split.dev),
                        "D3": len(split.d3)}
            out.append("decided by the hash (a non-member with the same score could have taken "
                       "their place): " + ", ".join(f"{tier} {n} of {sizes_of[tier]}"
                                                    for tier, n in split.tiebreak))
        malformed = sum(int(dict(u.extra).get("malformed_dimension_lines", 0))
                        for u in manifest.utterances)
        if malformed:
            out.append(f"dimensional rating lines left out as malformed: {malformed}")
    else:
        rows = [[f"fold {f.index}", len(f.train), len(f.test),
                 len({u.speaker for u in f.test})] for f in split.folds]
        out.append(f"{len(split.folds)}-fold split ({split.by}):")
        out.append(_table(["fold", "train", "test", "test speakers"], rows))
    out += ["", agreement_histogram(manifest), "", f"split hash: {split.hash}"]
    return "\n".join(out)
