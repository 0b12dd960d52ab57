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
    epr, classes, n_classes = config.epr, split.classes, len(split.classes)
    at = layout(split)
    utterances, position, labels, speakers = at.utterances, at.position, at.labels, at.speakers
    tests, trains, home = at.tests, at.trains, at.home
    if epr.protocol == "paper" and (home < 0).any():
        raise ConfigError("epr.protocol=paper cross-fits every training utterance's profile, so "
                         "the test folds must cover the corpus; this split's folds leave "
                         f"{int((home < 0).sum())} utterances out (use nested or in_sample)")
    # Log-Mel frames from the feature cache every trial, seed and fold shares (epr.cache).
    bank = bank_from_frames(logmel_frames(utterances, config, cache=epr.cache), config.audio)
    onehot = F.one_hot(torch.from_numpy(labels[bank.owner]), n_classes).float()  # (S, K)
    jobs = plan(epr.protocol, tests, trains, lambda k: inner_parts(
        trains[k], labels, speakers, epr.inner_folds, split.by,
        np.random.default_rng([config.seed, split.folds[k].index, 1])))
    # Per network: its early-stopping share (whole utterances; the fold's network holds out the
    # same utterances at every stage, and those score the dev forest) and input standardisation.
    held = []
    for job in jobs:
        fit_utts, val_utts = early_stopping_share(config, split.folds[job.fold].index, job.train,
                                                  labels, job.inner)
        fit_segs, val_segs = bank.of(fit_utts), bank.of(val_utts)
        held.append((fit_utts, val_utts, fit_segs, val_segs, normaliser(bank, fit_segs)))
    outer = {job.fold: j for j, job in enumerate(jobs) if job.inner < 0}
    chains = sorted({job.chain for job in jobs})
    predicted = np.full((epr.depth, len(utterances)), -1)
    # The same utterances decided without the forest: the argmax of the mean emotion profile over
    # the utterance's segments, from the profiles the forest reads for it. Not the paper's decision;
    # kept beside it (argmax_stage<t>_wa/ua, table.csv) to measure what the forest adds under each
    # protocol, a question the paper's text leaves open.
    argmax = np.full_like(predicted, -1)
    # Dev UA per (stage, fold): the model-selection signal sweeps optimise (see below).
    dev = np.full((epr.depth, len(split.folds)), np.nan)
    drawn = figure_ids(split, config)
    figure_profiles: dict[str, list[list[list[float]]]] = {u: [] for u in drawn}

    def empty() -> dict[int, torch.Tensor]:
        return {c: torch.full((len(bank.starts), n_classes), float("nan")) for c in chains}

    # epr.forest_fit=fold_network: each fold network's own profiles of its training utterances,
    # which its forests fit on (by fold; under in_sample they are its chain's table already).
    own_fit = epr.forest_fit == "fold_network" and epr.protocol != "in_sample"

    def empty_own() -> dict[int, torch.Tensor]:
        return {k: torch.full((len(bank.starts), n_classes), float("nan"))
                for k in outer} if own_fit else {}

    previous, tables, own = None, empty(), empty_own()  # stage t - 1's and stage t's profiles
    store = Stage1Store(config, bank, runtime) if epr.reuse_stage1 else None
    reused = 0  # stage-1 networks loaded from the store
    first_stage, first_job, inner_state, step = 1, 0, None, 0
    # A restarted worker group resumes at its checkpoint's cursor: the stage and the network
    # (`job`; len(jobs) once the stage's forests are done) and, inside a network, its epoch.
    saved = runtime.resume
    if saved:
        predicted, dev = saved["predicted"].numpy().copy(), saved["dev"].numpy().copy()
        argmax = saved["argmax"].numpy().copy()
        previous, tables, own = saved["previous"], saved["tables"], saved.get("own", {})
        figure_profiles, step = saved["figure_profiles"], saved["step"]
        first_stage, first_job, inner_state = saved["stage"], saved["job"], saved["network"]
        reused = saved.get("reused", 0)
        if first_job == len(jobs):
            first_stage, first_job, previous, tables = first_stage + 1, 0, tables, empty()
            own = empty_own()
    for stage in range(first_stage, epr.depth + 1):
        refined: dict[int, torch.Tensor] = {}

        def cursor(job_index: int, network_state: dict[str, Any] | None) -> dict[str, Any]:
            return {"stage": stage, "job": job_index, "network": network_state,
                    "previous": previous, "tables": tables, "own": own,
                    "figure_profiles": figure_profiles,
                    "predicted": torch.from_numpy(predicted.copy()),
                    "argmax": torch.from_numpy(argmax.copy()),
                    "dev": torch.from_numpy(dev.copy()), "step": step + 1, "reused": reused}

        for j in range(first_job, len(jobs)):
            job, (fit_utts, val_utts, fit_segs, val_segs, norm) = jobs[j], held[j]
            targets = onehot  # stage 1: the pseudo one-hot label (Sec. 2.2)
            if stage > 1:  # ---- Refinery: labels from the previous stage's profiles (Eq. 4),
                # computed from identical gathered profiles, rank 0's copy sent to every rank.
                if job.chain not in refined:
                    refined[job.chain] = runtime.broadcast(epr_math.refine_targets(
                        previous[job.chain], onehot, bank.owner, epr.labels, epr.mix_weight))
                targets = refined[job.chain]
            seed = stage_seed(config.seed, split.folds[job.fold].index, stage, job.inner)
            network = new_network(config, n_classes, seed)
            init = fingerprint(network)
            where = {"fold": float(split.folds[job.fold].index), "stage": float(stage),
                     **({"inner": float(job.inner)} if job.inner >= 0 else {})}
            # Stage 1's epochs, for the store; a network resumed mid-training gets back those
            # its checkpoint carries, so it is stored whole too (training it again would give
            # the same bits: tests/methods/test_epr_fit.py). Checkpoints from before they carried
            # them have none: such a network is not stored, and a later row trains it again.
            history: list[tuple[int, dict[str, float]]] = list(
                inner_state["history"]) if inner_state and "history" in inner_state else []
            whole = inner_state is None or "history" in inner_state

            def report_epoch(epoch: int, metrics: dict[str, float],
                             state: Callable[[], dict[str, Any]] | None, j: int = j,
                             history: list = history) -> None:
                nonlocal step
                history.append((epoch, metrics))
                # A replayed network's checkpoint resumes at its start: the store serves it again.
                reporter(step, {**where, "stage_epoch": float(epoch), **metrics},
                         {"init_fingerprint": init} if epoch == 0 else {},
                         state=lambda: cursor(j, {**state(), "history": list(history)}
                                              if state else None))
                step += 1

            key = store.key(seed, [utterances[i].id for i in fit_utts],
                            [utterances[i].id for i in val_utts]) if store and stage == 1 else ""
            stored = store.load(key) if key and inner_state is None else None
            if stored is not None:
                network.load_state_dict(stored["model"])
                for epoch, metrics in stored["history"]:
                    report_epoch(epoch, metrics, None)
                reused += 1
            else:
                train_network(network, bank, fit_segs, val_segs, targets, labels[bank.owner],
                              norm, config, report_epoch, runtime, inner_state)
                if key and whole:
                    store.save(key, network, history)
            inner_state = None
            serves = bank.of(job.serves)
            tables[job.chain][serves] = predict_profiles(network, bank, norm, epr.batch_size,
                                                         serves, runtime)
            if own_fit and job.inner < 0:
                fitted = bank.of(job.train)
                own[job.fold][fitted] = predict_profiles(network, bank, norm, epr.batch_size,
                                                         fitted, runtime)
        first_job = 0
        # ---- Utterance decision: profile statistics -> random forest (Sec. 2, 4.1), fitted on
        # fold k's training utterances and labelling its test fold; the same inputs and seed on
        # every rank, so the same forest everywhere. Under `paper` this is the paper's "another
        # ten-fold cross-validation" over the cross-fitted profiles, on the same folds (so
        # speaker-independent folds stay so).
        features = {c: epr_math.utterance_features(tables[c].numpy(), bank.owner,
                                                   len(utterances), epr.statistics)
                    for c in chains}
        means = {c: epr_math.utterance_features(tables[c].numpy(), bank.owner, len(utterances),
                                                ("mean",)) for c in chains}
        for k, fold in enumerate(split.folds):
            x, (fit_utts, val_utts, *_) = features[jobs[outer[k]].chain], held[outer[k]]
            if own_fit:  # the training utterances as the fold network itself profiles them
                x = x.copy()
                fitted = bank.of(trains[k])
                x[trains[k]] = epr_math.utterance_features(
                    own[k][fitted].numpy(), bank.owner[fitted], len(utterances),
                    epr.statistics)[trains[k]]
            argmax[stage - 1, tests[k]] = means[jobs[outer[k]].chain][tests[k]].argmax(1)
            predicted[stage - 1, tests[k]] = forest_labels(
                x, labels, trains[k], tests[k], utterances, epr.forest_trees,
                stage_seed(config.seed, fold.index, -stage))
            report = classification_report(labels[tests[k]], predicted[stage - 1, tests[k]],
                                           n_classes)
            # ---- Dev UA, the signal a sweep optimises: a second forest, fitted on the training
            # folds minus the fold network's early-stopping utterances, scores those. Neither
            # the test fold nor the scored utterances shaped it directly (under `paper` the
            # profiles themselves carry the protocol's leak, see config.EPRConfig.protocol).
            if len(val_utts):
                dev[stage - 1, k] = classification_report(labels[val_utts], forest_labels(
                    x, labels, fit_utts, val_utts, utterances, epr.forest_trees,
                    stage_seed(config.seed, fold.index, -100 - stage)), n_classes)["ua"]
            reporter(step, {"fold": float(fold.index), "stage": float(stage),
                            "fold_wa": report["wa"], "fold_ua": report["ua"],
                            "fold_dev_ua": float(dev[stage - 1, k])}, {},
                     state=lambda: cursor(len(jobs), None))
            step += 1
        for u in drawn:  # out of sample: from the chain of the fold it is a test utterance of
            i = position[u]
            chain = jobs[outer[int(home[i])]].chain
            figure_profiles[u].append(tables[chain][bank.of(np.array([i]))].tolist())
        previous, tables, own = tables, empty(), empty_own()
    # ---- Evaluation: every utterance predicted once, by its own fold's forest (Tables 2-4).
    tested = predicted[0] >= 0  # all utterances when the folds cover the corpus
    final: dict[str, float] = {}
    extras: dict[str, Any] = {"figure_profiles": figure_profiles}
    for stage in range(1, epr.depth + 1):
        report = classification_report(labels[tested], predicted[stage - 1, tested], n_classes)
        final.update({f"stage{stage}_wa": report["wa"], f"stage{stage}_ua": report["ua"],
                      f"stage{stage}_f1": report["f1"],
                      f"stage{stage}_dev_ua": float(np.nanmean(dev[stage - 1]))})
        extras[f"stage{stage}_confusion"] = report["confusion"]
        report = classification_report(labels[tested], argmax[stage - 1, tested], n_classes)
        final.update({f"argmax_stage{stage}_wa": report["wa"],
                      f"argmax_stage{stage}_ua": report["ua"]})
    final["dev_ua"] = final[f"stage{epr.depth}_dev_ua"]  # what a sweep optimises: never a test fold
    final["reused_stage1_networks"] = float(reused)  # loaded from the store, not trained
    if not (runtime.resume and runtime.resume.get("finished")):  # reported before a restart
        reporter(step, final, extras, state=lambda: {
            "stage": epr.depth, "job": len(jobs), "network": None, "previous": previous,
            "tables": tables, "predicted": torch.from_numpy(predicted.copy()),
            "argmax": torch.from_numpy(argmax.copy()),
            "dev": torch.from_numpy(dev.copy()), "figure_profiles": figure_profiles,
            "step": step + 1, "reused": reused, "finished": True})
    table = [{"id": u.id, "label": u.label, "fold": split.folds[home[i]].index,
              **{f"stage{t + 1}": classes[predicted[t, i]] for t in range(epr.depth)},
              **{f"argmax_stage{t + 1}": classes[argmax[t, i]] for t in range(epr.depth)}}
             for i, u in enumerate(utterances) if tested[i]]
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
