"""One experiment step, shared by runner.train and runner.tune: the checked split a method trains on
(with the openSMILE features it reads put in the cache first), the classical reference rows that go
beside it, and one seed trained (here, or on Ray Train with config.workers > 0) into its folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from emoref import ray_train
from emoref.config import ConfigError, RunConfig, split_kinds
from emoref.data import opensmile_features
from emoref.data.corpora import load_manifest
from emoref.data.manifest import Manifest
from emoref.data.opensmile_features import Extraction
from emoref.data.splits import AmbiguitySplit, KFoldSplit, make_split
from emoref.methods import METHODS, reference
from emoref.methods.common import check_ambiguity_split
from emoref.models.encoders import check_weights
from emoref.record import ListReporter, Result, write_seed
from emoref.storage import SharedStorage

SHOWN = ("loss", "beta", "dev_ua", "d3_wa", "d3_ua", "agreement_prototype", "agreement_model",
         "train_loss", "val_loss", "fold_wa", "fold_ua")
# The reference rows every table carries (see reference_runs), by the split they go beside.
REFERENCE_ROWS = {"ambiguity": ("reference", "reference_supervised"), "kfold": ("reference_cv",)}


def split_kind(split: Any) -> str:
    return "kfold" if isinstance(split, KFoldSplit) else "ambiguity"


def extraction_jobs(config: RunConfig) -> list[Extraction]:
    """The openSMILE features a run reads: the reference's functionals (every table carries its
    row) and, with encoder.kind=opensmile, the trunk's input with its K augmented views."""
    jobs = [reference.job(config)]
    if config.encoder.kind == "opensmile":
        jobs.append(Extraction.of(config))
    return jobs


def check_resources(config: RunConfig) -> None:
    """What the config asks of this machine, before anything trains or Ray starts: the pretrained
    weights can be had (models.encoders.check_weights); gpu=true has a usable CUDA GPU here, unless
    a Ray cluster is configured (its GPU nodes may be elsewhere, or not started yet); bf16 on a GPU
    that has it. Raises ConfigError naming the key and the fix."""
    import torch
    check_weights(config.encoder)
    if not config.gpu or ray_train.cluster_address():
        return
    if not torch.cuda.is_available():
        raise ConfigError("gpu=true: this machine has no usable CUDA GPU (torch.cuda.is_available() "
                          f"is false; torch {torch.__version__}, CUDA build "
                          f"{torch.version.cuda or 'none'}) and no Ray cluster is configured "
                          "(RAY_ADDRESS, `ray start`); use gpu=false, or run on a GPU machine or "
                          "cluster")
    if config.train.precision == "bf16" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(0)
        major, minor = torch.cuda.get_device_capability(0)
        raise ConfigError(f"train.precision=bf16: {name} (compute capability {major}.{minor}) has "
                          "no bf16 support (it needs 8.0 or newer); use train.precision=fp16 or "
                          "fp32")


def prepare_split(method: str, config: RunConfig, manifests: dict | None = None,
                  extract: bool = True, echo: bool = True,
                  storage: SharedStorage | None = None) -> Any:
    """The split `method` trains on, checked (raises ConfigError or DataError on bad input), after
    `check_resources`.
    With `extract`, the openSMILE features of every utterance are then put in the cache (as Ray
    tasks when some are missing: see extract_features); a file openSMILE cannot use stops here
    or, with corpus.on_bad_audio=skip, is left out of the split. Every check comes first.
    `storage`: what each extraction task checks on its node first (emoref.storage)."""
    check_resources(config)
    manifests = {} if manifests is None else manifests
    if config.corpus not in manifests:  # methods differ in split, not in corpus
        manifests[config.corpus] = load_manifest(config.corpus)
    manifest = manifests[config.corpus]
    split = checked_split(method, config, manifest)
    if extract:
        kept = extract_features(manifest, config, echo, storage)
        if kept is not manifest:  # files openSMILE cannot use were left out: split the rest
            split = checked_split(method, config, kept)
    return split


def checked_split(method: str, config: RunConfig, manifest: Manifest) -> AmbiguitySplit | KFoldSplit:
    split = make_split(manifest, config.split)
    wanted = split_kinds(method)
    if split_kind(split) not in wanted:
        raise ConfigError(f"split.kind: {method} needs a {' or '.join(wanted)} split, got "
                          f"{config.split.kind!r}")
    if isinstance(split, AmbiguitySplit):
        check_ambiguity_split(split)
    return split


def extract_features(manifest: Manifest, config: RunConfig, echo: bool = True,
                     storage: SharedStorage | None = None) -> Manifest:
    """Fills the openSMILE cache for the whole corpus; when anything is missing, Ray is started
    (or joined: RAY_ADDRESS, a `ray start` node) and extraction runs as tasks on every core."""
    jobs = extraction_jobs(config)
    if any(opensmile_features.pending(manifest.utterances, job) for job in jobs):
        ray_train.start_ray(echo=False)
    return opensmile_features.prepare(manifest, jobs, config.corpus.on_bad_audio, echo=echo,
                                      storage=storage)


def reference_runs(prepared: dict[str, tuple[RunConfig, Any]]
                   ) -> dict[str, tuple[str, RunConfig, Any]]:
    """{row name: (method, config, split)}: the classical reference beside each family run here,
    on the same split: reference (D1) and reference_supervised (D1 + labelled D2) beside the IPR
    family, reference_cv (the same training folds) beside EPR."""
    runs = {}
    for method, (config, split) in prepared.items():
        if method.startswith("reference"):
            continue
        for row in REFERENCE_ROWS[split_kind(split)]:
            runs.setdefault(row, ("reference" if row == "reference_cv" else row, config, split))
    return {row: run for row, run in runs.items() if row not in prepared}


def train_seed(method: str, config: RunConfig, split: Any, folder: Path, quiet: bool = False,
               live: Callable[[dict[str, float]], None] | None = None,
               state_file: Path | None = None, state_every_s: float = 300.0
               ) -> tuple[Result, float]:
    """Train one seed (in this process, or on Ray Train when config.workers > 0) and write its
    folder (emoref.record), config.txt last. `live` receives each epoch's row as it is reported
    (Ray Train: from rank 0, during training). `state_file` (Ray Train only): where the run keeps
    a copy of its newest state and resumes from (ray_train.train); removed once the seed's folder
    is written. Returns the Result and the wall time in seconds."""
    tag = f"{method} seed {config.seed}"

    def echo(row: dict[str, float]) -> None:
        if live is not None:
            live(row)
        if not quiet:
            shown = "  ".join(f"{k} {row[k]:.3f}" for k in SHOWN if k in row)
            print(f"{tag} step {int(row['epoch']):3d}  {shown}", flush=True)

    start = time.perf_counter()
    if config.workers and not method.startswith("reference"):  # Ray Train: DDP over workers
        # Rank 0 prints each epoch (unless quiet) and sends its row to `live` as it trains; the
        # whole history comes back into `reporter` when training ends.
        reporter = ListReporter()
        result, _ = ray_train.train(method, config, split, reporter, echo=not quiet, live=live,
                                    state_file=state_file, state_every_s=state_every_s)
    else:
        reporter = ListReporter(live=echo)
        result = METHODS[method](config, split, reporter)
    wall = time.perf_counter() - start
    write_seed(folder, method, config, result, reporter.rows, reporter.extras, split.classes)
    if state_file is not None:  # the seed's outcome is in its folder now
        state_file.unlink(missing_ok=True)
    return result, wall
