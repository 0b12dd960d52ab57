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
from emoref.data.segments import SegmentBank, build_bank
from emoref.data.splits import KFoldSplit
from emoref.methods import epr_math
from emoref.methods.common import Reporter, Result, label_array, load_waves, soft_cross_entropy
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


def fit(config: RunConfig, split: KFoldSplit, reporter: Reporter) -> Result:
    epr, classes, n_classes = config.epr, split.classes, len(split.classes)
    # Test folds first (each utterance once); training utterances of a subset of folds after them.
    utterances = list({u.id: u for fold in split.folds for u in (*fold.test, *fold.train)}.values())
    position = {u.id: i for i, u in enumerate(utterances)}
    labels = label_array(utterances, classes)
    bank = build_bank(load_waves(utterances, config, config.corpus.name), config.audio)
    onehot = F.one_hot(torch.from_numpy(labels[bank.owner]), n_classes).float()  # (S, K)
    predicted = np.full((epr.depth, len(utterances)), -1)
    fold_of = np.zeros(len(utterances), dtype=int)
    figure_id = epr.figure_utterance or split.folds[0].test[0].id
    figure_profiles: list[list[list[float]]] = []
    step = 0
    for fold in split.folds:
        test = np.array([position[u.id] for u in fold.test])
        train = np.array([position[u.id] for u in fold.train])
        fold_of[test] = fold.index
        figure_in_test = any(u.id == figure_id for u in fold.test)
        rng = np.random.default_rng([config.seed, fold.index])
        fit_utts, val_utts = hold_out(train, labels, epr.val_fraction, rng)
        fit_segs, val_segs = bank.of(fit_utts), bank.of(val_utts)
        norm = normaliser(bank, fit_segs)
        targets, profiles = onehot, None  # stage 1: the pseudo one-hot label (Sec. 2.2)
        for stage in range(1, epr.depth + 1):
            if stage > 1:  # ---- Refinery: labels from the previous stage's profiles (Eq. 4)
                targets = epr_math.refine_targets(profiles, onehot, bank.owner, epr.labels,
                                                  epr.mix_weight)
            network = new_network(config, n_classes, stage_seed(config.seed, fold.index, stage))
            init = fingerprint(network)

            def report_epoch(epoch: int, metrics: dict[str, float]) -> None:
                nonlocal step
                reporter(step, {"fold": float(fold.index), "stage": float(stage),
                                "stage_epoch": float(epoch), **metrics}, {})
                step += 1

            train_network(network, bank, fit_segs, val_segs, targets, labels[bank.owner], norm,
                          config, report_epoch)
            profiles = predict_profiles(network, bank, norm, epr.batch_size)  # (S, K), all segments
            # ---- Utterance decision: profile statistics -> random forest (Sec. 2, 4.1).
            features = epr_math.utterance_features(profiles.numpy(), bank.owner, len(utterances),
                                                   epr.statistics)
            forest = fit_forest(features[train], labels[train], utterance_ids(utterances, train),
                                epr.forest_trees, stage_seed(config.seed, fold.index, -stage))
            predicted[stage - 1, test] = forest.predict(features[test])
            report = classification_report(labels[test], predicted[stage - 1, test], n_classes)
            extras: dict[str, Any] = {"init_fingerprint": init}
            if figure_in_test:
                segs = bank.of(np.array([position[figure_id]]))
                figure_profiles.append(profiles[segs].tolist())
            reporter(step, {"fold": float(fold.index), "stage": float(stage),
                            "fold_wa": report["wa"], "fold_ua": report["ua"]}, extras)
            step += 1
    # ---- Evaluation: every utterance predicted once, by its own fold's forest (Tables 2-4).
    tested = predicted[0] >= 0  # all utterances when the folds cover the corpus
    final: dict[str, float] = {}
    extras = {"figure_utterance": figure_id, "figure_profiles": figure_profiles}
    for stage in range(1, epr.depth + 1):
        report = classification_report(labels[tested], predicted[stage - 1, tested], n_classes)
        final.update({f"stage{stage}_wa": report["wa"], f"stage{stage}_ua": report["ua"],
                      f"stage{stage}_f1": report["f1"]})
        extras[f"stage{stage}_confusion"] = report["confusion"]
    reporter(step, final, extras)
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
                  report: Callable[[int, dict[str, float]], None]) -> None:
    """Adam, step decay (x lr_decay every lr_decay_epochs), soft cross-entropy against `targets`
    (Eq. 4; one-hot targets make it plain cross-entropy), early stopping on the validation loss
    with `patience`; the best validation epoch's weights are kept."""
    e = config.epr
    mean, std = norm
    optimizer = torch.optim.Adam(network.parameters(), lr=e.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, e.lr_decay_epochs, e.lr_decay)
    generator = np.random.default_rng(int(torch.initial_seed()) % 2**32)
    best, best_state, waited = float("inf"), None, 0
    for epoch in range(e.max_epochs):
        network.train()
        order, total = generator.permutation(fit_segs), 0.0
        for start in range(0, len(order), e.batch_size):
            idx = order[start:start + e.batch_size]
            loss = soft_cross_entropy(network((bank.gather(idx) - mean) / std), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        lr = schedule.get_last_lr()[0]
        schedule.step()
        # ---- Early stopping on the held-out part of the training folds (never the test fold).
        val_out = predict_profiles(network, bank, norm, e.batch_size, val_segs)
        val_loss = float(-(targets[val_segs] * val_out.clamp_min(1e-12).log()).sum(1).mean())
        val_acc = float((val_out.argmax(1).numpy() == segment_labels[val_segs]).mean())
        report(epoch, {"train_loss": total / len(fit_segs), "val_loss": val_loss,
                       "val_segment_acc": val_acc, "lr": lr})
        if val_loss < best:
            best, best_state, waited = val_loss, copy.deepcopy(network.state_dict()), 0
        else:
            waited += 1
            if waited >= e.patience:
                break
    network.load_state_dict(best_state)


@torch.no_grad()
def predict_profiles(network: VGG, bank: SegmentBank, norm: tuple[torch.Tensor, torch.Tensor],
                     batch_size: int, segs: np.ndarray | None = None) -> torch.Tensor:
    """(S, K) softmax outputs, the emotion profiles (Eq. 1-2), of `segs` (default: all segments)."""
    network.eval()
    mean, std = norm
    segs = np.arange(len(bank.starts)) if segs is None else segs
    out = [torch.softmax(network((bank.gather(segs[i:i + 4 * batch_size]) - mean) / std), dim=1)
           for i in range(0, len(segs), 4 * batch_size)]
    return torch.cat(out) if out else torch.zeros(0, network.classifier[-1].out_features)


def fit_forest(features: np.ndarray, labels: np.ndarray, ids: list[str], trees: int, seed: int
               ) -> RandomForestClassifier:
    """scikit-learn's random forest with its default settings (Sec. 4.1), seeded. `ids` names the
    utterances it learns from (tests check that no test-fold utterance is among them)."""
    return RandomForestClassifier(n_estimators=trees, random_state=seed % 2**32).fit(features, labels)
