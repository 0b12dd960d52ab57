"""Why does the stage-1 forest differ between epr.protocol=in_sample and paper? (docs/results.md)

Both protocols decide stage 1 from the same networks (each fold's VGG, trained on the training
folds); they differ only in what the fold's forest is fitted on. in_sample: the fold network's
own profiles of the training utterances, which it fitted (in-sample). paper: every training
utterance's cross-fitted profile, from the fold network that did not train on it. Both label
the test fold from the fold network's profiles of it. This probe loads one finished seed's
stage-1 networks from the store (epr.reuse_stage1; nothing is trained), computes every fold
network's profiles of every utterance, and scores decisions on the test folds side by side:

  argmax            the argmax of the mean profile (no forest)
  forest in_sample  the forest fitted on in-sample statistics (the in_sample row's stage 1)
  forest paper      the forest fitted on cross-fitted statistics (the paper row's stage 1)
  forest other net  fitted on another fold network's statistics of the training utterances (in-
                    sample for most of them, but not the network that labels the test fold)
  forest held-out   fitted on the fold network's own out-of-sample statistics: the ~10% of the
                    training folds it held out for early stopping (few, but the same network)
  ... mean only     the same forests on the mean profile alone
  LR ...            multinomial logistic regression on the standardised mean profile instead

with per-class recall, and how sharp the profiles each forest learns from are (the argmax's
accuracy on them). Every decision labels utterances its fit never saw.

    python studies/epr_forest_probe.py runs/studies/epr/epr_paper/seed0 [more seed folders]

A seed folder of the study's run (runs/studies/epr): its config must be the one the networks were
stored under, corpus path included (the archive's copies are written with a relative path).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from emoref.data.features import logmel_frames  # noqa: E402
from emoref.data.segments import bank_from_frames  # noqa: E402
from emoref.experiment import prepare_split  # noqa: E402
from emoref.methods import epr_math  # noqa: E402
from emoref.methods.epr import (Stage1Store, early_stopping_share, forest_labels,  # noqa: E402
                                layout, new_network, normaliser, predict_profiles, stage_seed)
from emoref.metrics import classification_report  # noqa: E402
from emoref.record import seed_config  # noqa: E402
from emoref.runtime import LOCAL  # noqa: E402


def lr_labels(x: np.ndarray, labels: np.ndarray, fit: np.ndarray, score: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return model.fit(x[fit], labels[fit]).predict(x[score])


def probe(folder: Path) -> dict[str, np.ndarray]:
    config = seed_config(folder)
    epr = config.epr
    split = prepare_split("epr", config, extract=False, echo=False)
    classes, n_classes = split.classes, len(split.classes)
    at = layout(split)  # the positions epr.fit uses
    utterances, labels, tests, trains, home = at.utterances, at.labels, at.tests, at.trains, at.home
    bank = bank_from_frames(logmel_frames(utterances, config, cache=epr.cache), config.audio)
    store = Stage1Store(config, bank, LOCAL)
    # Every fold network's profiles of every utterance, then statistics: (fold, U, features).
    stats, means, held = [], [], []
    for k, fold in enumerate(split.folds):
        fit_utts, val_utts = early_stopping_share(config, fold.index, trains[k], labels)
        held.append(val_utts)
        key = store.key(stage_seed(config.seed, fold.index, 1),
                        [utterances[i].id for i in fit_utts], [utterances[i].id for i in val_utts])
        stored = store.load(key)
        if stored is None:
            sys.exit(f"{folder}: fold {fold.index}'s stage-1 network is not in the store "
                     f"({store.dir}); run the seed with epr.reuse_stage1=true first")
        network = new_network(config, n_classes, 0)
        network.load_state_dict(stored["model"])
        profiles = predict_profiles(network, bank, normaliser(bank, bank.of(fit_utts)),
                                    epr.batch_size).numpy()
        stats.append(epr_math.utterance_features(profiles, bank.owner, len(utterances),
                                                 epr.statistics))
        means.append(epr_math.utterance_features(profiles, bank.owner, len(utterances),
                                                 ("mean",)))
    stats, means = np.stack(stats), np.stack(means)
    crossed_stats = stats[home, np.arange(len(utterances))]  # each from the network not fit on it
    crossed_means = means[home, np.arange(len(utterances))]
    decisions = {name: np.full(len(utterances), -1) for name in (
        "argmax", "forest in_sample", "forest paper", "forest other net", "forest held-out",
        "forest in_sample, mean only",
        "forest paper, mean only", "LR in_sample, mean", "LR paper, mean")}
    sharp = {"in_sample": [], "paper": []}
    for k, fold in enumerate(split.folds):
        test, train, seed = tests[k], trains[k], stage_seed(config.seed, fold.index, -1)
        decisions["argmax"][test] = means[k][test].argmax(1)
        for name, x in (("in_sample", stats[k]), ("paper", crossed_stats)):
            mixed = x.copy()
            mixed[test] = stats[k][test]  # the test fold: the fold network's profiles, always
            decisions[f"forest {name}"][test] = forest_labels(
                mixed, labels, train, test, utterances, epr.forest_trees, seed)
        other = stats[(k + 1) % len(split.folds)].copy()
        other[test] = stats[k][test]
        decisions["forest other net"][test] = forest_labels(
            other, labels, train, test, utterances, epr.forest_trees, seed)
        decisions["forest held-out"][test] = forest_labels(
            stats[k], labels, held[k], test, utterances, epr.forest_trees, seed)
        for name, m in (("in_sample", means[k]), ("paper", crossed_means)):
            mixed = m.copy()
            mixed[test] = means[k][test]
            decisions[f"forest {name}, mean only"][test] = forest_labels(
                mixed, labels, train, test, utterances, epr.forest_trees, seed)
            decisions[f"LR {name}, mean"][test] = lr_labels(mixed, labels, train, test)
            sharp[name].append(float((m[train].argmax(1) == labels[train]).mean()))
    print(f"{folder}: seed {config.seed}, {len(utterances)} utterances, stage-1 networks loaded")
    print(f"  argmax accuracy on the profiles each forest is fitted on (mean over folds): "
          f"in_sample {100 * np.mean(sharp['in_sample']):.1f}%, paper "
          f"{100 * np.mean(sharp['paper']):.1f}%")
    print("  | decision | WA | UA | " + " | ".join(f"recall {c}" for c in classes) + " |")
    for name, predicted in decisions.items():
        report = classification_report(labels, predicted, n_classes)
        recall = [100 * float((predicted[labels == c] == c).mean()) for c in range(n_classes)]
        print(f"  | {name} | {100 * report['wa']:.2f} | {100 * report['ua']:.2f} | "
              + " | ".join(f"{r:.1f}" for r in recall) + " |")
    return decisions


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arg in sys.argv[1:]:
        probe(Path(arg))
