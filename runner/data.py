"""python -m runner.data <corpus> [key=value ...]: what a corpus holds and how it splits.

Prints counts per class and split part, speakers, an agreement histogram and the split hash; exits
with status 2 and a message naming the file or key when something is wrong.
"""

from __future__ import annotations

import argparse
import sys

from emoref.config import CORPORA, PRESETS, build_config
from emoref.data.corpora import load_manifest
from emoref.data.report import describe
from emoref.data.splits import make_split
from runner._cli import USER_ERRORS, expand, fail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.data", description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default="synthetic", choices=CORPORA,
                        help="corpus to read (default: the built-in synthetic corpus)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. corpus.root=/data/emodb split=kfold "
                             "split.fold_by=speaker")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="config preset")
    parser.add_argument("--manifest-out", metavar="CSV", help="also write the manifest to this CSV")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and "=" in argv[0]:  # no corpus named: overrides only, on the default corpus
        argv.insert(0, "synthetic")
    args = parser.parse_args(argv)
    try:
        config = build_config(args.preset, [f"corpus.name={args.corpus}", *expand(args.overrides)])
        manifest = load_manifest(config.corpus)
        split = make_split(manifest, config.split)
    except USER_ERRORS as err:
        fail(str(err))
    if args.manifest_out:
        manifest.to_csv(args.manifest_out)
    print(describe(manifest, split, config))


if __name__ == "__main__":
    main()
