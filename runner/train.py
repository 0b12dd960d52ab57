"""python -m runner.train <method>[,<method>...] [key=value ...]: train on this machine, several seeds.

Runs each method for `--seeds` consecutive seeds (from `seed=`, default 0) on one split, prints a
line per epoch and then mean ± std over seeds. Writes, under --out (default runs/train/<corpus>):
  <method>/seed<k>/epochs.csv         every per-epoch metric
  <method>/seed<k>/d2_annotation.csv  D2's soft labels, pseudo label and confidence (selected epoch)
  <method>/seed<k>/checkpoint.pt      dev-selected weights (+ prototypes), config, git SHA, split hash
  summary.json, summary.md            mean ± std over seeds per method
Exits with status 2 and a message naming the key or file when the input is wrong, before training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from emoref.config import PRESETS, as_overrides, build_config
from emoref.data.corpora import load_manifest
from emoref.data.splits import AmbiguitySplit, make_split
from emoref.methods import METHODS
from emoref.summary import aggregate, markdown_table, seed_metrics, write_csv
from runner._cli import USER_ERRORS, expand, fail

SHOWN = ("loss", "beta", "dev_ua", "d3_wa", "d3_ua", "agreement_prototype", "agreement_model")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.train",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("methods", help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. corpus=emodb corpus.root=/data/emodb ipr.mu=0.5")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=5, help="consecutive seeds from seed= (default 5)")
    parser.add_argument("--out", help="output folder (default runs/train/<corpus>)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        fail(f"method {','.join(unknown) or args.methods!r}: expected one or more of {list(METHODS)}")
    if args.seeds < 1:
        fail(f"--seeds: expected an integer >= 1, got {args.seeds}")
    # ---- Everything a run needs is checked before the first step: configs, manifest, split.
    try:
        base = build_config(args.preset, expand(args.overrides))
        configs = [dataclasses.replace(base, seed=base.seed + i) for i in range(args.seeds)]
        split = make_split(load_manifest(base.corpus), base.split)
    except USER_ERRORS as err:
        fail(str(err))
    if not isinstance(split, AmbiguitySplit):
        fail(f"split.kind: {', '.join(methods)} train on an ambiguity split (D1/D2/D3), got "
             f"{base.split.kind!r}")
    out = Path(args.out or Path("runs") / "train" / base.corpus.name)
    print(f"split {split.hash}: D1 {len(split.d1)}, D2 {len(split.d2)}, dev {len(split.dev)}, "
          f"D3 {len(split.d3)}; writing to {out}")
    # ---- Train every method for every seed.
    per_seed: dict[str, list[dict[str, float]]] = {}
    for method in methods:
        for config in configs:
            folder = out / method / f"seed{config.seed}"
            rows: list[dict[str, float]] = []

            def report(epoch: int, metrics: dict[str, float], extras: dict, tag=f"{method} "
                       f"seed {config.seed}") -> None:
                rows.append({"epoch": epoch, **metrics})
                if not args.quiet:
                    shown = "  ".join(f"{k} {metrics[k]:.3f}" for k in SHOWN if k in metrics)
                    print(f"{tag} epoch {epoch:3d}  {shown}", flush=True)

            start = time.perf_counter()
            result = METHODS[method](config, split, report)
            wall = time.perf_counter() - start
            write_csv(folder / "epochs.csv", rows)
            write_csv(folder / "d2_annotation.csv", result.table)
            torch.save(result.checkpoint, folder / "checkpoint.pt")
            (folder / "config.txt").write_text("\n".join(as_overrides(config)) + "\n")
            per_seed.setdefault(method, []).append(seed_metrics(result, wall))
            print(f"{method} seed {config.seed}: selected epoch {result.selected_epoch}, "
                  f"D3 UA {result.selected.get('d3_ua', float('nan')):.4f}, {wall:.0f} s",
                  flush=True)
    # ---- Mean ± std over seeds (never the best seed).
    summaries = {method: aggregate(rows) for method, rows in per_seed.items()}
    table = markdown_table(summaries)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(
        {"split_hash": split.hash, "preset": args.preset, "overrides": args.overrides,
         "seeds": [c.seed for c in configs], "methods": summaries, "per_seed": per_seed},
        indent=2))
    (out / "summary.md").write_text(table + "\n")
    print(f"\nmean ± std over {args.seeds} seed(s), D3 at the dev-selected epoch (percent):\n{table}")
    return summaries


if __name__ == "__main__":
    main()
