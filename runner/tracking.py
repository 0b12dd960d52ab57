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
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

PARENT = "mlflow.parentRunId"
CHECKPOINT_ARTIFACT_MB = 64  # checkpoints up to this size are copied into the store; larger: path


def tracking_uri(given: str | None, runs: Path) -> str:
    """`given`, else $MLFLOW_TRACKING_URI, else sqlite under `runs`; a SQLite path made absolute."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or ""
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


def log_seed(tracker: Tracker, run_id: str, config_values: Mapping[str, Any],
             rows: Sequence[Mapping[str, float]], folder: Path, provenance: Mapping[str, str]
             ) -> None:
    """A finished seed: resolved config as params, provenance as tags, per-epoch curves, and
    its files (figures, D2 soft labels / EPR predictions, curves, config, checkpoint)."""
    tracker.params(run_id, config_values)
    tracker.tags(run_id, provenance)
    tracker.metrics(run_id, rows)
    tracker.artifact(run_id, folder / "figures", "figures")
    for name in ("table.csv", "epochs.csv", "confusion.json", "config.txt"):
        tracker.artifact(run_id, folder / name)
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.exists():
        tracker.tags(run_id, {"checkpoint": str(checkpoint.resolve())})
        if checkpoint.stat().st_size <= CHECKPOINT_ARTIFACT_MB * 2**20:
            tracker.artifact(run_id, checkpoint)
