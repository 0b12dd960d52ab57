"""MLflow records of a sweep: sweep run -> configuration runs -> seed runs (../shared/DESIGN.md).

Every write goes through `MlflowClient(uri)` with explicit run ids, so it works from any process
(the driver, a Tune trial) with no global "active run"; only the process that owns a run logs to
it (a seed's numbers come from rank 0's report history). Nesting is the `mlflow.parentRunId` tag.
The default store is an absolute SQLite URI, `sqlite:///<abs>/runs/mlflow.db`: a relative one would
make a new database in every Ray worker's working folder. Artifacts go to an absolute folder beside
it. A run whose code raises is marked FAILED with the error's summary in the tag `error`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from emoref.config import RunConfig, flatten
from emoref.data.splits import summary_line
from emoref.record import depth, reading, seed_rows, summed_confusion
from emoref.summary import aggregate, mean_std
from emoref.sweep import REFERENCES, baseline_outcomes, read_sweep

PARENT = "mlflow.parentRunId"
CHECKPOINT_ARTIFACT_MB = 64  # checkpoints up to this size are copied into the store; larger: path


def tracking_uri(given: str | None, runs: Path, recorded: str | None = None) -> str:
    """`given`, else $MLFLOW_TRACKING_URI, else `recorded` (a resumed sweep's, from sweep.json),
    else sqlite under `runs`; a SQLite path made absolute. After a lost head the store is reached
    through the new head's server, so what the command line or the environment says wins."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or recorded or ""
    if not uri:
        return f"sqlite:///{(runs / 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    return uri


@dataclass(frozen=True)
class Tracker:
    """A handle that pickles (just the URI) and opens a client where it is used."""

    uri: str

    @property
    def client(self) -> Any:
        from mlflow.tracking import MlflowClient
        return MlflowClient(self.uri)

    def experiment(self, name: str) -> str:
        """The experiment's id, created on first use with artifacts in an absolute folder."""
        client = self.client
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///"):])
            location = (db.parent / "mlartifacts" / name).as_uri()
        # The UI opens an experiment of this kind on its runs table (curves, figures, nesting),
        # not on the LLM-tracing overview it shows by default.
        kind = {"mlflow.experimentKind": "custom_model_development"}
        try:
            return client.create_experiment(name, artifact_location=location, tags=kind)
        except Exception:  # another process created it first
            return client.get_experiment_by_name(name).experiment_id

    def find(self, experiment: str, **tags: str) -> str | None:
        """The newest run with these tags (a resumed trial finds its configuration run)."""
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([experiment], query, order_by=["start_time DESC"],
                                       max_results=1)
        return runs[0].info.run_id if runs else None

    def start(self, experiment: str, name: str, parent: str | None = None,
              tags: Mapping[str, str] | None = None) -> str:
        tags = {**(tags or {}), **({PARENT: parent} if parent else {})}
        return self.client.create_run(experiment, run_name=name, tags=tags).info.run_id

    def reopen(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def params(self, run_id: str, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        items = [Param(str(k), str(v)[:6000]) for k, v in values.items()]
        existing = self.client.get_run(run_id).data.params
        items = [p for p in items if p.key not in existing]  # a param is written once
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i:i + 100])

    def metrics(self, run_id: str, rows: Sequence[Mapping[str, float]], step_key: str = "epoch"
                ) -> None:
        """Each row's numbers at step row[step_key] (per-epoch curves)."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(row.get(step_key, 0)))
                 for row in rows for k, v in row.items()
                 if k != step_key and isinstance(v, (int, float)) and v == v]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i:i + 1000])

    def tags(self, run_id: str, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.client.set_tag(run_id, key, str(value)[:5000])

    def artifact(self, run_id: str, path: Path, folder: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), folder)
        elif path.exists():
            self.client.log_artifact(run_id, str(path), folder)

    def finish(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "FINISHED")

    def fail(self, run_id: str, error: BaseException) -> None:
        summary = "".join(traceback.format_exception_only(type(error), error)).strip()
        self.tags(run_id, {"error": summary})
        self.client.set_terminated(run_id, "FAILED")

    @contextlib.contextmanager
    def failing(self, run_id: str) -> Iterator[None]:
        """Marks the run FAILED (and re-raises) if the block raises; never leaves it RUNNING."""
        try:
            yield
        except BaseException as err:
            self.fail(run_id, err)
            raise


def log_seed(tracker: Tracker, run_id: str, config_values: Mapping[str, Any], folder: Path,
             provenance: Mapping[str, str]) -> None:
    """A finished seed: resolved config as params, provenance as tags, and its files (figures, D2
    soft labels / EPR predictions, curves, config, checkpoint). Its per-epoch curves were logged
    while it trained (LiveCurves)."""
    tracker.params(run_id, config_values)
    tracker.tags(run_id, provenance)
    tracker.artifact(run_id, folder / "figures", "figures")
    for name in ("table.csv", "epochs.csv", "confusion.json", "config.txt"):
        tracker.artifact(run_id, folder / name)
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.exists():
        tracker.tags(run_id, {"checkpoint": str(checkpoint.resolve())})
        if checkpoint.stat().st_size <= CHECKPOINT_ARTIFACT_MB * 2**20:
            tracker.artifact(run_id, checkpoint)


@dataclass(frozen=True)
class LiveCurves:
    """Logs each epoch's row to a seed run as the seed trains (pickles: a Ray Train worker's rank 0
    logs from its own process), so the MLflow UI shows the curves growing during a long run."""

    tracker: Tracker
    run_id: str

    def __call__(self, row: Mapping[str, float]) -> None:
        self.tracker.metrics(self.run_id, [row])


def run_title(method: str, trial: str, params: Mapping[str, Any]) -> str:
    """A configuration run's name in the runs table: the method, its trial, and the values that
    differ between configurations (the searched ones), e.g. `ipr 631b04e3 gamma=0.954 tau=0.139`."""
    values = " ".join(f"{key.rsplit('.', 1)[-1]}={value:.3g}" if isinstance(value, float)
                      else f"{key.rsplit('.', 1)[-1]}={value}" for key, value in params.items())
    return f"{method} {trial} {values}".strip()


@dataclass(frozen=True)
class SweepRuns:
    """A sweep's MLflow runs: the sweep run, one configuration run per trial under it, one seed
    run per seed under that (and one run per classical reference row). Pickles (a URI and ids)."""

    tracker: Tracker
    experiment: str  # <method>-<corpus>
    sweep_run: str

    @classmethod
    def open(cls, uri: str, record: dict, folder: Path, split: Any) -> "SweepRuns":
        """The sweep's run: created with the sweep (its id kept in sweep.json), reopened by
        --resume, where runs the killed driver left RUNNING are first marked KILLED."""
        tracker = Tracker(uri)
        experiment = tracker.experiment(f"{record['method']}-{record['corpus']}")
        if record.get("sweep_run"):
            runs = cls(tracker, experiment, record["sweep_run"])
            runs.close_stale()
            tracker.reopen(runs.sweep_run)
            return runs
        sweep_run = tracker.start(experiment, folder.name, tags={
            "emoref.kind": "sweep", "git_sha": record["git_sha"], "split_hash": split.hash,
            "corpus_summary": summary_line(split), "folder": str(folder)})
        tracker.params(sweep_run, {
            "method": record["method"], "preset": record["preset"], "seeds": record["seeds"],
            "num_samples": record["num_samples"], "objective": record["objective"],
            "scheduler": record["scheduler"], "search_seed": record["search_seed"],
            "overrides": " ".join(record["overrides"]),
            **{f"space.{k}": v for k, v in record["space"].items()}})
        record.update(tracking_uri=tracker.uri, sweep_run=sweep_run)
        (folder / "sweep.json").write_text(json.dumps(record, indent=2))
        return cls(tracker, experiment, sweep_run)

    def configuration(self, trial: str, method: str, params: Mapping[str, Any]) -> str:
        """A trial's configuration run, found again (and reopened) when a restored trial resumes."""
        tags = {"emoref.trial": trial, "emoref.method": method}
        run = self.tracker.find(self.experiment, **{PARENT: self.sweep_run, **tags})
        if run:
            self.tracker.reopen(run)
        else:
            run = self.tracker.start(self.experiment, run_title(method, trial, params),
                                     parent=self.sweep_run,
                                     tags={"emoref.kind": "configuration", **tags})
        self.tracker.params(run, params)
        return run

    def seed(self, config_run: str, seed: int, provenance: Mapping[str, str]) -> str:
        return self.tracker.start(self.experiment, f"seed{seed}", parent=config_run,
                                  tags={**provenance, "seed": str(seed)})

    def seed_recorded(self, config_run: str, seed: int) -> bool:
        """Whether the configuration run has a FINISHED run of this seed (a driver killed
        between a seed's last file and its MLflow record leaves none)."""
        runs = self.tracker.client.search_runs(
            [self.experiment], f"tags.`{PARENT}` = '{config_run}' and tags.seed = '{seed}' and "
            "attributes.status = 'FINISHED'", max_results=1)
        return bool(runs)

    def reference(self, name: str, config: RunConfig, first: Path, split_hash: str) -> None:
        """A classical reference row's run (once): its settings, its first seed's numbers and
        files; the sweep run gets every row's mean (reference_metrics)."""
        tracker = self.tracker
        if tracker.find(self.experiment, **{PARENT: self.sweep_run, "emoref.method": name}):
            return
        run = tracker.start(self.experiment, name, parent=self.sweep_run, tags={
            "emoref.kind": "reference", "emoref.method": name, "split_hash": split_hash})
        tracker.params(run, {k: v for k, v in flatten(config).items()
                             if k.startswith(("reference.", "corpus.", "split."))})
        tracker.metrics(run, seed_rows(first))
        for file in ("confusion.json", "table.csv"):
            tracker.artifact(run, first / file)
        tracker.artifact(run, first / "figures", "figures")
        tracker.finish(run)

    def close_stale(self) -> None:
        """Configuration and seed runs of this sweep still RUNNING: their process is gone (a
        killed driver, or a trial Tune stopped early). Marked KILLED, so none stays RUNNING."""
        client = self.tracker.client
        for run in client.search_runs([self.experiment], f"tags.`{PARENT}` = '{self.sweep_run}'"):
            for child in client.search_runs([self.experiment],
                                            f"tags.`{PARENT}` = '{run.info.run_id}'"):
                if child.info.status == "RUNNING":
                    client.set_terminated(child.info.run_id, "KILLED")
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")

    def close(self, folder: Path) -> None:
        """The report, best configuration and best scores on the sweep run; then FINISHED."""
        self.close_stale()
        for name in ("report.md", "report.csv", "best.txt", "sweep.json"):
            self.tracker.artifact(self.sweep_run, folder / name)
        _, configs = read_sweep(folder)
        best = configs[0]  # as in the report: all seeds finished first, then best objective
        row = {"configurations": float(len(configs))}
        for key in ("dev", "test_wa", "test_ua", "test_f1"):
            row[f"best.{key}.mean"], row[f"best.{key}.std"] = best.stat(key)
        self.tracker.metrics(self.sweep_run, [row])
        self.tracker.tags(self.sweep_run, {"best_trial": best.trial})
        self.tracker.finish(self.sweep_run)


@dataclass(frozen=True)
class TrainRuns:
    """A runner.train command's MLflow runs, in a sweep's layout: one run for the command (kind
    "train"; its preset, experiment file, overrides and summary), one configuration run per
    results row under it (a method, a --label row, a classical reference row), one seed run per
    seed under that. Pickles (a URI and ids)."""

    tracker: Tracker
    experiment: str  # <first method>-<corpus>
    command_run: str

    @classmethod
    def open(cls, uri: str, experiment: str, title: str, params: Mapping[str, Any],
             tags: Mapping[str, str]) -> "TrainRuns":
        tracker = Tracker(uri)
        found = tracker.experiment(experiment)
        run = tracker.start(found, title, tags={"emoref.kind": "train", **tags})
        tracker.params(run, params)
        return cls(tracker, found, run)

    def row(self, name: str, method: str) -> str:
        return self.tracker.start(self.experiment, name, parent=self.command_run, tags={
            "emoref.kind": "configuration", "emoref.method": method, "emoref.row": name})

    def seed(self, row_run: str, seed: int, provenance: Mapping[str, str]) -> str:
        return self.tracker.start(self.experiment, f"seed{seed}", parent=row_run,
                                  tags={**provenance, "seed": str(seed)})

    def close(self, files: Sequence[Path], failed: BaseException | None = None) -> None:
        for path in files:
            self.tracker.artifact(self.command_run, path)
        if failed is None:
            self.tracker.finish(self.command_run)
        else:
            self.tracker.fail(self.command_run, failed)


def log_configuration(tracker: Tracker, run_id: str, method: str, folder: Path,
                      done: dict[int, dict[str, float]]) -> None:
    """Mean and std over the finished seeds of every final metric (step = seeds finished), and
    the figures aggregated over seeds."""
    import matplotlib.pyplot as plt
    from emoref import figures  # matplotlib: imported by the processes that draw, only
    n = len(done)
    row: dict[str, float] = {"seeds_done": float(n), "seeds": float(n)}
    for key, stat in aggregate(list(done.values())).items():
        row[f"{key}.mean"], row[f"{key}.std"] = stat["mean"], stat["std"]
    row.update(reference_metrics(folder.parents[1]))  # the classical reference rows, alongside
    tracker.metrics(run_id, [row], step_key="seeds_done")
    seeds = [folder / f"seed{seed}" for seed in done]
    runs = [seed_rows(seed) for seed in seeds]
    if reading(method).figures == "profiles":  # EPR: scores after every refinery stage
        stages = depth(next(iter(done.values())), prefix="final.")
        made = {"stage_scores": figures.stage_scores(
            [{k[len("final."):]: v for k, v in r.items() if k.startswith("final.")}
             for r in done.values()], stages)}
        confusion = f"stage{stages}"
    else:
        made = {"agreement_mean": figures.mean_curves(
                    runs, {"agreement_prototype": "prototype-assigned",
                           "agreement_model": "model-generated"}, "agreement with hidden D2 labels"),
                "dev_d3_mean": figures.mean_curves(runs, {"dev_ua": "dev UA", "d3_ua": "D3 UA"},
                                                   "UA")}
        confusion = "d3"
    summed = summed_confusion(seeds, confusion)
    if summed:
        classes, matrix = summed
        made[f"{confusion}_confusion_sum"] = figures.confusion_matrix(
            matrix, classes, f"{confusion.upper()} confusion\n{n} seeds summed, row shares",
            normalise=True)
        if any(k.startswith("similarity.") for rows in runs for r in rows for k in r):
            made["prototype_similarity_mean"] = figures.similarity_curves(runs, classes)
    for name, fig in made.items():
        tracker.client.log_figure(run_id, fig, f"figures/{name}.png")
        plt.close(fig)


def reference_metrics(sweep: Path) -> dict[str, float]:
    """<row>.test_<m>.mean of each classical reference row the sweep computed (run_references)."""
    out = {}
    for name, seeds in baseline_outcomes(sweep).items():
        if name in REFERENCES:
            for m in ("wa", "ua", "f1"):
                out[f"{name}.test_{m}.mean"] = mean_std([r[f"test_{m}"] for r in seeds.values()])[0]
    return out
