"""EPR: emotion profile refinery (papers/001_fe5d044a6f71e6c0.txt; Sec. and Eq. numbers inline).

k-fold cross-validation. In each fold, a chain of freshly initialised VGGs is trained on the
training folds' 32-frame segments: stage 1 on the utterance label copied to every segment, stage
t > 1 on targets refined from stage t - 1's outputs (sEPR, pEPR or a Table 3 ablation). After
every stage, statistics of the emotion profiles over each utterance feed a random forest fitted on
the training folds' utterances, which labels the test fold's utterances. Test-fold audio never
reaches a gradient step, early stopping or the forest's fit; its profiles come only from networks
that never trained on it. The random forest is fitted on the training utterances' profiles from
the networks that trained on them (the paper's second 10-fold pass over out-of-fold profiles
would let fold k's audio shape the forest that labels fold k).
"""

from __future__ import annotations

import copy
import zlib
from typing import Any, Callable

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier
from torch.nn import functional as F

from emoref.config import RunConfig
from emoref.data.features import logmel_frames
from emoref.data.segments import SegmentBank, bank_from_frames
from emoref.data.splits import KFoldSplit
from emoref.methods import epr_math
from emoref.runtime import LOCAL, Runtime, restore_rng, rng_state
from emoref.methods.common import check_finite, label_array, soft_cross_entropy
from emoref.record import Reporter, Result
from emoref.metrics import classification_report
from emoref.models.vgg import VGG


def stage_seed(seed: int, fold: int, stage: int) -> int:
    """A distinct, reproducible seed for each (run seed, fold, stage) network."""
    return zlib.crc32(f"{seed}/{fold}/{stage}".encode())


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


def fit(config: RunConfig, split: KFoldSplit, reporter: Reporter, runtime: Runtime = LOCAL
        ) -> Result:
    epr, classes, n_classes = config.epr, split.classes, len(split.classes)
    # Test folds first (each utterance once); training utterances of a subset of folds after them.
    utterances = list({u.id: u for fold in split.folds for u in (*fold.test, *fold.train)}.values())
    position = {u.id: i for i, u in enumerate(utterances)}
    labels = label_array(utterances, classes)
    # Log-Mel frames from the feature cache every trial, seed and fold shares (epr.cache).
    bank = bank_from_frames(logmel_frames(utterances, config, cache=epr.cache), config.audio)
    onehot = F.one_hot(torch.from_numpy(labels[bank.owner]), n_classes).float()  # (S, K)
    predicted = np.full((epr.depth, len(utterances)), -1)
    # Dev UA per (stage, fold): the model-selection signal sweeps optimise (see below).
    dev = np.full((epr.depth, len(split.folds)), np.nan)
    fold_of = np.zeros(len(utterances), dtype=int)
    figure_id = epr.figure_utterance or split.folds[0].test[0].id
    figure_profiles: list[list[list[float]]] = []
    step = 0
    # A restarted worker group resumes at its checkpoint's cursor: (fold, stage) and, inside a
    # stage, the network's epoch; `network` None means that stage (forest included) was finished.
    saved = runtime.resume
    if saved:
        predicted, step = saved["predicted"].numpy().copy(), saved["step"]
        dev = saved["dev"].numpy().copy()
        figure_profiles = saved["figure_profiles"]
    for position_in_split, fold in enumerate(split.folds):
        test = np.array([position[u.id] for u in fold.test])
        train = np.array([position[u.id] for u in fold.train])
        fold_of[test] = fold.index
        if saved and position_in_split < saved["fold"]:
            continue  # finished before the restart: its predictions came back with `predicted`
        figure_in_test = any(u.id == figure_id for u in fold.test)
        rng = np.random.default_rng([config.seed, fold.index])
        fit_utts, val_utts = hold_out(train, labels, epr.val_fraction, rng)
        fit_segs, val_segs = bank.of(fit_utts), bank.of(val_utts)
        norm = normaliser(bank, fit_segs)
        targets, profiles = onehot, None  # stage 1: the pseudo one-hot label (Sec. 2.2)
        first, inner = 1, None
        if saved:  # this is the fold the checkpoint stopped in
            profiles, inner = saved["profiles"], saved["network"]
            first = saved["stage"] + (1 if inner is None else 0)
            saved = None
        for stage in range(first, epr.depth + 1):
            if stage > 1:  # ---- Refinery: labels from the previous stage's profiles (Eq. 4),
                # computed from identical gathered profiles, rank 0's copy sent to every rank.
                targets = runtime.broadcast(epr_math.refine_targets(
                    profiles, onehot, bank.owner, epr.labels, epr.mix_weight))
            network = new_network(config, n_classes, stage_seed(config.seed, fold.index, stage))
            init = fingerprint(network)

            def cursor(network_state: dict[str, Any] | None) -> dict[str, Any]:
                return {"fold": position_in_split, "stage": stage, "network": network_state,
                        "profiles": profiles, "predicted": torch.from_numpy(predicted.copy()),
                        "dev": torch.from_numpy(dev.copy()), "figure_profiles": figure_profiles,
                        "step": step + 1}

            def report_epoch(epoch: int, metrics: dict[str, float],
                             state: Callable[[], dict[str, Any]]) -> None:
                nonlocal step
                reporter(step, {"fold": float(fold.index), "stage": float(stage),
                                "stage_epoch": float(epoch), **metrics}, {},
                         state=lambda: cursor(state()))
                step += 1

            train_network(network, bank, fit_segs, val_segs, targets, labels[bank.owner], norm,
                          config, report_epoch, runtime, inner)
            inner = None
            profiles = predict_profiles(network, bank, norm, epr.batch_size, runtime=runtime)
            # ---- Utterance decision: profile statistics -> random forest (Sec. 2, 4.1); the
            # same inputs and seed on every rank, so the same forest everywhere.
            features = epr_math.utterance_features(profiles.numpy(), bank.owner, len(utterances),
                                                   epr.statistics)
            forest = fit_forest(features[train], labels[train], utterance_ids(utterances, train),
                                epr.forest_trees, stage_seed(config.seed, fold.index, -stage))
            predicted[stage - 1, test] = forest.predict(features[test])
            report = classification_report(labels[test], predicted[stage - 1, test], n_classes)
            # ---- Dev UA, the signal a sweep optimises: a second forest, fitted on the training
            # folds minus their held-out validation utterances, scores those. Neither the test
            # fold nor the scored utterances shaped it (the test fold's forest above is fitted on
            # every training utterance, as in the paper).
            if len(val_utts):
                dev_model = fit_forest(features[fit_utts], labels[fit_utts],
                                       utterance_ids(utterances, fit_utts), epr.forest_trees,
                                       stage_seed(config.seed, fold.index, -100 - stage))
                dev[stage - 1, position_in_split] = classification_report(
                    labels[val_utts], dev_model.predict(features[val_utts]), n_classes)["ua"]
            extras: dict[str, Any] = {"init_fingerprint": init}
            if figure_in_test:
                segs = bank.of(np.array([position[figure_id]]))
                figure_profiles.append(profiles[segs].tolist())
            reporter(step, {"fold": float(fold.index), "stage": float(stage),
                            "fold_wa": report["wa"], "fold_ua": report["ua"],
                            "fold_dev_ua": float(dev[stage - 1, position_in_split])}, extras,
                     state=lambda: cursor(None))
            step += 1
    # ---- Evaluation: every utterance predicted once, by its own fold's forest (Tables 2-4).
    tested = predicted[0] >= 0  # all utterances when the folds cover the corpus
    final: dict[str, float] = {}
    extras = {"figure_utterance": figure_id, "figure_profiles": figure_profiles}
    for stage in range(1, epr.depth + 1):
        report = classification_report(labels[tested], predicted[stage - 1, tested], n_classes)
        final.update({f"stage{stage}_wa": report["wa"], f"stage{stage}_ua": report["ua"],
                      f"stage{stage}_f1": report["f1"],
                      f"stage{stage}_dev_ua": float(np.nanmean(dev[stage - 1]))})
        extras[f"stage{stage}_confusion"] = report["confusion"]
    final["dev_ua"] = final[f"stage{epr.depth}_dev_ua"]  # what a sweep optimises: never a test fold
    if not (runtime.resume and runtime.resume.get("finished")):  # reported before a restart
        reporter(step, final, extras, state=lambda: {
            "fold": len(split.folds), "stage": 0, "network": None, "profiles": None,
            "predicted": torch.from_numpy(predicted.copy()), "dev": torch.from_numpy(dev.copy()),
            "figure_profiles": figure_profiles, "step": step + 1, "finished": True})
    table = [{"id": u.id, "label": u.label, "fold": int(fold_of[i]),
              **{f"stage{t + 1}": classes[predicted[t, i]] for t in range(epr.depth)}}
             for i, u in enumerate(utterances) if tested[i]]
    final["epoch"] = float(epr.depth)
    return Result(method="epr", final=final, selected_epoch=epr.depth, selected=dict(final),
                  table=table)


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


def utterance_ids(utterances: list, positions: np.ndarray) -> list[str]:
    return [utterances[i].id for i in positions]


def train_network(network: VGG, bank: SegmentBank, fit_segs: np.ndarray, val_segs: np.ndarray,
                  targets: torch.Tensor, segment_labels: np.ndarray,
                  norm: tuple[torch.Tensor, torch.Tensor], config: RunConfig,
                  report: Callable[[int, dict[str, float], Callable[[], dict]], None],
                  runtime: Runtime = LOCAL, saved: dict[str, Any] | None = None) -> None:
    """Adam, step decay (x lr_decay every lr_decay_epochs), soft cross-entropy against `targets`
    (Eq. 4; one-hot targets make it plain cross-entropy), early stopping on the validation loss
    with `patience`; the best validation epoch's weights are kept. Data-parallel over the
    runtime's ranks (each its shard of every global batch of epr.batch_size segments); `saved`
    resumes after the epoch it was taken at."""
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
        if val_loss < best:
            best, best_state, waited = val_loss, copy.deepcopy(network.state_dict()), 0
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


def fit_forest(features: np.ndarray, labels: np.ndarray, ids: list[str], trees: int, seed: int
               ) -> RandomForestClassifier:
    """scikit-learn's random forest with its default settings (Sec. 4.1), seeded. `ids` names the
    utterances it learns from (tests check that no test-fold utterance is among them)."""
    return RandomForestClassifier(n_estimators=trees, random_state=seed % 2**32).fit(features, labels)
