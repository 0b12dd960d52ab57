"""The classical reference: standardised openSMILE functionals + logistic regression (scikit-learn).

What a reader from the field compares every table with first: seconds of compute on the field's
standard features. It trains on exactly the labelled data the compared learned baseline sees and is
scored on the same test part:
- ambiguity split: `reference` on D1 (beside the D1-only baseline), `reference_supervised` on D1 +
  labelled D2 (beside `supervised`); dev and D3 scored as the learned methods are;
- k-fold split: each fold's training folds, scored on its test fold (`cv_*`, pooled over folds as
  EPR's stages are).
The standardiser is fitted on the training data only (a Pipeline fits it inside each fit). lbfgs
is deterministic, so every seed gives the same numbers: the seed changes nothing here.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Sequence

import numpy as np
import torch

from emoref.config import RunConfig
from emoref.data.manifest import Utterance
from emoref.data.opensmile_features import Extraction, read
from emoref.data.splits import AmbiguitySplit, KFoldSplit
from emoref.methods.common import annotation, check_ambiguity_split, label_array
from emoref.record import Reporter, Result
from emoref.metrics import classification_report, weighted_accuracy


def job(config: RunConfig) -> Extraction:
    """The extraction the reference reads: functionals of reference.feature_set, clean audio."""
    encoder = dataclasses.replace(config.encoder, feature_set=config.reference.feature_set,
                                  level="functionals")
    return Extraction.of(config, encoder, views=0)


def features(utterances: Sequence[Utterance], config: RunConfig) -> np.ndarray:
    """(N, F) functionals of each utterance's clean audio, from the cache."""
    values = read(utterances, job(config), view=0) if len(utterances) else []
    return np.stack(values) if values else np.zeros((0, 1), np.float32)


def classifier(config: RunConfig) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    r = config.reference
    return make_pipeline(StandardScaler(), LogisticRegression(
        C=r.C, max_iter=r.max_iter, class_weight="balanced" if r.balanced else None))


def predict_proba(model: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) probabilities over every class, also those absent from the training labels."""
    out = np.zeros((len(x), n_classes))
    if len(x):
        out[:, model.classes_] = model.predict_proba(x)
    return out


def fit(config: RunConfig, split: AmbiguitySplit | KFoldSplit, reporter: Reporter,
        runtime: object = None, *, labelled_d2: bool = False) -> Result:
    """One fit per split or fold, in this process (`runtime` is accepted like every method's and
    unused: seconds of scikit-learn need no DDP workers)."""
    method = "reference_supervised" if labelled_d2 else "reference"
    n_classes = len(split.classes)
    metrics: dict[str, float] = {}
    extras: dict[str, Any] = {}
    if isinstance(split, KFoldSplit):
        # ---- k-fold: fit on each fold's training folds, predict its test fold; pooled scores.
        truth, pred, table = [], [], []
        for fold in split.folds:
            model = classifier(config).fit(features(fold.train, config),
                                           label_array(fold.train, split.classes))
            proba = predict_proba(model, features(fold.test, config), n_classes)
            truth.append(label_array(fold.test, split.classes))
            pred.append(proba.argmax(1))
            table += [{**row, "fold": fold.index} for row in
                      annotation(fold.test, split.classes, torch.from_numpy(proba))]
        report = classification_report(np.concatenate(truth), np.concatenate(pred), n_classes)
        metrics.update({f"cv_{k}": report[k] for k in ("wa", "ua", "f1")})
        extras["cv_confusion"] = report["confusion"]
    else:
        # ---- ambiguity split: D1 (or D1 + labelled D2); dev and D3 scored, D2 agreement measured.
        check_ambiguity_split(split)
        train = split.d1 + (split.d2 if labelled_d2 else ())
        model = classifier(config).fit(features(train, config), label_array(train, split.classes))
        for name in ("dev", "d3"):
            part = getattr(split, name)
            if not part:
                continue
            proba = predict_proba(model, features(part, config), n_classes)
            report = classification_report(label_array(part, split.classes), proba.argmax(1),
                                           n_classes)
            metrics.update({f"{name}_{k}": report[k] for k in ("wa", "ua", "f1")})
            extras[f"{name}_confusion"] = report["confusion"]
        proba = predict_proba(model, features(split.d2, config), n_classes)
        metrics["agreement_model"] = weighted_accuracy(label_array(split.d2, split.classes),
                                                       proba.argmax(1))
        table = annotation(split.d2, split.classes, torch.from_numpy(proba))
    reporter(0, metrics, extras)
    row = {"epoch": 0, **metrics}
    return Result(method=method, final=row, selected_epoch=0, selected=row, table=table)


fit_reference = partial(fit, labelled_d2=False)
fit_reference_supervised = partial(fit, labelled_d2=True)
