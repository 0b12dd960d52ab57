"""Figures as matplotlib objects (the caller saves or logs them): the papers' plots, from reports."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def agreement_curves(rows: Sequence[Mapping[str, float]]) -> Figure:
    """IPR Fig. 3: agreement of D2 pseudo labels with D2's hidden truth per epoch, prototype-assigned
    vs model-generated."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, name in (("agreement_prototype", "prototype-assigned"),
                      ("agreement_model", "model-generated")):
        points = [(r["epoch"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("agreement with hidden D2 labels")
    ax.legend()
    fig.tight_layout()
    return fig


def similarity_matrix(matrix: Sequence[Sequence[float]], classes: Sequence[str],
                      title: str = "prototype cosine similarity") -> Figure:
    """IPR Fig. 2: cosine similarity between class prototypes."""
    return _matrix(np.asarray(matrix, dtype=float), classes, classes, title, "{:.2f}")


def confusion_matrix(matrix: Sequence[Sequence[float]], classes: Sequence[str],
                     title: str = "confusion") -> Figure:
    """Rows: true class; columns: predicted class; counts."""
    return _matrix(np.asarray(matrix, dtype=float), classes, classes, title, "{:.0f}")


def profile_evolution(stages: Sequence[Sequence[Sequence[float]]], classes: Sequence[str],
                      title: str) -> Figure:
    """EPR Figs. 2 and 4: one utterance's emotion profile (segments x classes) at every stage."""
    fig, axes = plt.subplots(len(stages), 1, figsize=(6, 1.8 * len(stages)), sharex=True,
                             squeeze=False)
    for t, (ax, profile) in enumerate(zip(axes[:, 0], stages), start=1):
        profile = np.asarray(profile)
        for k, name in enumerate(classes):
            ax.plot(profile[:, k], label=name)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"stage {t}")
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("segment")
    axes[0, 0].legend(fontsize="x-small", ncol=min(len(classes), 4), loc="upper right")
    fig.tight_layout()
    return fig


def _matrix(values: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str,
            fmt: str) -> Figure:
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(cols), 1 + 0.5 * len(rows)))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize="small")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def mean_curves(runs: Sequence[Sequence[Mapping[str, float]]], keys: Mapping[str, str],
                ylabel: str) -> Figure:
    """Per-epoch curves averaged over seeds (a configuration's view of Fig. 3): the mean line and
    a ±1 std band for each `key` (label: keys[key]); epochs a seed did not report are skipped."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, name in keys.items():
        by_epoch: dict[float, list[float]] = {}
        for rows in runs:
            for r in rows:
                if key in r and r[key] == r[key]:
                    by_epoch.setdefault(r["epoch"], []).append(r[key])
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        mean = np.array([np.mean(by_epoch[e]) for e in epochs])
        std = np.array([np.std(by_epoch[e]) for e in epochs])
        ax.plot(epochs, mean, marker="o", markersize=3, label=f"{name} (n={len(runs)})")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def stage_scores(per_seed: Sequence[Mapping[str, float]], depth: int) -> Figure:
    """EPR: utterance WA and UA after every refinery stage, mean ± std over seeds (Tables 2, 4)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    stages = np.arange(1, depth + 1)
    for metric in ("wa", "ua"):
        values = np.array([[row[f"stage{t}_{metric}"] for t in stages] for row in per_seed])
        ax.errorbar(stages, values.mean(0), yerr=values.std(0), marker="o", capsize=3,
                    label=metric.upper())
    ax.set_xticks(stages)
    ax.set_xlabel("refinery stage")
    ax.set_ylabel("test-fold score")
    ax.legend()
    fig.tight_layout()
    return fig
