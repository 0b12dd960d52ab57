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
--state-dir DIR (workers >= 1) keeps each seed's newest state in DIR/<row>/seed<k>/state.pt as
well, rewritten at most every --state-every seconds and removed once the seed's folder is written;
the same command resumes from it wherever it runs next (a fresh checkout, another machine) when
the package's sources, the resolved config and the split are the same.
Exits with status 2 and a message naming the key or file when the input is wrong, before training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import socket
import sys
from pathlib import Path

from emoref.config import PRESETS, RunConfig, flatten
from emoref.data.splits import summary_line
from emoref.provenance import git_sha
from emoref.experiment import prepare_split, reference_runs, split_kind, train_seed
from emoref.methods import METHODS
from emoref.methods.common import Diverged
from emoref.ray_train import read_state_file
from emoref.record import outcome, reading
from emoref.reports import results_tables
from emoref.summary import aggregate, seed_metrics
from runner._cli import (EPR_HELP, USER_ERRORS, build_checked, expand, fail, given_keys,
                         in_process_threads, read_config_file, setting_source)
from runner.preflight import capacity, check_fine_tuning_device, check_gpus
from runner.tracking import LiveCurves, TrainRuns, log_configuration, log_seed, tracking_uri

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.train", epilog=EPR_HELP,
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("methods", help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. corpus=emodb corpus.root=/data/emodb ipr.mu=0.5")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="config preset under the overrides (default: the --config file's "
                             "preset= line, else cpu)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="an experiment file (experiments/*.txt), a sweep's best.txt or a "
                             "seed's config.txt: key=value lines applied before the command "
                             "line's, which win; '#' starts a comment")
    parser.add_argument("--seeds", type=int, default=5, help="consecutive seeds from seed= (default 5)")
    parser.add_argument("--out", help="output folder (default runs/train/<corpus>)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.add_argument("--label", help="one method only: the name of its results row and folder "
                        "(default the method), e.g. an ablation beside its method: "
                        "`runner.train ipr ipr.mu=0 --label ipr_mu0 --out <same folder>`")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="workers >= 1: keep each seed's newest state in "
                             "DIR/<row>/seed<k>/state.pt and resume from it there (a seed of "
                             "hours then continues in another checkout or on another machine)")
    parser.add_argument("--state-every", type=float, default=300.0, metavar="S",
                        help="--state-dir: seconds between rewrites of the state (default 300)")
    parser.add_argument("--tracking-uri",
                        help="MLflow store the runs are recorded in (default "
                             "$MLFLOW_TRACKING_URI, else sqlite:///<absolute>/runs/mlflow.db); "
                             "a server on a cluster: http://<head>:5000")
    return parser.parse_intermixed_args(argv)


def prepare(methods: list[str], args: argparse.Namespace) -> dict[str, tuple[RunConfig, object]]:
    """Every method's config and split, checked before the first step; exits 2 on bad input."""
    prepared, manifests = {}, {}
    given = given_keys(args.file, expand(args.overrides))
    source = setting_source(args.config, args.preset)
    try:
        for method in methods:  # every config and split checked before anything is computed
            config = build_checked(args.preset, args.file, expand(args.overrides), method)
            check_fine_tuning_device(config, given, source)
            prepared[method] = (config, prepare_split(method, config, manifests, extract=False))
        for method, (config, _) in prepared.items():  # then the features, into the cache
            split = prepare_split(method, config, manifests, echo=not args.quiet)
            prepared[method] = (config, split)
        if any(config.gpu for config, _ in prepared.values()):  # the cluster's GPUs, if any
            check_gpus(next(c for c, _ in prepared.values() if c.gpu), capacity(connect=True),
                       source)
    except USER_ERRORS as err:
        fail(str(err))
    return prepared


def tracking_name(prepared: dict[str, tuple[RunConfig, object]]) -> str:
    method, (config, _) = next(iter(prepared.items()))
    return f"{method}-{config.corpus.name}"


def open_runs(args: argparse.Namespace, methods: list[str],
              prepared: dict[str, tuple[RunConfig, object]], out: Path) -> TrainRuns:
    """This command's runs in MLflow (runner.tracking.TrainRuns), in the experiment of its first
    method and corpus, as a sweep's are."""
    uri = tracking_uri(args.tracking_uri, Path("runs"))
    title = f"train {','.join(methods)}" + (f" {args.label}" if args.label else "")
    params = {"methods": ",".join(methods), "preset": args.preset, "seeds": args.seeds,
              "config_file": str(args.config or ""), "out": str(out.resolve()),
              "overrides": " ".join([*(args.file.overrides if args.file else ()),
                                     *expand(args.overrides)])}
    return TrainRuns.open(uri, tracking_name(prepared), title, params, {"git_sha": git_sha()})


def train_row(args: argparse.Namespace, tracking: TrainRuns, name: str, method: str,
              base: RunConfig, split: object, out: Path, states: dict[tuple[str, int], Path]
              ) -> list[dict[str, float]]:
    """`args.seeds` seeds of one results row, each recorded as a seed run under the row's run
    (curves live, then its files) as a sweep's trial records them; the per-seed metrics."""
    tracker = tracking.tracker
    row_run = tracking.row(name, method)
    provenance = {"git_sha": git_sha(), "split_hash": split.hash, "corpus": base.corpus.name,
                  "corpus_summary": summary_line(split), "emoref.kind": "seed",
                  "emoref.method": method, "emoref.row": name, "host": socket.gethostname()}
    rows, done = [], {}
    with tracker.failing(row_run):
        for config in (dataclasses.replace(base, seed=base.seed + i) for i in range(args.seeds)):
            in_process_threads(config)  # workers=0: as a sweep's trial computes
            folder = out / name / f"seed{config.seed}"
            seed_run = tracking.seed(row_run, config.seed, provenance)
            with tracker.failing(seed_run):
                try:
                    result, wall = train_seed(method, config, split, folder, quiet=args.quiet,
                                              live=LiveCurves(tracker, seed_run),
                                              state_file=states.get((name, config.seed)),
                                              state_every_s=args.state_every)
                except Diverged as err:
                    fail(f"{name} seed {config.seed} diverged: {err}")
                log_seed(tracker, seed_run, flatten(config), folder, provenance)
                tracker.metrics(seed_run, [{"wall_s": wall}])
            tracker.finish(seed_run)
            rows.append(seed_metrics(result.selected, result.final, result.selected_epoch, wall))
            done[config.seed] = outcome(method, folder)
            headline = ", ".join(f"{k} {v:.4f}" for k, v in result.selected.items()
                                 if k in ("d3_ua", f"stage{config.epr.depth}_ua", "stage1_ua",
                                          "cv_ua"))
            print(f"{name} seed {config.seed}: {headline}, {wall:.0f} s", flush=True)
        log_configuration(tracker, row_run, method, out / name, done)
    tracker.finish(row_run)
    return rows


def merged_config(args: argparse.Namespace) -> str:
    """What this run is made of, in the order applied (later wins), as one printed line."""
    parts = [f"--preset {args.preset}"]
    if args.file:
        parts.append(f"{args.config} ({' '.join(args.file.overrides) or 'no values'})")
    if args.overrides:
        parts.append("command line (" + " ".join(expand(args.overrides)) + ")")
    return "config: " + ", then ".join(parts)


def state_files(runs: dict[str, tuple[str, RunConfig, object]], args: argparse.Namespace
                ) -> dict[tuple[str, int], Path]:
    """--state-dir: each Ray Train seed's state file, every one that exists checked to be its
    run's before anything trains (the classical reference rows train here, in seconds: none)."""
    files = {}
    for name, (method, base, split) in runs.items():
        if method.startswith("reference"):
            continue
        if not base.workers:
            fail(f"--state-dir: expected workers >= 1 (a run in this process keeps no resumable "
                 f"state), got workers={base.workers}")
        for seed in range(base.seed, base.seed + args.seeds):
            path = args.state_dir / name / f"seed{seed}" / "state.pt"
            try:
                read_state_file(path, dataclasses.replace(base, seed=seed), split.hash)
            except USER_ERRORS as err:
                fail(str(err))
            files[name, seed] = path
    return files


def main(argv: list[str] | None = None) -> dict:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        fail(f"method {','.join(unknown) or args.methods!r}: expected one or more of {list(METHODS)}")
    if args.seeds < 1:
        fail(f"--seeds: expected an integer >= 1, got {args.seeds}")
    if args.label is not None and (len(methods) != 1 or not re.fullmatch(
            re.escape(methods[0]) + r"[_-][A-Za-z0-9_.=-]+", args.label)):
        fail(f"--label {args.label!r}: expected one method and a name that starts with it and _ "
             f"or -, e.g. {methods[0]}_mu0 (the row is read as that method's)")
    if args.state_every < 0:
        fail(f"--state-every: expected seconds >= 0, got {args.state_every}")
    args.file = read_config_file(args.config)
    args.preset = args.preset or (args.file and args.file.preset) or "cpu"
    print(merged_config(args), flush=True)
    prepared = prepare(methods, args)
    corpus = next(iter(prepared.values()))[0].corpus.name
    out = Path(args.out or Path("runs") / "train" / corpus)
    print(f"writing to {out}")
    per_seed: dict[str, list[dict[str, float]]] = {}
    hashes = {}
    # The reference on k folds is the row beside EPR: reference_cv, wherever it is asked for.
    runs = {("reference_cv" if m == "reference" and split_kind(s) == "kfold" else m): (m, c, s)
            for m, (c, s) in prepared.items()}
    if args.label:
        runs = {args.label: runs.pop(methods[0]), **runs}
    runs.update(reference_runs(prepared))  # the classical reference rows, seconds each
    states = state_files(runs, args) if args.state_dir else {}
    tracking = open_runs(args, methods, prepared, out)
    try:
        for name, (method, base, split) in runs.items():
            hashes[name] = split.hash
            print(f"{name}: split {split.hash}", flush=True)
            per_seed[name] = train_row(args, tracking, name, method, base, split, out,
                                       states)
    except BaseException as err:
        tracking.close([], failed=err)
        raise
    # ---- Mean ± std over seeds (never the best seed).
    summaries = {method: aggregate(rows) for method, rows in per_seed.items()}
    tables = results_tables(summaries, {row: runs[row][1].epr for row in summaries
                                        if reading(row).table == "stages"})
    text = f"mean ± std over {args.seeds} seed(s)\n\n" + "\n\n".join(tables)
    out.mkdir(parents=True, exist_ok=True)
    # Written whole, then renamed: several runner.train commands may share one --out folder (one
    # row or seed each, side by side), and a reader never sees half a file. The last one wins;
    # runner.report rebuilds every row from the seed folders.
    for name, content in (("summary.json", json.dumps(
            {"split_hash": hashes, "preset": args.preset, "overrides": args.overrides,
             "config_file": str(args.config) if args.config else None,
             "config_file_overrides": list(args.file.overrides) if args.file else [],
             "seeds": list(range(base.seed, base.seed + args.seeds)), "methods": summaries,
             "per_seed": per_seed}, indent=2)), ("summary.md", text + "\n")):
        part = out / f"{name}.{os.getpid()}"
        part.write_text(content)
        os.replace(part, out / name)
    tracking.close([out / "summary.md", out / "summary.json"] +
                   ([args.config] if args.config else []))
    print("\n" + text + f"\nMLflow: {tracking.tracker.uri}, experiment {tracking_name(prepared)}")
    return summaries


if __name__ == "__main__":
    main()
