"""python -m runner.annotate CHECKPOINT [corpus] [key=value ...] --out FILE.csv: soft labels for a corpus.

Applies a checkpoint written by runner.train (IPR's dev-selected weights and prototypes) to every
utterance of a corpus or CSV manifest, or to one part of its ambiguity split (--part), and writes
one row per utterance: id, pseudo label, confidence, the soft label per class (class proportions,
softmax of Eq. 3's prototype similarities over tau) and the raw similarities. The checkpoint's own
config is used; overrides change where the audio comes from (corpus=..., corpus.root=...).
A checkpoint without prototypes (a baseline's) falls back to the classifier's softmax, and says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from emoref.config import CORPORA, ConfigError, from_overrides
from emoref.data.corpora import load_manifest
from emoref.data.splits import AmbiguitySplit, make_split
from emoref.methods import ipr
from emoref.summary import write_csv
from runner._cli import USER_ERRORS, expand, fail

PARTS = ("all", "d1", "d2", "dev", "d3")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m runner.annotate",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("checkpoint", help="a checkpoint.pt written by runner.train")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"where the audio is, e.g. corpus=csv corpus.root=/data/new.csv "
                             f"(corpora: {', '.join(CORPORA)})")
    parser.add_argument("--part", default="all", choices=PARTS,
                        help="every utterance (default) or one part of the ambiguity split")
    parser.add_argument("--out", required=True, help="CSV file to write")
    args = parser.parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    path = Path(args.checkpoint)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        fail(f"{path}: cannot read the checkpoint ({err})")
    if not isinstance(saved, dict) or not {"model", "classes", "config"} <= set(saved):
        fail(f"{path}: not a checkpoint written by runner.train (expected model, classes, config)")
    try:
        # The user's overrides come last, so they win over the checkpoint's values.
        config = from_overrides([*saved["config"], *expand(args.overrides)])
        manifest = load_manifest(config.corpus)
        if args.part == "all":
            utterances = manifest.utterances
        else:
            split = make_split(manifest, config.split)
            if not isinstance(split, AmbiguitySplit):
                raise ConfigError("split.kind: --part needs an ambiguity split, got "
                                  f"{config.split.kind!r}")
            utterances = split.parts()[args.part]
    except USER_ERRORS as err:
        fail(str(err))
    if not utterances:
        fail(f"--part {args.part}: no utterances in {config.corpus.name}")
    if saved.get("prototypes") is None:
        print(f"note: {path} has no prototypes ({saved.get('method')}, epoch {saved.get('epoch')});"
              " soft labels are the classifier's softmax", file=sys.stderr)
    rows = ipr.annotate(saved, utterances, config)
    out = write_csv(args.out, rows)
    print(f"{len(rows)} utterances of {config.corpus.name} annotated with {path} "
          f"({saved.get('method')}, epoch {saved.get('epoch')}) -> {out}")
    return out


if __name__ == "__main__":
    main()
