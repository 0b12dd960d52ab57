"""python -m runner.train <method>[,<method>...] [key=value ...]: train on this machine, several seeds.

Runs each method for `--seeds` consecutive seeds (from `seed=`, default 0), prints a line per epoch
and then mean ± std over seeds. IPR and its baselines train on the ambiguity split; EPR runs k-fold
cross-validation. Writes, under --out (default runs/train/<corpus>):
  <method>/seed<k>/epochs.csv      every reported metric, one row per report
  <method>/seed<k>/table.csv       IPR family: D2's soft labels, pseudo label and confidence
                                   (the annotation output); EPR: every utterance's prediction per stage
  <method>/seed<k>/checkpoint.pt   IPR family: dev-selected weights (+ prototypes), config, git SHA,
                                   split hash (runner.annotate reads it)
  <method>/seed<k>/figures/*.png   agreement curves, prototype similarity (matrix and over
                                   epochs), confusion matrices, EPR emotion profiles across stages
  <method>/seed<k>/confusion.json  the reported confusion matrices as numbers
  <method>/seed<k>/config.txt      the resolved config, key=value
  summary.json, summary.md         mean ± std over seeds per method
Every table carries the classical reference (openSMILE functionals + logistic regression, seconds):
reference/ (D1) and reference_supervised/ (D1 + labelled D2) beside the IPR family, reference_cv/
(the same training folds) beside EPR. openSMILE features (the reference's, and the trunk's with
encoder.kind=opensmile) are extracted into the cache first, as Ray tasks on every core.
With workers=N (N >= 1) each seed trains through a Ray Train TorchTrainer on N DDP workers (gloo on
CPU; gpu=true: one GPU each, NCCL, train.precision=bf16|fp16 for mixed precision), checkpointing
every epoch under dist.storage and resuming there when Ray restarts a failed worker group. It uses
the running Ray instance (RAY_ADDRESS) or starts a local one; workers=0 (the default) trains here.
Exits with status 2 and a message naming the key or file when the input is wrong, before training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from emoref import distributed, figures
from emoref.config import PRESETS, ConfigError, RunConfig, as_overrides, build_config
from emoref.data import opensmile_features
from emoref.data.corpora import load_manifest
from emoref.data.manifest import Manifest
from emoref.data.opensmile_features import Extraction
from emoref.data.splits import AmbiguitySplit, KFoldSplit, make_split
from emoref.methods import METHODS, reference
from emoref.methods.common import Diverged, Result, check_ambiguity_split
from emoref.summary import (CV_COLUMNS, aggregate, markdown_table, seed_metrics, stage_table,
                            write_csv)
from runner._cli import USER_ERRORS, expand, fail, read_overrides

SHOWN = ("loss", "beta", "dev_ua", "d3_wa", "d3_ua", "agreement_prototype", "agreement_model",
         "train_loss", "val_loss", "fold_wa", "fold_ua")
# The splits a method trains on (every other method: the ambiguity split). The classical reference
# goes beside either family: D1 of an ambiguity split, or the training folds of a k-fold one.
SPLIT_KIND = {"epr": (KFoldSplit,), "reference": (AmbiguitySplit, KFoldSplit)}
# The reference rows every table carries (see reference_runs), by the split they go beside.
REFERENCE_ROWS = {"ambiguity": ("reference", "reference_supervised"), "kfold": ("reference_cv",)}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.train",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("methods", help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. corpus=emodb corpus.root=/data/emodb ipr.mu=0.5")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="key=value lines applied before the command line's (e.g. a sweep's "
                             "best.txt, or a seed's config.txt); '#' starts a comment")
    parser.add_argument("--seeds", type=int, default=5, help="consecutive seeds from seed= (default 5)")
    parser.add_argument("--out", help="output folder (default runs/train/<corpus>)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser.parse_intermixed_args(argv)


def extraction_jobs(config: RunConfig) -> list[Extraction]:
    """The openSMILE features a run reads: the reference's functionals (every table carries its
    row) and, with encoder.kind=opensmile, the trunk's input with its K augmented views."""
    jobs = [reference.job(config)]
    if config.encoder.kind == "opensmile":
        jobs.append(Extraction.of(config))
    return jobs


def prepare_split(method: str, config: RunConfig, manifests: dict | None = None,
                  extract: bool = True, echo: bool = True) -> Any:
    """The split `method` trains on, checked (raises ConfigError or DataError on bad input).
    With `extract`, the openSMILE features of every utterance are then put in the cache (as Ray
    tasks when some are missing: see extract_features); a file openSMILE cannot use stops here
    or, with corpus.on_bad_audio=skip, is left out of the split. Every check comes first."""
    manifests = {} if manifests is None else manifests
    if config.corpus not in manifests:  # methods differ in split, not in corpus
        manifests[config.corpus] = load_manifest(config.corpus)
    manifest = manifests[config.corpus]
    split = checked_split(method, config, manifest)
    if extract:
        kept = extract_features(manifest, config, echo)
        if kept is not manifest:  # files openSMILE cannot use were left out: split the rest
            split = checked_split(method, config, kept)
    return split


def checked_split(method: str, config: RunConfig, manifest: Manifest) -> Any:
    split = make_split(manifest, config.split)
    wanted = SPLIT_KIND.get(method, (AmbiguitySplit,))
    if not isinstance(split, wanted):
        kind = "kfold" if KFoldSplit in wanted else "ambiguity"
        raise ConfigError(f"split.kind: {method} needs a {kind} split, got {config.split.kind!r}")
    if isinstance(split, AmbiguitySplit):
        check_ambiguity_split(split)
    return split


def extract_features(manifest: Manifest, config: RunConfig, echo: bool = True) -> Manifest:
    """Fills the openSMILE cache for the whole corpus; when anything is missing, Ray is started
    (or joined: RAY_ADDRESS, a `ray start` node) and extraction runs as tasks on every core."""
    jobs = extraction_jobs(config)
    if any(opensmile_features.pending(manifest.utterances, job) for job in jobs):
        distributed.start_ray(echo=False)
    return opensmile_features.prepare(manifest, jobs, config.corpus.on_bad_audio, echo=echo)


def reference_runs(prepared: dict[str, tuple[RunConfig, Any]]
                   ) -> dict[str, tuple[str, RunConfig, Any]]:
    """{row name: (method, config, split)}: the classical reference beside each family run here,
    on the same split: reference (D1) and reference_supervised (D1 + labelled D2) beside the IPR
    family, reference_cv (the same training folds) beside EPR."""
    runs = {}
    for method, (config, split) in prepared.items():
        if method.startswith("reference"):
            continue
        kind = "kfold" if isinstance(split, KFoldSplit) else "ambiguity"
        for row in REFERENCE_ROWS[kind]:
            runs.setdefault(row, ("reference" if row == "reference_cv" else row, config, split))
    return {row: run for row, run in runs.items() if row not in prepared}


def prepare(methods: list[str], args: argparse.Namespace) -> dict[str, tuple[RunConfig, object]]:
    """Every method's config and split, checked before the first step; exits 2 on bad input."""
    prepared, manifests = {}, {}
    try:
        for method in methods:  # every config and split checked before anything is computed
            config = build_config(args.preset, read_overrides(args.config) + expand(args.overrides),
                                  method=method)
            prepared[method] = (config, prepare_split(method, config, manifests, extract=False))
        for method, (config, _) in prepared.items():  # then the features, into the cache
            split = prepare_split(method, config, manifests, echo=not args.quiet)
            prepared[method] = (config, split)
    except USER_ERRORS as err:
        fail(str(err))
    return prepared


def save_figures(folder: Path, method: str, result: Result, rows: list[dict], extras: list[dict],
                 classes: tuple[str, ...]) -> None:
    made = {}
    if method.startswith("reference"):  # one fit: its confusion matrices only
        chosen = extras[-1]
        for key, matrix in chosen.items():
            made[key] = figures.confusion_matrix(matrix, classes, key.replace("_", " "))
    elif method == "epr":
        chosen = extras[-1]
        made["profile"] = figures.profile_evolution(
            chosen["figure_profiles"], classes, f"emotion profile of {chosen['figure_utterance']}")
        for key, matrix in chosen.items():
            if key.endswith("_confusion"):
                made[key] = figures.confusion_matrix(matrix, classes, key.replace("_", " "))
    else:
        chosen = next(x for r, x in zip(rows, extras) if r["epoch"] == result.selected_epoch)
        made["agreement"] = figures.agreement_curves(rows)
        made["d3_confusion"] = figures.confusion_matrix(
            chosen["d3_confusion"], classes, f"D3 confusion, epoch {result.selected_epoch}")
        if "prototype_similarity" in chosen:
            made["prototype_similarity"] = figures.similarity_matrix(
                chosen["prototype_similarity"], classes,
                f"prototype cosine similarity, epoch {result.selected_epoch}")
            made["prototype_similarity_curves"] = figures.similarity_curves([rows], classes)
    # The reported confusion matrices (IPR family: at the selected epoch; EPR: every stage), as
    # numbers, so a configuration can sum them over its seeds.
    matrices = {k[:-len("_confusion")]: v for k, v in chosen.items() if k.endswith("_confusion")}
    (folder / "confusion.json").write_text(json.dumps({"classes": list(classes), **matrices}))
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for name, fig in made.items():
        fig.savefig(folder / "figures" / f"{name}.png", dpi=120)
        plt.close(fig)


def train_seed(method: str, config: RunConfig, split: object, folder: Path, quiet: bool = False
               ) -> tuple[Result, float]:
    """Train one seed (in this process, or on Ray Train when config.workers > 0) and write its
    folder: epochs.csv, table.csv, checkpoint.pt, figures/, and config.txt last (a folder with a
    config.txt holds a finished seed). Returns the Result and the wall time in seconds."""
    rows: list[dict[str, float]] = []
    extras: list[dict] = []
    tag = f"{method} seed {config.seed}"

    def report(step: int, metrics: dict[str, float], extra: dict, state=None) -> None:
        rows.append({"epoch": step, **metrics})
        extras.append(extra)
        if not quiet:
            shown = "  ".join(f"{k} {metrics[k]:.3f}" for k in SHOWN if k in metrics)
            print(f"{tag} step {step:3d}  {shown}", flush=True)

    start = time.perf_counter()
    if config.workers and not method.startswith("reference"):  # Ray Train: DDP over workers
        result, _ = distributed.fit(method, config, split, report, echo=not quiet)
    else:
        result = METHODS[method](config, split, report)
    wall = time.perf_counter() - start
    write_csv(folder / "epochs.csv", rows)
    write_csv(folder / "table.csv", result.table)
    if result.checkpoint is not None:
        torch.save(result.checkpoint, folder / "checkpoint.pt")
    save_figures(folder, method, result, rows, extras, split.classes)
    (folder / "config.txt").write_text("\n".join(as_overrides(config)) + "\n")
    return result, wall


def main(argv: list[str] | None = None) -> dict:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        fail(f"method {','.join(unknown) or args.methods!r}: expected one or more of {list(METHODS)}")
    if args.seeds < 1:
        fail(f"--seeds: expected an integer >= 1, got {args.seeds}")
    prepared = prepare(methods, args)
    corpus = next(iter(prepared.values()))[0].corpus.name
    out = Path(args.out or Path("runs") / "train" / corpus)
    print(f"writing to {out}")
    per_seed: dict[str, list[dict[str, float]]] = {}
    hashes = {}
    # The reference on k folds is the row beside EPR: reference_cv, wherever it is asked for.
    runs = {("reference_cv" if m == "reference" and isinstance(s, KFoldSplit) else m): (m, c, s)
            for m, (c, s) in prepared.items()}
    runs.update(reference_runs(prepared))  # the classical reference rows, seconds each
    for name, (method, base, split) in runs.items():
        hashes[name] = split.hash
        print(f"{name}: split {split.hash}", flush=True)
        for config in (dataclasses.replace(base, seed=base.seed + i) for i in range(args.seeds)):
            try:
                result, wall = train_seed(method, config, split,
                                          out / name / f"seed{config.seed}", quiet=args.quiet)
            except Diverged as err:
                fail(f"{name} seed {config.seed} diverged: {err}")
            per_seed.setdefault(name, []).append(
                seed_metrics(result.selected, result.final, result.selected_epoch, wall))
            headline = ", ".join(f"{k} {v:.4f}" for k, v in result.selected.items()
                                 if k in ("d3_ua", f"stage{config.epr.depth}_ua", "stage1_ua",
                                                   "cv_ua"))
            print(f"{name} seed {config.seed}: {headline}, {wall:.0f} s", flush=True)
    # ---- Mean ± std over seeds (never the best seed).
    summaries = {method: aggregate(rows) for method, rows in per_seed.items()}
    tables = []
    family = {m: s for m, s in summaries.items() if m not in ("epr", "reference_cv")}
    if family:
        tables.append("D3 at the dev-selected epoch; D2 agreement at the last epoch (percent):\n"
                      + markdown_table(family))
    if "reference_cv" in summaries and "epr" not in summaries:
        tables.append("Utterance WA/UA/F1 over all test folds (percent):\n"
                      + markdown_table({"reference_cv": summaries["reference_cv"]}, CV_COLUMNS))
    if "epr" in summaries:
        e = prepared["epr"][0].epr
        name = "VGG*" if e.labels == "mixed" else "VGG"
        tables.append(f"EPR ({e.labels} labels), utterance WA/UA/F1 over all folds (percent):\n"
                      + stage_table(summaries["epr"], e.depth, name,
                                    reference=summaries.get("reference_cv")))
    text = f"mean ± std over {args.seeds} seed(s)\n\n" + "\n\n".join(tables)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(
        {"split_hash": hashes, "preset": args.preset, "overrides": args.overrides,
         "seeds": list(range(base.seed, base.seed + args.seeds)), "methods": summaries,
         "per_seed": per_seed}, indent=2))
    (out / "summary.md").write_text(text + "\n")
    print("\n" + text)
    return summaries


if __name__ == "__main__":
    main()
