"""EPR: emotion profile refinery (papers/001_fe5d044a6f71e6c0.txt; Sec. and Eq. numbers inline).

k-fold cross-validation. At each stage freshly initialised VGGs are trained on 32-frame segments:
stage 1 on the utterance label copied to every segment, stage t > 1 on targets refined from stage
t - 1's emotion profiles (sEPR, pEPR or a Table 3 ablation). Statistics of each utterance's
profiles feed a random forest that labels each test fold. `epr.protocol` decides which network
produces which profile (`plan`): `paper` cross-fits every profile over the folds, as Sec. 4.1
does; `nested` cross-fits inside each fold's training folds, so no test label reaches a training
target; `in_sample` gives each fold its own chain, which learns from its own fitted outputs.
Under every protocol a test fold's audio never reaches a gradient step or early stopping of the
networks that label it, and the forest that labels it never fits it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

from emoref.config import ConfigError, RunConfig
from emoref.data.features import logmel_frames, spec_key
from emoref.data.segments import SegmentBank, bank_from_frames
from emoref.data.splits import KFoldSplit
from emoref.methods import epr_math
from emoref.runtime import LOCAL, Runtime, restore_rng, rng_state
from emoref.methods.common import check_finite, label_array, soft_cross_entropy
from emoref.record import Reporter, Result
from emoref.metrics import classification_report
from emoref.models.vgg import VGG
from emoref.provenance import code_digest, digest


def stage_seed(seed: int, fold: int, stage: int, inner: int = -1) -> int:
    """A distinct, reproducible seed for each (run seed, fold, stage[, inner part]) network."""
    key = f"{seed}/{fold}/{stage}" + (f"/{inner}" if inner >= 0 else "")
    return zlib.crc32(key.encode())


def new_network(config: RunConfig, n_classes: int, seed: int) -> VGG:
    """A freshly initialised VGG: every stage starts from scratch (Sec. 4.2: "a randomly-initialized
    instance of VGG network"), never from the previous stage's weights."""
    torch.manual_seed(seed)
    e = config.epr
    return VGG(e.vgg, n_classes, width=e.width, fc=e.fc, dropout=e.dropout,
               batch_norm=e.batch_norm, input_size=(config.audio.segment_frames, config.audio.n_mels))


def fingerprint(network: torch.nn.Module) -> float:
    """A number that identifies a network's weights (tests use it to see fresh initialisation)."""
    return float(sum(p.detach().double().sum() for p in network.parameters()))


# ----------------------------------------------------------------------------------------------------
# Stage 1, trained once per key
# ----------------------------------------------------------------------------------------------------

# The settings stage 1 does not read: it trains on the utterance label alone (targets = one-hot),
# its networks are planned per fold whatever the protocol (under nested, the inner parts' networks
# are told apart by their training utterances, which are in the key), and the forests, statistics
# and figures come after it. Everything else in the config is part of the key.
STAGE1_FREE = ("labels", "mix_weight", "depth", "protocol", "inner_folds", "statistics",
               "forest_trees", "forest_fit", "figure_utterance", "figure_count", "cache",
               "reuse_stage1")
# Bump when what a stored network means changes: old entries are then simply not found.
STAGE1_FORMAT = 1


class Stage1Store:
    """Trained stage-1 networks on disk (epr.reuse_stage1), one file per key: the best epoch's
    weights and the per-epoch metrics, replayed to the reporter on a hit so a run's curves are
    whole. The key hashes the config less STAGE1_FREE, the network's seed, the ids of the
    utterances it fits and early-stops on, the log-Mel frames (a digest of the values themselves),
    the ranks, device and precision, and the package's sources (`code_digest`): a stored network
    is one that training would give again, bit for bit on the same kind of processor
    (tests/methods/test_epr_fit.py; another CPU's floating-point reductions give another network
    from the first epoch on, docs/results.md, nested pEPR)."""

    def __init__(self, config: RunConfig, bank: SegmentBank, runtime: Runtime) -> None:
        settings = dataclasses.asdict(config)
        for name in STAGE1_FREE:
            del settings["epr"][name]
        self.base = {"format": STAGE1_FORMAT, "code": code_digest(), "config": settings,
                     "frames": digest([bank.frames, torch.from_numpy(bank.starts)]),
                     "world": runtime.world, "device": runtime.device.type,
                     "precision": runtime.precision}
        self.dir = Path(config.corpus.cache_dir).expanduser() / "networks" / "epr-stage1"
        self.runtime = runtime

    def key(self, seed: int, fit_ids: list[str], val_ids: list[str]) -> str:
        return spec_key({**self.base, "seed": seed, "fit": fit_ids, "val": val_ids})

    def load(self, key: str) -> dict[str, Any] | None:
        """The stored network, or None; every rank gets rank 0's answer (a file written by a
        concurrent run between two ranks' looks must not split them into training and not)."""
        path = self.dir / f"{key}.pt"
        found = self.runtime.broadcast(torch.tensor([int(path.is_file())]))
        if not bool(found.item()):
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(stored, dict) or {"model", "history"} - set(stored):
                raise ValueError("expected a dict with 'model' and 'history'")
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
            raise OSError(f"{path}: unreadable stored stage-1 network ({err}); delete it and run "
                          "again") from None
        return stored

    def save(self, key: str, network: VGG, history: list[dict[str, float]]) -> None:
        """Written by rank 0, atomically (a reader never sees half a file; two runs that both
        trained the same key write the same bytes)."""
        if self.runtime.rank != 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".pt.tmp")
        with os.fdopen(fd, "wb") as handle:
            torch.save({"model": network.state_dict(), "history": history}, handle)
        os.replace(tmp, self.dir / f"{key}.pt")


# ----------------------------------------------------------------------------------------------------
# Which network produces which profile
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Job:
    """One network of every stage: what it trains on and whose profiles it produces."""

    fold: int  # the outer fold it belongs to (its position in split.folds)
    inner: int  # protocol=nested: its part of the fold's training folds; -1: the fold's network
    chain: int  # the profile table it reads stage t - 1's targets from and writes stage t's to
    train: np.ndarray  # utterance positions it learns from (its early-stopping share included)
    serves: np.ndarray  # utterance positions whose profiles it produces


def plan(protocol: str, tests: list[np.ndarray], trains: list[np.ndarray],
         parts: Callable[[int], list[np.ndarray]]) -> list[Job]:
    """Every stage's networks, in training order, for `tests[k]`/`trains[k]` (the utterance
    positions of fold k's test and training folds); `parts(k)` cuts fold k's training folds into
    inner parts (nested only).

    paper:     one table; fold k's network trains on trains[k] and profiles tests[k]. The test
               folds cover the corpus, so every profile is cross-fitted.
    nested:    a table per fold; a network per inner part trains on the rest of trains[k] and
               profiles that part, and fold k's network trains on trains[k] and profiles tests[k].
    in_sample: a table per fold; fold k's network profiles every utterance it trained on and
               tests[k].
    """
    jobs = []
    for k, (test, train) in enumerate(zip(tests, trains)):
        chain = 0 if protocol == "paper" else k
        if protocol == "nested":
            jobs += [Job(k, i, chain, np.setdiff1d(train, part), part)
                     for i, part in enumerate(parts(k))]
        serves = np.union1d(train, test) if protocol == "in_sample" else test
        jobs.append(Job(k, -1, chain, train, serves))
    return jobs


def inner_parts(train: np.ndarray, labels: np.ndarray, speakers: np.ndarray, n: int, by: str,
                rng: np.random.Generator) -> list[np.ndarray]:
    """`train` cut into n parts the way the outer folds were cut: whole speakers (split.fold_by=
    speaker) or stratified by label (random), dealt round robin after a seeded shuffle."""
    part = np.empty(len(train), dtype=int)
    if by == "speaker":
        names = rng.permutation(sorted(set(speakers[train].tolist())))
        if len(names) < n:
            raise ConfigError(f"epr.inner_folds={n} needs at least {n} speakers in every fold's "
                             f"training folds; one has {len(names)}")
        of = {name: i % n for i, name in enumerate(names)}
        part[:] = [of[s] for s in speakers[train]]
    else:
        dealt = 0
        for c in np.unique(labels[train]):
            members = rng.permutation(np.flatnonzero(labels[train] == c))
            part[members] = (dealt + np.arange(len(members))) % n
            dealt += len(members)
    return [train[part == i] for i in range(n)]


def figure_ids(split: KFoldSplit, config: RunConfig) -> list[str]:
    """The utterances drawn across stages: epr.figure_utterance, then the first test utterance of
    each class not drawn yet, in fold order, up to epr.figure_count."""
    e = config.epr
    chosen = [e.figure_utterance] if e.figure_utterance else []
    drawn = {u.label for f in split.folds for u in f.test if u.id in chosen}
    if chosen and not drawn:
        raise ConfigError(f"epr.figure_utterance={e.figure_utterance}: no test fold of this split "
                         "holds that utterance id")
    for u in (u for f in split.folds for u in f.test):
        if len(chosen) >= e.figure_count:
            break
        if u.label not in drawn:
            chosen.append(u.id)
            drawn.add(u.label)
    return chosen


# ----------------------------------------------------------------------------------------------------
# The refinery
# ----------------------------------------------------------------------------------------------------

def fit(config: RunConfig, split: KFoldSplit, reporter: Reporter, runtime: Runtime = LOCAL
        ) -> Result:
    """EPR over the split's folds: stage by stage, every network of the protocol's plan, then each
    fold's forest; a restarted worker group resumes where its checkpoint left off."""
    run = prepare(config, split, reporter, runtime)
    progress = Progress.resumed(run, runtime.resume) or Progress.start(run)
    for stage in range(progress.stage, config.epr.depth + 1):
        progress.stage = stage
        train_networks(run, progress)  # ---- stage 1 on the labels, then the refinery (Eq. 4)
        decide(run, progress)          # ---- each fold's forest over the stage's profiles
        progress.next_stage(run)
    return evaluate(run, progress)     # ---- every utterance predicted once (Tables 2-4)


@dataclass(frozen=True, eq=False)
class Run:
    """What every stage of one fit shares, set up once: the layout, the segments, the networks
    of the protocol's plan with their early-stopping shares, the stage-1 store."""

    config: RunConfig
    split: KFoldSplit
    reporter: Reporter
    runtime: Runtime
    at: Layout
    bank: SegmentBank
    onehot: torch.Tensor  # (S, K) each segment's utterance label
    jobs: list[Job]
    # per job: (fit utterances, early-stopping utterances, their segments, input standardisation)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]]
    outer: dict[int, int]  # fold -> the job of the fold's own network
    chains: list[int]
    figures: list[str]  # utterance ids whose profiles are drawn
    store: Stage1Store | None
    own_fit: bool  # epr.forest_fit=fold_network: forests fit the fold network's own profiles

    def tables(self, keys: Any) -> dict[int, torch.Tensor]:
        """A profile table (S, K) per key, NaN until a network fills its rows."""
        return {k: torch.full((len(self.bank.starts), len(self.split.classes)), float("nan"))
                for k in keys}

    def empty(self) -> dict[int, torch.Tensor]:  # per chain: the stage's profiles
        return self.tables(self.chains)

    def empty_own(self) -> dict[int, torch.Tensor]:  # per fold: its network's own profiles
        return self.tables(self.outer) if self.own_fit else {}


def prepare(config: RunConfig, split: KFoldSplit, reporter: Reporter, runtime: Runtime) -> Run:
    epr, at = config.epr, layout(split)
    if epr.protocol == "paper" and (at.home < 0).any():
        raise ConfigError("epr.protocol=paper cross-fits every training utterance's profile, so "
                         "the test folds must cover the corpus; this split's folds leave "
                         f"{int((at.home < 0).sum())} utterances out (use nested or in_sample)")
    # Log-Mel frames from the feature cache every trial, seed and fold shares (epr.cache).
    bank = bank_from_frames(logmel_frames(at.utterances, config, cache=epr.cache), config.audio)
    onehot = F.one_hot(torch.from_numpy(at.labels[bank.owner]), len(split.classes)).float()
    jobs = plan(epr.protocol, at.tests, at.trains, lambda k: inner_parts(
        at.trains[k], at.labels, at.speakers, epr.inner_folds, split.by,
        np.random.default_rng([config.seed, split.folds[k].index, 1])))
    # Per network: its early-stopping share (whole utterances; the fold's network holds out the
    # same utterances at every stage, and those score the dev forest) and input standardisation.
    held = []
    for job in jobs:
        fit_utts, val_utts = early_stopping_share(config, split.folds[job.fold].index, job.train,
                                                  at.labels, job.inner)
        fit_segs, val_segs = bank.of(fit_utts), bank.of(val_utts)
        held.append((fit_utts, val_utts, fit_segs, val_segs, normaliser(bank, fit_segs)))
    return Run(config, split, reporter, runtime, at, bank, onehot, jobs, held,
               {job.fold: j for j, job in enumerate(jobs) if job.inner < 0},
               sorted({job.chain for job in jobs}), figure_ids(split, config),
               Stage1Store(config, bank, runtime) if epr.reuse_stage1 else None,
               epr.forest_fit == "fold_network" and epr.protocol != "in_sample")


@dataclass
class Progress:
    """Where a fit stands: everything a restarted worker group resumes from. Its checkpoint
    holds `state()`, a plain dict of tensors (read with weights_only=True)."""

    stage: int  # the stage in hand, 1-based
    job: int  # the stage's next network; len(jobs) once its forests are done
    network: dict[str, Any] | None  # a network's state mid-training (train_network resumes it)
    previous: dict[int, torch.Tensor]  # stage t - 1's profiles, per chain
    tables: dict[int, torch.Tensor]  # stage t's profiles so far, per chain
    own: dict[int, torch.Tensor]  # forest_fit=fold_network: each fold network's own profiles
    figure_profiles: dict[str, list[list[list[float]]]]  # drawn utterances' profiles per stage
    predicted: np.ndarray  # (depth, U) each stage's forest decision, -1 until made
    # The same utterances decided without the forest: the argmax of the mean emotion profile,
    # from the profiles the forest reads for it. Not the paper's decision; kept beside it
    # (argmax_stage<t>_wa/ua, table.csv) to measure what the forest adds under each protocol.
    argmax: np.ndarray
    dev: np.ndarray  # (depth, folds) dev UA, the model-selection signal sweeps optimise
    step: int  # the reporter's next step
    reused: int  # stage-1 networks loaded from the store, not trained

    @classmethod
    def start(cls, run: Run) -> "Progress":
        depth, n = run.config.epr.depth, len(run.at.utterances)
        predicted = np.full((depth, n), -1)
        return cls(1, 0, None, None, run.empty(), run.empty_own(), {u: [] for u in run.figures},
                   predicted, np.full_like(predicted, -1),
                   np.full((depth, len(run.split.folds)), np.nan), 0, 0)

    @classmethod
    def resumed(cls, run: Run, saved: dict[str, Any] | None) -> "Progress | None":
        """The checkpoint's progress (a stage whose forests are done goes on with the next)."""
        if not saved:
            return None
        progress = cls(saved["stage"], saved["job"], saved["network"], saved["previous"],
                       saved["tables"], saved.get("own", {}), saved["figure_profiles"],
                       saved["predicted"].numpy().copy(), saved["argmax"].numpy().copy(),
                       saved["dev"].numpy().copy(), saved["step"], saved.get("reused", 0))
        if progress.job == len(run.jobs):
            progress.stage += 1
            progress.next_stage(run)
        return progress

    def next_stage(self, run: Run) -> None:
        self.job, self.previous, self.tables, self.own = 0, self.tables, run.empty(), \
            run.empty_own()

    def state(self, job: int, network: dict[str, Any] | None) -> dict[str, Any]:
        """The checkpoint's cursor (the stage, the network `job`, its mid-training state) and
        everything computed so far."""
        return {"stage": self.stage, "job": job, "network": network, "previous": self.previous,
                "tables": self.tables, "own": self.own, "figure_profiles": self.figure_profiles,
                "predicted": torch.from_numpy(self.predicted.copy()),
                "argmax": torch.from_numpy(self.argmax.copy()),
                "dev": torch.from_numpy(self.dev.copy()), "step": self.step + 1,
                "reused": self.reused}


def train_networks(run: Run, progress: Progress) -> None:
    """The stage's networks from `progress.job` on, each on its targets (stage 1: the label copied
    to every segment, Sec. 2.2; stage t > 1: refined from the previous stage's profiles of its
    chain, Eq. 4), each profiling the utterances it serves into its chain's table. A stage-1
    network another row of the seed trained is loaded from the store, its curves replayed."""
    config, epr, stage, split = run.config, run.config.epr, progress.stage, run.split
    refined: dict[int, torch.Tensor] = {}
    for j in range(progress.job, len(run.jobs)):
        job, (fit_utts, val_utts, fit_segs, val_segs, norm) = run.jobs[j], run.held[j]
        targets = run.onehot
        if stage > 1:  # computed from identical gathered profiles, rank 0's copy sent to all
            if job.chain not in refined:
                refined[job.chain] = run.runtime.broadcast(epr_math.refine_targets(
                    progress.previous[job.chain], run.onehot, run.bank.owner, epr.labels,
                    epr.mix_weight))
            targets = refined[job.chain]
        seed = stage_seed(config.seed, split.folds[job.fold].index, stage, job.inner)
        network = new_network(config, len(split.classes), seed)
        # Stage 1's epochs, for the store; a network resumed mid-training gets back those its
        # checkpoint carries, so it is stored whole too (training it again would give the same
        # bits: tests/methods/test_epr_fit.py). Checkpoints from before they carried them have
        # none: such a network is not stored, and a later row trains it again.
        resume = progress.network
        history = list(resume["history"]) if resume and "history" in resume else []
        report_epoch = epoch_reporter(run, progress, j, job, stage, fingerprint(network), history)
        key = run.store.key(seed, [run.at.utterances[i].id for i in fit_utts],
                            [run.at.utterances[i].id for i in val_utts]) \
            if run.store and stage == 1 else ""
        stored = run.store.load(key) if key and resume is None else None
        if stored is not None:
            network.load_state_dict(stored["model"])
            for epoch, metrics in stored["history"]:
                report_epoch(epoch, metrics, None)
            progress.reused += 1
        else:
            train_network(network, run.bank, fit_segs, val_segs, targets,
                          run.at.labels[run.bank.owner], norm, config, report_epoch, run.runtime,
                          resume)
            if key and (resume is None or "history" in resume):
                run.store.save(key, network, history)
        progress.network = None
        serves = run.bank.of(job.serves)
        progress.tables[job.chain][serves] = predict_profiles(
            network, run.bank, norm, epr.batch_size, serves, run.runtime)
        if run.own_fit and job.inner < 0:
            fitted = run.bank.of(job.train)
            progress.own[job.fold][fitted] = predict_profiles(
                network, run.bank, norm, epr.batch_size, fitted, run.runtime)


def epoch_reporter(run: Run, progress: Progress, j: int, job: Job, stage: int, init: float,
                   history: list) -> Callable[..., None]:
    """The callback train_network reports each epoch to: the reporter's row (where: fold, stage,
    inner part) and, for a checkpoint, the cursor at this network with its state so far."""
    where = {"fold": float(run.split.folds[job.fold].index), "stage": float(stage),
             **({"inner": float(job.inner)} if job.inner >= 0 else {})}

    def report_epoch(epoch: int, metrics: dict[str, float],
                     state: Callable[[], dict[str, Any]] | None) -> None:
        history.append((epoch, metrics))
        # A replayed network's checkpoint resumes at its start: the store serves it again.
        run.reporter(progress.step, {**where, "stage_epoch": float(epoch), **metrics},
                     {"init_fingerprint": init} if epoch == 0 else {},
                     state=lambda: progress.state(j, {**state(), "history": list(history)}
                                                  if state else None))
        progress.step += 1

    return report_epoch


def decide(run: Run, progress: Progress) -> None:
    """Utterance decision: profile statistics -> random forest (Sec. 2, 4.1), fitted on fold k's
    training utterances and labelling its test fold; the same inputs and seed on every rank, so
    the same forest everywhere. Under `paper` this is the paper's "another ten-fold
    cross-validation" over the cross-fitted profiles, on the same folds (so speaker-independent
    folds stay so). Beside it: the argmax of the mean profile, and the dev UA."""
    config, epr, stage, at, bank = run.config, run.config.epr, progress.stage, run.at, run.bank
    n, n_classes = len(at.utterances), len(run.split.classes)
    features = {c: epr_math.utterance_features(progress.tables[c].numpy(), bank.owner, n,
                                               epr.statistics) for c in run.chains}
    means = {c: epr_math.utterance_features(progress.tables[c].numpy(), bank.owner, n,
                                            ("mean",)) for c in run.chains}
    for k, fold in enumerate(run.split.folds):
        chain = run.jobs[run.outer[k]].chain
        x, (fit_utts, val_utts, *_) = features[chain], run.held[run.outer[k]]
        if run.own_fit:  # the training utterances as the fold network itself profiles them
            x = x.copy()
            fitted = bank.of(at.trains[k])
            x[at.trains[k]] = epr_math.utterance_features(
                progress.own[k][fitted].numpy(), bank.owner[fitted], n,
                epr.statistics)[at.trains[k]]
        progress.argmax[stage - 1, at.tests[k]] = means[chain][at.tests[k]].argmax(1)
        progress.predicted[stage - 1, at.tests[k]] = forest_labels(
            x, at.labels, at.trains[k], at.tests[k], at.utterances, epr.forest_trees,
            stage_seed(config.seed, fold.index, -stage))
        report = classification_report(at.labels[at.tests[k]],
                                       progress.predicted[stage - 1, at.tests[k]], n_classes)
        # Dev UA, the signal a sweep optimises: a second forest, fitted on the training folds
        # minus the fold network's early-stopping utterances, scores those. Neither the test
        # fold nor the scored utterances shaped it directly (under `paper` the profiles
        # themselves carry the protocol's leak, see config.EPRConfig.protocol).
        if len(val_utts):
            progress.dev[stage - 1, k] = classification_report(at.labels[val_utts], forest_labels(
                x, at.labels, fit_utts, val_utts, at.utterances, epr.forest_trees,
                stage_seed(config.seed, fold.index, -100 - stage)), n_classes)["ua"]
        run.reporter(progress.step, {"fold": float(fold.index), "stage": float(stage),
                                     "fold_wa": report["wa"], "fold_ua": report["ua"],
                                     "fold_dev_ua": float(progress.dev[stage - 1, k])}, {},
                     state=lambda: progress.state(len(run.jobs), None))
        progress.step += 1
    for u in run.figures:  # out of sample: from the chain of the fold it is a test utterance of
        i = at.position[u]
        chain = run.jobs[run.outer[int(at.home[i])]].chain
        progress.figure_profiles[u].append(
            progress.tables[chain][bank.of(np.array([i]))].tolist())


def evaluate(run: Run, progress: Progress) -> Result:
    """Every utterance predicted once, by its own fold's forest, per stage (Tables 2-4), with the
    mean profile's argmax beside it; the dev UA a sweep optimises (never a test fold)."""
    epr, at, n_classes = run.config.epr, run.at, len(run.split.classes)
    predicted, argmax = progress.predicted, progress.argmax
    tested = predicted[0] >= 0  # all utterances when the folds cover the corpus
    final: dict[str, float] = {}
    extras: dict[str, Any] = {"figure_profiles": progress.figure_profiles}
    for stage in range(1, epr.depth + 1):
        report = classification_report(at.labels[tested], predicted[stage - 1, tested], n_classes)
        final.update({f"stage{stage}_wa": report["wa"], f"stage{stage}_ua": report["ua"],
                      f"stage{stage}_f1": report["f1"],
                      f"stage{stage}_dev_ua": float(np.nanmean(progress.dev[stage - 1]))})
        extras[f"stage{stage}_confusion"] = report["confusion"]
        report = classification_report(at.labels[tested], argmax[stage - 1, tested], n_classes)
        final.update({f"argmax_stage{stage}_wa": report["wa"],
                      f"argmax_stage{stage}_ua": report["ua"]})
    final["dev_ua"] = final[f"stage{epr.depth}_dev_ua"]
    final["reused_stage1_networks"] = float(progress.reused)
    if not (run.runtime.resume and run.runtime.resume.get("finished")):  # not reported yet
        progress.stage = epr.depth
        run.reporter(progress.step, final, extras,
                     state=lambda: {**progress.state(len(run.jobs), None), "finished": True})
    classes = run.split.classes
    table = [{"id": u.id, "label": u.label, "fold": run.split.folds[at.home[i]].index,
              **{f"stage{t + 1}": classes[predicted[t, i]] for t in range(epr.depth)},
              **{f"argmax_stage{t + 1}": classes[argmax[t, i]] for t in range(epr.depth)}}
             for i, u in enumerate(at.utterances) if tested[i]]
    final["epoch"] = float(epr.depth)
    return Result(method="epr", final=final, selected_epoch=epr.depth, selected=dict(final),
                  table=table)


@dataclass(frozen=True)
class Layout:
    """A k-fold split's utterances as positions 0..U-1: test folds first (each utterance once),
    then training utterances no test fold holds; `home`, the index in split.folds of each
    utterance's test fold (-1: none). `fit` and studies/epr_forest_probe.py index by it."""
    utterances: list
    position: dict[str, int]  # an utterance id's position
    labels: np.ndarray
    speakers: np.ndarray
    tests: list[np.ndarray]
    trains: list[np.ndarray]
    home: np.ndarray


def layout(split: KFoldSplit) -> Layout:
    utterances = list({u.id: u for fold in split.folds for u in (*fold.test, *fold.train)}.values())
    position = {u.id: i for i, u in enumerate(utterances)}
    tests = [np.array([position[u.id] for u in fold.test]) for fold in split.folds]
    home = np.full(len(utterances), -1)
    for k, test in enumerate(tests):
        home[test] = k
    return Layout(utterances, position, label_array(utterances, split.classes),
                  np.array([u.speaker for u in utterances]), tests,
                  [np.array([position[u.id] for u in fold.train]) for fold in split.folds], home)


def early_stopping_share(config: RunConfig, fold_index: int, train: np.ndarray,
                         labels: np.ndarray, inner: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """A network's (fit, validation) positions: the same utterances at every stage of its fold
    (or inner part), drawn from the run seed and the fold."""
    salt = [] if inner < 0 else [2, inner]
    return hold_out(train, labels, config.epr.val_fraction,
                    np.random.default_rng([config.seed, fold_index, *salt]))


def hold_out(train: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """Whole utterances for early stopping, stratified by label: (fit, validation) positions."""
    val = []
    for c in np.unique(labels[train]):
        members = rng.permutation(train[labels[train] == c])
        val.extend(members[:int(round(fraction * len(members)))])
    val = np.array(sorted(val), dtype=int)
    return np.setdiff1d(train, val), val


def normaliser(bank: SegmentBank, segs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mel-bin mean and std of the training segments (at most 4,096 sampled), for standardising."""
    sample = bank.gather(segs[np.linspace(0, len(segs) - 1, min(len(segs), 4096)).astype(int)])
    return sample.mean((0, 1)), sample.std((0, 1)).clamp_min(1e-5)


def train_network(network: VGG, bank: SegmentBank, fit_segs: np.ndarray, val_segs: np.ndarray,
                  targets: torch.Tensor, segment_labels: np.ndarray,
                  norm: tuple[torch.Tensor, torch.Tensor], config: RunConfig,
                  report: Callable[[int, dict[str, float], Callable[[], dict]], None],
                  runtime: Runtime = LOCAL, saved: dict[str, Any] | None = None) -> None:
    """Adam, step decay (x lr_decay every lr_decay_epochs), soft cross-entropy against `targets`
    (Eq. 4; one-hot targets make it plain cross-entropy), early stopping with `patience` on the
    validation loss or segment accuracy (epr.monitor); the best validation epoch's weights are
    kept. Data-parallel over the runtime's ranks (each its shard of every global batch of
    epr.batch_size segments); `saved` resumes after the epoch it was taken at."""
    e = config.epr
    mean, std = norm
    net = runtime.prepare(network)  # DDP-wrapped with several workers
    optimizer = torch.optim.Adam(network.parameters(), lr=e.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, e.lr_decay_epochs, e.lr_decay)
    seed = int(torch.initial_seed())  # the stage's seed (new_network)
    generator = np.random.default_rng(seed % 2**32)
    best, best_state, waited, first, stopped = float("inf"), None, 0, 0, False
    if saved:
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        restore_rng(saved["rng"], generator)
        best, best_state, waited = saved["best"], saved["best_state"], saved["waited"]
        first, stopped = saved["epoch"] + 1, saved["stopped"]
    for epoch in range(first, 0 if stopped else e.max_epochs):
        runtime.seed(seed, epoch)  # dropout's generator, per epoch and rank
        net.train()
        order, total = generator.permutation(fit_segs), 0.0
        for start in range(0, len(order), e.batch_size):
            idx = order[start:start + e.batch_size]
            if len(idx) < runtime.world:  # a trailing batch too short to give every rank a row
                continue
            mine = idx[runtime.shard(len(idx))]
            x = ((bank.gather(mine) - mean) / std).to(runtime.device)
            with runtime.autocast():
                logits = net(x).float()
            q = targets[mine].to(logits.device)
            loss = runtime.share(soft_cross_entropy(logits, q) * len(mine), len(idx))
            check_finite(epoch, loss=loss)
            runtime.step(loss, optimizer)
            total += loss.item() * len(idx) / runtime.world
        total = runtime.sum({"loss": total})["loss"]
        lr = schedule.get_last_lr()[0]
        schedule.step()
        # ---- Early stopping on the held-out part of the training folds (never the test fold).
        val_out = predict_profiles(network, bank, norm, e.batch_size, val_segs, runtime)
        val_loss = float(-(targets[val_segs] * val_out.clamp_min(1e-12).log()).sum(1).mean())
        val_acc = float((val_out.argmax(1).numpy() == segment_labels[val_segs]).mean())
        score = val_loss if e.monitor == "loss" else -val_acc  # lower is better
        if score < best:
            best, best_state, waited = score, copy.deepcopy(network.state_dict()), 0
        else:
            waited += 1
        stopped = waited >= e.patience
        report(epoch, {"train_loss": total / len(fit_segs), "val_loss": val_loss,
                       "val_segment_acc": val_acc, "lr": lr}, lambda: {
            "epoch": epoch, "stopped": stopped, "model": network.state_dict(),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
            "rng": rng_state(generator), "best": best, "best_state": best_state,
            "waited": waited})
        if stopped:
            break
    network.load_state_dict(best_state)


@torch.no_grad()
def predict_profiles(network: VGG, bank: SegmentBank, norm: tuple[torch.Tensor, torch.Tensor],
                     batch_size: int, segs: np.ndarray | None = None,
                     runtime: Runtime = LOCAL) -> torch.Tensor:
    """(S, K) softmax outputs, the emotion profiles (Eq. 1-2), of `segs` (default: all segments),
    on CPU. With several ranks each computes a contiguous share and all gather."""
    network.eval()
    runtime.align(network)
    mean, std = norm
    segs = np.arange(len(bank.starts)) if segs is None else segs
    mine = segs[runtime.shard(len(segs))]
    out = []
    for i in range(0, len(mine), 4 * batch_size):
        x = ((bank.gather(mine[i:i + 4 * batch_size]) - mean) / std).to(runtime.device)
        with runtime.autocast():
            out.append(torch.softmax(network(x).float(), dim=1))
    k = network.classifier[-1].out_features
    local = torch.cat(out) if out else torch.zeros(0, k, device=runtime.device)
    return runtime.gather(local, len(segs)).cpu()


def forest_labels(features: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray,
                  utterances: list, trees: int, seed: int) -> np.ndarray:
    """scikit-learn's random forest with its default settings (Sec. 4.1), seeded, fitted on the
    utterances at positions `fit` and labelling those at `score` (tests check the two apart)."""
    from sklearn.ensemble import RandomForestClassifier  # here: scikit-learn imports in ~1 s
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed % 2**32)
    return forest.fit(features[fit], labels[fit]).predict(features[score])
