"""python -m runner.tune <method> [key=value ...]: Optuna searches a method's knobs on Ray Tune.

Each configuration Optuna proposes is one Tune trial that trains `--seeds` seeds (default 5) on
the same split and reports the mean over its seeds of dev UA (IPR family: the labelled dev part of
D2; EPR: utterances held out of the training folds), which is what Optuna maximises: never D3,
never a test fold. When the sweep ends (IPR: after the three baselines ran at the best
configuration with the same seeds) it writes report.md, report.csv (top configurations, mean ± std
over seeds, paired t-tests, the IPR paper's Table 3 layout) and best.txt, which
`python -m runner.train <method> --config best.txt` reruns. `python -m runner.report <sweep>`
rebuilds the report from disk.

With no other argument it runs a real sweep on the built-in synthetic corpus on a laptop (see the
README's quick start for its runtime); `--smoke-test` runs the same path on tiny data in a few minutes.

Seeds run inside a trial, one after another, so that Optuna scores a configuration by the mean over
its seeds and ASHA can stop it between seeds (docs/reference.md, "Sweeps").

Writes <storage-path>/<name>/ (default runs/tune/<method>-<corpus>-<time>): sweep.json,
trials/<trial>/seed<k>/ (a seed folder, emoref.record), baselines/, seeds.log, the report, and tune/
(Ray Tune's own state, which --resume restores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

from emoref import ray_train
from emoref.config import (PRESETS, ConfigError, RunConfig, as_overrides, flatten,
                           from_overrides)
from emoref.data.splits import summary_line
from emoref.data.corpora import load_manifest
from emoref.experiment import checked_split, prepare_split, reference_runs, train_seed
from emoref.methods import METHODS
from emoref.methods.baselines import VARIANTS
from emoref.methods.common import Diverged
from emoref.provenance import code_digest, git_sha
from emoref.record import finished_seeds, outcome, seed_rows
from emoref.reports import write_report
from emoref.sweep import (FAILED_SCORE, REFERENCES, Range, apply_params, caveat, new_record,
                          read_record, read_sweep, searched, start_point, sweep_folder,
                          trial_report)
from runner._cli import (EPR_HELP, USER_ERRORS, build_checked, expand, fail, given_keys,
                         in_process_threads, read_config_file, setting_source)
from emoref.storage import SharedStorage, StorageError
from emoref.models.encoders import check_weights
from runner.preflight import capacity, check_fine_tuning_device, check_gpus, plan_text
from runner.storage import check_storage, check_storage_path, shared_storage
from runner.tracking import (LiveCurves, SweepRuns, log_configuration, log_seed, reference_metrics,
                             tracking_uri)

# --smoke-test: the smoke preset on the tiny synthetic corpus, two configurations of two seeds.
# Its three epochs leave no room for a warm-up search, so the warm-up is fixed at the preset's 1
# (a key given on the command line is fixed, not searched).
DEFAULTS = {"num_samples": 8, "seeds": 5}
SMOKE = {"num_samples": 2, "seeds": 2, "fixed": ("train.warmup_epochs=1",)}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.tune", epilog=EPR_HELP,
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("method", choices=[m for m in METHODS if m not in REFERENCES],
                        help="the method whose knobs are searched")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="fixed config values, e.g. corpus=emodb corpus.root=/data/emodb; a "
                             "searched key given here is fixed and leaves the search")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="an experiment file (experiments/*.txt): key=value lines under the "
                             "command line's, which win; its preset= and space= lines choose the "
                             "preset and the search space unless --preset and --space do")
    parser.add_argument("--space", type=Path,
                        help="search-space YAML (default: the --config file's space= line, else "
                             "search_spaces/<method>.yaml, or the method's section of "
                             "search_spaces/baselines.yaml)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="config preset under the overrides (default cpu; with --resume and "
                             "no key=value: the sweep's own)")
    parser.add_argument("--num-samples", type=int,
                        help=f"configurations Optuna proposes (default {DEFAULTS['num_samples']})")
    parser.add_argument("--seeds", type=int,
                        help=f"seeds per configuration, from seed= (default {DEFAULTS['seeds']})")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of Optuna's TPE sampler")
    parser.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo",
                        help="asha stops poor configurations after 1, 2, 4 ... seeds (rungs in "
                             "seeds; default fifo: every configuration runs all its seeds)")
    parser.add_argument("--workers-per-trial", type=int,
                        help="Ray Train DDP workers per seed; 0 (default, unless the config "
                             "sets workers=N) trains in the trial's own process, with no Ray "
                             "Train start-up")
    parser.add_argument("--gpus-per-trial", type=int,
                        help="GPUs per trial, one per DDP worker (sets workers-per-trial to it "
                             "when that is 0); 0: CPU (default, unless the config sets gpu=true: "
                             "then one per worker)")
    parser.add_argument("--cpus-per-trial", type=float,
                        help="CPUs a trial reserves (with workers: each worker reserves this; "
                             "default 1)")
    parser.add_argument("--max-concurrent", type=int,
                        help="trials at once; 0 (default): as many as the cluster's resources fit")
    parser.add_argument("--storage-path", type=Path, default=Path("runs/tune"),
                        help="where sweeps are written (default runs/tune; a cluster needs a path "
                             "every node sees)")
    parser.add_argument("--name", help="sweep name (default <method>-<corpus>-<date>-<time>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep --name (default: the newest of this method and "
                             "corpus): finished trials and seeds are not rerun")
    parser.add_argument("--no-baselines", action="store_true", default=None,
                        help="IPR: skip running the baselines at the best configuration")
    parser.add_argument("--smoke-test", action="store_true",
                        help="the real path on tiny data in a few minutes on 2 CPUs: smoke preset, "
                             f"by default {SMOKE['num_samples']} configurations x {SMOKE['seeds']} "
                             "seeds")
    parser.add_argument("--tracking-uri",
                        help="MLflow store (default $MLFLOW_TRACKING_URI, else "
                             "sqlite:///<absolute>/runs/mlflow.db); a server on a cluster: "
                             "http://<head>:5000")
    parser.add_argument("--quiet", action="store_true", help="Ray Tune prints no progress table")
    parser.add_argument("--plan", action="store_true",
                        help="run every pre-flight check and print what the sweep would do "
                             "(configurations x seeds x epochs, resources per trial, trials at "
                             "once on the cluster it sees or could scale to); trains nothing")
    args = parser.parse_intermixed_args(argv)
    defaults = SMOKE if args.smoke_test else DEFAULTS
    for name in ("num_samples", "seeds"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.smoke_test:
        args.preset = "smoke"
        given = {o.split("=", 1)[0] for o in expand(args.overrides)}
        args.overrides += [o for o in SMOKE["fixed"] if o.split("=", 1)[0] not in given]
    return args


# The runner's options a sweep records (sweep.json "options") and --resume takes back when the
# command line does not give them, with their defaults.
OPTIONS = {"workers_per_trial": 0, "gpus_per_trial": 0, "cpus_per_trial": 1.0,
           "max_concurrent": 0, "no_baselines": False}


@dataclass(frozen=True)
class Plan:
    """What every trial needs, sent to it once (tune.with_parameters)."""

    method: str
    base: tuple[str, ...]  # the resolved base config as key=value (sampled values go on top)
    seeds: int
    folder: str  # the sweep folder, absolute
    runs: SweepRuns  # the sweep's MLflow runs (runner.tracking)
    storage: SharedStorage  # what every node must see as the driver does (checked first)


def check_options(args: argparse.Namespace) -> None:
    for name, low in (("num_samples", 1), ("seeds", 1), ("workers_per_trial", 0),
                      ("gpus_per_trial", 0), ("max_concurrent", 0)):
        if getattr(args, name) < low:
            fail(f"--{name.replace('_', '-')}: expected an integer >= {low}, "
                 f"got {getattr(args, name)}")
    if args.cpus_per_trial <= 0:
        fail(f"--cpus-per-trial: expected a number > 0, got {args.cpus_per_trial}")
    check_storage_path(args.storage_path)
    if args.gpus_per_trial and args.workers_per_trial not in (0, args.gpus_per_trial):
        fail(f"--gpus-per-trial {args.gpus_per_trial}: each DDP worker takes one GPU, so it must "
             f"equal --workers-per-trial ({args.workers_per_trial})")


def build_base(args: argparse.Namespace) -> tuple[RunConfig, list[str], set[str]]:
    """The base config every trial starts from, the command line's overrides (runner options
    folded in) and the keys the file and the command line set. Raises ConfigError."""
    overrides = expand(args.overrides)
    # A config that asks for GPU workers (gpu=true, workers=N: the paper's experiment files) gets
    # them per trial unless the command line says otherwise.
    asked = build_checked(args.preset, args.file, overrides, args.method)
    if asked.gpu and not args.gpus_per_trial and not args.workers_per_trial:
        args.gpus_per_trial = asked.workers
    elif asked.workers and not args.workers_per_trial and not args.gpus_per_trial:
        args.workers_per_trial = asked.workers
    workers = args.workers_per_trial or args.gpus_per_trial
    # The CPUs a seed computes with, in every trial's config (in-process trials: its threads).
    overrides += [f"dist.cpus_per_worker={args.cpus_per_trial}"]
    if workers:
        overrides.append(f"workers={workers}")
    if args.gpus_per_trial:
        overrides.append("gpu=true")
    base = build_checked(args.preset, args.file, overrides, args.method)
    return base, overrides, given_keys(args.file, overrides)


def resolve(args: argparse.Namespace) -> tuple[RunConfig, dict[str, Range], Any]:
    """The base config, the space (minus keys fixed on the command line) and the split, all
    checked before Ray starts; exits 2 naming the key or file on bad input."""
    try:
        base, overrides, given = build_base(args)
        check_fine_tuning_device(base, given, setting_source(args.config, args.preset))
        space = searched(args.space, args.method, base, {o.split("=", 1)[0] for o in overrides})
        split = prepare_split(args.method, base, extract=False)  # features: once Ray runs
    except USER_ERRORS as err:
        fail(str(err))
    return base, space, split


def per_trial(args: argparse.Namespace) -> str:
    workers = args.workers_per_trial or args.gpus_per_trial
    if not workers:
        return f"{args.cpus_per_trial:g} CPU, in the trial's own process"
    return (f"{workers} Ray Train worker(s), each {args.cpus_per_trial:g} CPU"
            + (" and 1 GPU" if args.gpus_per_trial else "") + " (+0.1 CPU for the trial)")


def show_plan(args: argparse.Namespace) -> NoReturn:
    """--plan: every pre-flight check, then what the sweep would do; trains nothing. Exit 0
    when the sweep could start, 2 when a check would stop it (each listed)."""
    try:
        base, overrides, given = build_base(args)
    except USER_ERRORS as err:
        fail(str(err))
    problems: list[str] = []
    source = setting_source(args.config, args.preset)

    def check(step: Callable[[], Any]) -> Any:
        try:
            return step()
        except (*USER_ERRORS, StorageError) as err:
            problems.append(str(err))

    check(lambda: check_fine_tuning_device(base, given, source))
    space = check(lambda: searched(args.space, args.method, base,
                                   {o.split("=", 1)[0] for o in overrides})) or {}
    check(lambda: check_weights(base.encoder))
    check(lambda: checked_split(args.method, base, load_manifest(base.corpus)))
    found = capacity(connect=True)
    check(lambda: check_gpus(base, found, source))
    uri = tracking_uri(args.tracking_uri, Path("runs"))
    check(lambda: check_server(uri, wait_s=10))
    space_file = args.space or ("search_spaces/" + (f"{args.method}.yaml" if args.method in
                                                    ("ipr", "epr") else "baselines.yaml"))
    if Path(space_file).is_absolute() and Path(space_file).is_relative_to(Path.cwd()):
        space_file = Path(space_file).relative_to(Path.cwd())
    baselines = len(VARIANTS) if args.method == "ipr" and not args.no_baselines else 0
    print(plan_text(args.method, base, source, space, str(space_file), args.num_samples,
                    args.seeds, baselines, per_trial(args), args.cpus_per_trial,
                    float(args.gpus_per_trial), args.max_concurrent, found, problems))
    raise SystemExit(2 if problems else 0)


def check_server(uri: str, wait_s: float = 60.0) -> None:
    """An MLflow server URI must answer before the sweep starts (its runs go nowhere else). A
    server just started (the cluster files start it while `ray up` sets up the head) gets
    `wait_s` seconds to come up; ConfigError after that."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.request
    deadline, said = time.monotonic() + wait_s, False
    while True:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10) as answer:
                if answer.status == 200:
                    return
                why = f"HTTP {answer.status}"
        except OSError as err:
            why = str(getattr(err, "reason", err))
        if time.monotonic() > deadline:
            break
        if not said:
            print(f"waiting up to {wait_s:.0f} s for the MLflow server at {uri} ({why})",
                  file=sys.stderr, flush=True)
            said = True
        time.sleep(2)
    raise ConfigError(f"--tracking-uri {uri}: the MLflow server does not answer ({why}); start it "
                      "(the cluster files start one on the head, port 5000) or pass a store "
                      "that exists, e.g. sqlite:////shared/mlflow/mlflow.db")


# ----------------------------------------------------------------------------------------------------
# The trial: one configuration, its seeds one after another
# ----------------------------------------------------------------------------------------------------

def run_configuration(params: dict[str, Any], plan: Plan, split: Any) -> None:
    """A Tune trial. Trains each seed not yet finished on disk (so a restored trial, or a retried
    one, does not rerun a seed), and reports after each seed the mean over finished seeds."""
    import ray
    from ray import tune

    plan.storage.verify()  # on this trial's node, before it reads or writes anything
    params = dict(params)
    method = params.pop("method", plan.method)
    trial = tune.get_context().get_trial_id()
    sweep = Path(plan.folder)
    folder = sweep / "trials" / trial if method == plan.method else sweep / "baselines" / method
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params, indent=2))
    base = from_overrides(plan.base)
    config = apply_params(base, params)
    # Each seed's Ray Train run is named after the trial (no timestamp): a retried trial resumes it.
    config = dataclasses.replace(config, dist=dataclasses.replace(
        config.dist, name=f"{trial}-{method}", storage=config.dist.storage or str(sweep / "train")))
    in_process_threads(config)  # the CPUs it reserved: dist.cpus_per_worker
    done = {s: outcome(method, d) for s, d in finished_seeds(folder).items()}
    runs, tracker = plan.runs, plan.runs.tracker
    config_run = runs.configuration(trial, method, params)
    node = ray.get_runtime_context().get_node_id()  # where it ran, for the record
    provenance = {"git_sha": git_sha(), "split_hash": split.hash, "corpus": config.corpus.name,
                  "corpus_summary": summary_line(split), "emoref.kind": "seed",
                  "emoref.method": method, "emoref.trial": trial, "ray_node": node,
                  "host": socket.gethostname()}
    for seed in sorted(done):  # finished on disk before a restart, but never recorded
        if not runs.seed_recorded(config_run, seed):
            record_seed(plan, trial, method, config_run, dataclasses.replace(config, seed=seed),
                        folder / f"seed{seed}", provenance, None, node)
    pending = [s for s in range(base.seed, base.seed + plan.seeds) if s not in done]
    if not pending:  # every seed had finished before a restart: record and report them once
        with tracker.failing(config_run):
            log_configuration(tracker, config_run, method, folder, done)
        tracker.finish(config_run)
        tune.report(trial_report(done))
    failed = False
    for seed in pending:
        with tracker.failing(config_run):
            seed_config = dataclasses.replace(config, seed=seed)
            seed_dir = folder / f"seed{seed}"
            seed_run = runs.seed(config_run, seed, provenance)
            try:
                with tracker.failing(seed_run):  # FAILED, with the reason, on any error
                    _, wall = train_seed(method, seed_config, split, seed_dir, quiet=True,
                                         live=LiveCurves(tracker, seed_run))
            except Diverged as err:
                # A diverged seed fails its configuration, not the sweep: recorded, and Optuna
                # told the worst score; the sweep goes on with its other configurations.
                tracker.fail(config_run, err)
                (folder / "failed.txt").write_text(f"seed {seed}: {err}\n")
                with (sweep / "seeds.log").open("a") as log:
                    log.write(f"{trial} {method} seed{seed} failed: {err}\n")
                failed = True
                break
            record_seed(plan, trial, method, config_run, seed_config, seed_dir, provenance, wall,
                        node, seed_run)  # (its curves were logged live, epoch by epoch)
            done[seed] = outcome(method, seed_dir)
            log_configuration(tracker, config_run, method, folder, done)
        if seed == pending[-1]:
            tracker.finish(config_run)
        # Outside the FAILED guard: Tune may end the trial inside report (ASHA's stop, or
        # max_t reached); a run a stop leaves open is marked KILLED when the sweep ends.
        tune.report(trial_report(done))
    if failed:
        tune.report({"seeds_done": float(len(done)), "objective": FAILED_SCORE, "failed": 1.0})


def record_seed(plan: Plan, trial: str, method: str, config_run: str, config: RunConfig,
                folder: Path, provenance: dict[str, str], wall: float | None, node: str,
                seed_run: str | None = None) -> None:
    """A finished seed's line in seeds.log (first: it is the sweep's own record, one line per
    finished seed, ever: trial, method, seed, wall time, Ray node) and its MLflow seed run. A seed
    found finished on disk but not recorded (its driver was killed in between) gets a new seed
    run with its curves read back from epochs.csv, and its line if it had none."""
    tracker, ledger = plan.runs.tracker, Path(plan.folder) / "seeds.log"
    name = f"{trial} {method} seed{config.seed} "
    if seed_run is None:
        if not (ledger.exists() and name in ledger.read_text()):
            with ledger.open("a") as log:
                log.write(f"{name}{outcome(method, folder).get('wall_s', 0.0):.1f}s {node} "
                          "(recorded on resume)\n")
        seed_run = plan.runs.seed(config_run, config.seed, provenance)
        with tracker.failing(seed_run):
            tracker.metrics(seed_run, seed_rows(folder))
    else:
        with ledger.open("a") as log:
            log.write(f"{name}{wall:.1f}s {node}\n")
    with tracker.failing(seed_run):
        log_seed(tracker, seed_run, flatten(config), folder, provenance)
        if wall is not None:
            tracker.metrics(seed_run, [{"wall_s": wall}])
    tracker.finish(seed_run)


def run_references(plan: Plan, split: Any, base: RunConfig) -> None:
    """The classical reference rows (openSMILE functionals + logistic regression; seconds) on the
    sweep's split with its seeds, before the first trial: the report, every configuration run
    and the sweep run carry them. Written as baselines/<row>/seed<k> (resumable like seeds)."""
    sweep = Path(plan.folder)
    for name, (method, config, _) in reference_runs({plan.method: (base, split)}).items():
        folder = sweep / "baselines" / name
        done = finished_seeds(folder)
        for seed in range(base.seed, base.seed + plan.seeds):
            if seed not in done:
                train_seed(method, dataclasses.replace(config, seed=seed), split,
                           folder / f"seed{seed}", quiet=True)
        plan.runs.reference(name, config, folder / f"seed{base.seed}", split.hash)
    plan.runs.tracker.metrics(plan.runs.sweep_run, [reference_metrics(sweep)])


# ----------------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------------

def domains(space: dict[str, Range]) -> dict[str, Any]:
    from ray import tune
    made = {}
    for key, rng in space.items():
        if rng.kind == "choice":
            made[key] = tune.choice(list(rng.values))
        elif rng.kind in ("int", "logint"):  # Tune's upper bound is exclusive, ours inclusive
            sample = tune.randint if rng.kind == "int" else tune.lograndint
            made[key] = sample(rng.values[0], rng.values[1] + 1)
        else:
            sample = tune.uniform if rng.kind == "uniform" else tune.loguniform
            made[key] = sample(*rng.values)
    return made


def trainable(args: argparse.Namespace, plan: Plan, split: Any) -> Any:
    from ray import tune
    workers = args.workers_per_trial or args.gpus_per_trial
    # With DDP workers the trial process only waits on its TorchTrainer, whose workers reserve
    # their own CPUs (and GPUs); it holds a sliver so it never starves them.
    resources = {"CPU": 0.1} if workers else {"CPU": args.cpus_per_trial}
    return tune.with_resources(tune.with_parameters(run_configuration, plan=plan, split=split),
                               resources)


# Ray Tune snapshots its experiment state (the trials it has started, Optuna's study) at most every
# 10 s by default ("auto"). A driver killed within that window forgets the trials it started since:
# --resume then starts new configurations in their place, and the forgotten trials' finished seeds
# stay on disk, orphaned. A snapshot every 2 s (the trials' JSON and the pickled study, small for
# sweeps of this size) makes the window shorter than any seed's training. TUNE_GLOBAL_CHECKPOINT_S
# in the environment overrides it.
STATE_SNAPSHOT_S = "2"


class StorageWatch:
    """Ends the sweep at the first trial that failed because its node does not see the sweep's
    storage (emoref.storage.StorageError): every trial placed on that node would fail the same
    way. `callback` sees the errors; `stopper` stops the Tuner; `message` is the trial's line."""

    def __init__(self) -> None:
        from ray import tune
        watch = self
        self.message: str | None = None

        class Seen(tune.Callback):
            def on_trial_recover(self, iteration: int, trials: list, trial: Any,
                                 **info: Any) -> None:
                watch.seen(trial)

            def on_trial_error(self, iteration: int, trials: list, trial: Any,
                               **info: Any) -> None:
                watch.seen(trial)

        class Stop(tune.Stopper):
            def __call__(self, trial_id: str, result: dict) -> bool:
                return False

            def stop_all(self) -> bool:
                return watch.message is not None

        self.callback, self.stopper = Seen(), Stop()

    def seen(self, trial: Any) -> None:
        self.message = self.message or storage_failure(trial.get_error() or "")


def storage_failure(error: str) -> str | None:
    """The one line of a StorageError in a trial's error text, or None."""
    import re
    found = re.search(r"StorageError: (.*)", error)
    return found.group(1).strip() if found else None


def progress(what: str, total: int, seeds: int) -> Any:
    """A Tune callback printing one line per finished seed: configurations done / total, time
    since the sweep started, and the best mean dev UA so far among complete configurations."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self) -> None:
            self.start, self.best, self.done = time.perf_counter(), None, set()

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                            **info: Any) -> None:
            complete = result.get("seeds_done", 0) >= seeds
            if complete:
                self.done.add(trial.trial_id)
                if self.best is None or result["objective"] > self.best[0]:
                    self.best = (result["objective"], trial.trial_id)
            best = (f"best mean dev UA {self.best[0]:.3f} ({self.best[1]})" if self.best
                    else "no configuration complete yet")
            print(f"[{what}] {len(self.done)}/{total} configurations done "
                  f"({trial.trial_id}: {int(result.get('seeds_done', 0))}/{seeds} seeds), "
                  f"{time.perf_counter() - self.start:.0f} s, {best}", flush=True)

    return Progress()


def tuner(args: argparse.Namespace, plan: Plan, split: Any, name: str, label: str,
          param_space: dict, total: int, **tune_config: Any) -> Any:
    """The Tuner of the sweep (name "tune") or of the baselines ("tune-baselines"), restored from
    its folder when it has run before, so finished trials are not run again."""
    from ray import tune
    path = Path(plan.folder) / name
    runnable = trainable(args, plan, split)
    watch = StorageWatch()
    if tune.Tuner.can_restore(str(path)) and (args.resume or name != "tune"):
        # A restored Tuner runs with its own (restored) copies of the callbacks and the stopper,
        # which still stop it early; fit() then reads the message from its errors.
        made = tune.Tuner.restore(str(path), trainable=runnable, resume_errored=True)
    else:
        made = tune.Tuner(
            runnable, param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=args.max_concurrent or None,
                                        **tune_config),
            run_config=tune.RunConfig(name=name, storage_path=plan.folder,
                                      failure_config=tune.FailureConfig(max_failures=1),
                                      callbacks=[progress(label, total, plan.seeds),
                                                 watch.callback],
                                      stop=watch.stopper, verbose=0 if args.quiet else 1))
    return made, watch


def fit(made: tuple[Any, StorageWatch]) -> None:
    """Runs a Tuner; raises StorageError when a trial's node could not see the sweep's storage."""
    tuner_, watch = made
    grid = tuner_.fit()
    message = watch.message or next(
        (m for m in (storage_failure(str(e)) for e in grid.errors) if m), None)
    if message:
        raise StorageError(message)


def run_sweep(args: argparse.Namespace, plan: Plan, split: Any, space: dict[str, Range],
              base: RunConfig) -> None:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    start = start_point(space, base)
    search = OptunaSearch(metric="objective", mode="max", seed=args.search_seed,
                          points_to_evaluate=[start] if start else None)
    scheduler = (ASHAScheduler(time_attr="seeds_done", metric="objective", mode="max",
                               max_t=plan.seeds, grace_period=1, reduction_factor=2)
                 if args.scheduler == "asha" else None)
    fit(tuner(args, plan, split, "tune", plan.method, {"method": plan.method, **domains(space)},
              args.num_samples, search_alg=search, scheduler=scheduler,
              num_samples=args.num_samples))


def run_baselines(args: argparse.Namespace, plan: Plan, split: Any) -> None:
    """IPR: baseline, baseline* and supervised at the best configuration's shared settings
    (encoder, optimiser, warm-up, beta ramp), with the same seeds on the same split, as three
    trials, for the paired tests of the report."""
    from ray import tune
    _, configs = read_sweep(plan.folder)  # all seeds finished first, then best objective
    if not configs or len(configs[0].seeds) < plan.seeds:
        print("no configuration finished all its seeds: baselines not run", flush=True)
        return
    best = configs[0]
    (Path(plan.folder) / "baselines").mkdir(exist_ok=True)
    marker = Path(plan.folder) / "baselines" / "best_trial.txt"
    if not marker.exists():
        marker.write_text(best.trial + "\n")
    fit(tuner(args, plan, split, "tune-baselines", "baselines",
              {**best.params, "method": tune.grid_search(list(VARIANTS))}, len(VARIANTS)))


# Paths and the runner's resources may differ on a resumed sweep (a new head, another mount);
# everything else of the base config must be what the sweep started with.
RESUME_MAY_DIFFER = ("corpus.root", "corpus.cache_dir", "dist.storage", "dist.cpus_per_worker")


def check_resumable(folder: Path, record: dict[str, Any], base: RunConfig) -> None:
    """--resume continues the sweep only with the code and the config it started with: exits 2
    naming what differs (the keys and both values; or both code digests and the sweep's commit)."""
    digest = code_digest()
    if record.get("code_digest", digest) != digest:
        fail(f"--resume: {folder} was started with other code (package digest "
             f"{record['code_digest'][:12]}, commit {record['git_sha']}); this checkout's is "
             f"{digest[:12]}: check out the sweep's commit to continue it, or start a new sweep")
    then = dict(o.split("=", 1) for o in record["base_config"])
    now = dict(o.split("=", 1) for o in as_overrides(base))
    differ = [k for k in sorted(set(then) | set(now))
              if then.get(k) != now.get(k) and k not in RESUME_MAY_DIFFER]
    if differ:
        fail(f"--resume: {folder} was started with another config: " + ", ".join(
            f"{k}={then.get(k)} (this command: {now.get(k)})" for k in differ[:6]) +
            (f" and {len(differ) - 6} more" if len(differ) > 6 else "") +
            f"; resume with --resume --name {folder.name} alone (its sweep.json has its options)")


def settle(args: argparse.Namespace) -> None:
    """The preset, space, overrides and options this command runs with. `--resume --name N`
    with no --preset, --config or key=value continues the sweep as it was started (sweep.json:
    its preset, the file's and command line's overrides, the runner's options); otherwise the
    --config file's preset= and space= lines apply unless the command line gives its own."""
    args.file = read_config_file(args.config)
    record: dict[str, Any] = {}
    if args.resume and args.name and not (args.overrides or args.preset or args.config):
        try:
            record = read_record(args.storage_path / args.name)
        except ConfigError as err:
            fail(f"--resume: {err}")
        args.preset, args.overrides = record["preset"], list(record["overrides"])
        print(f"--resume: with the sweep's own options: --preset {args.preset} "
              f"{' '.join(args.overrides)}", flush=True)
    file = args.file
    args.preset = args.preset or (file and file.preset) or "cpu"
    args.space = args.space or (file and file.space) or None
    for name, default in OPTIONS.items():
        if getattr(args, name) is None:
            setattr(args, name, record.get("options", {}).get(name, default))


def main(argv: list[str] | None = None) -> Path:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    settle(args)
    check_options(args)
    if args.plan:
        show_plan(args)
    base, space, split = resolve(args)
    try:
        folder = sweep_folder(args.storage_path, args.name, f"{args.method}-{base.corpus.name}-",
                              args.resume)
    except ConfigError as err:
        fail(str(err))
    if args.resume:
        if not (folder / "sweep.json").is_file():
            fail(f"--resume: {folder} holds no sweep (no sweep.json)")
        record = read_record(folder)
        if record["split_hash"] != split.hash or record["method"] != args.method:
            fail(f"--resume: {folder} is a {record['method']} sweep on split "
                 f"{record['split_hash']} (started with --preset {record['preset']} "
                 f"{' '.join(record['overrides'])}); this command gives {args.method} on "
                 f"{split.hash}: give the sweep's own options, or none (--resume --name "
                 f"{folder.name} takes them from its sweep.json)")
        check_resumable(folder, record, base)
        base = from_overrides(record["base_config"])
        args.seeds, args.num_samples = record["seeds"], record["num_samples"]
    elif (folder / "sweep.json").exists():
        fail(f"{folder} already holds a sweep; pass --resume to continue it or --name for a "
             "new one")
    # Everything the command line says is checked; now the tracking store (on --resume,
    # sweep.json's unless the command line or the environment names another), Ray (local, or the
    # cluster of RAY_ADDRESS), the GPUs a GPU setting needs, and on several nodes the storage
    # every node must share.
    uri = tracking_uri(args.tracking_uri, Path("runs"),
                       record.get("tracking_uri") if args.resume else None)
    try:
        check_server(uri)
    except ConfigError as err:
        fail(str(err))
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    ray_train.start_ray(echo=not args.quiet)
    try:  # the cluster's GPUs, and those of the node types it can start
        check_gpus(base, capacity(connect=True), setting_source(args.config, args.preset))
    except ConfigError as err:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        fail(str(err))
    storage = shared_storage(folder, uri, base, split)
    check_storage(storage, folder, created)
    # openSMILE features of the whole corpus into the cache, as Ray tasks on every core, so the
    # trials only read them; a file openSMILE cannot use stops here (or is skipped, and listed).
    try:
        split = prepare_split(args.method, base, echo=not args.quiet, storage=storage)
    except (*USER_ERRORS, StorageError) as err:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        fail(str(err))
    if args.resume and record["split_hash"] != split.hash:
        fail(f"--resume: {folder} was swept on split {record['split_hash']}; the corpus now "
             f"gives {split.hash}")
    if not args.resume:
        record = new_record(folder, args.method, base, args.preset,
                            [*(args.file.overrides if args.file else ()), *args.overrides], space,
                            args.seeds, args.num_samples, args.scheduler, args.search_seed,
                            split.hash, {name: getattr(args, name) for name in OPTIONS},
                            str(args.config) if args.config else None)
    print(f"sweep {folder}: {args.method}, {args.num_samples} configuration(s) x {args.seeds} "
          f"seed(s), split {split.hash}. {caveat(args.method, base, space)}", flush=True)
    runs = SweepRuns.open(uri, record, folder, split)
    plan = Plan(args.method, tuple(as_overrides(base)), args.seeds, str(folder), runs, storage)
    try:
        # Read by each Tuner's driver-side controller: the sweep's and the baselines'.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_SNAPSHOT_S)
        with runs.tracker.failing(runs.sweep_run):
            run_references(plan, split, base)
            run_sweep(args, plan, split, space, base)
            if args.method == "ipr" and not args.no_baselines:
                run_baselines(args, plan, split)
            text = write_report(folder)  # ConfigError when no configuration finished a seed
            runs.close(folder)
    except StorageError as err:  # fix the storage, then --resume: finished seeds are kept
        runs.close_stale()
        fail(f"{err} (then continue with --resume --name {folder.name})")
    except ConfigError as err:
        runs.close_stale()
        print(f"error: {err}; see the trials' errors under {folder / 'tune'}", file=sys.stderr)
        raise SystemExit(1) from None
    print("\n" + text, flush=True)
    print(f"report: {folder / 'report.md'}\nbest configuration: {folder / 'best.txt'}\n"
          f"MLflow: {runs.tracker.uri}, experiment {args.method}-{base.corpus.name}", flush=True)
    return folder


if __name__ == "__main__":
    main()
