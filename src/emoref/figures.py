"""Figures as matplotlib objects (the caller saves or logs them): the papers' plots, from reports."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


# The two pseudo-label sources of IPR Fig. 3: (epochs.csv column, legend name).
AGREEMENT_CURVES = (("agreement_prototype", "prototype-assigned"),
                    ("agreement_model", "model-generated"))


def _agreement_axes(ax) -> None:
    ax.set_xlabel("epoch")
    ax.set_ylabel("agreement with hidden D2 labels")
    ax.legend()


def agreement_curves(rows: Sequence[Mapping[str, float]]) -> Figure:
    """IPR Fig. 3: agreement of D2 pseudo labels with D2's hidden truth per epoch, prototype-assigned
    vs model-generated."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, name in AGREEMENT_CURVES:
        points = [(r["epoch"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=name)
    _agreement_axes(ax)
    fig.tight_layout()
    return fig


def agreement_over_seeds(seeds: Sequence[Sequence[Mapping[str, float]]], title: str) -> Figure:
    """IPR Fig. 3 over seeds: per epoch, the mean and (shaded) sample std over the seeds that
    report it of prototype-assigned and model-generated agreement with D2's hidden labels."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, name in AGREEMENT_CURVES:
        by_epoch: dict[float, list[float]] = {}
        for rows in seeds:
            for r in rows:
                if key in r:
                    by_epoch.setdefault(r["epoch"], []).append(r[key])
        if not by_epoch:
            continue
        epochs = sorted(by_epoch)
        mean = np.array([np.mean(by_epoch[e]) for e in epochs])
        std = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else 0.0
                        for e in epochs])
        line, = ax.plot(epochs, mean, marker="o", markersize=3, label=name)
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_title(f"{title} ({len(seeds)} seeds, mean ± std)", fontsize=9)
    _agreement_axes(ax)
    fig.tight_layout()
    return fig


def similarity_matrix(matrix: Sequence[Sequence[float]], classes: Sequence[str],
                      title: str = "prototype cosine similarity") -> Figure:
    """IPR Fig. 2: cosine similarity between class prototypes."""
    return _matrix(np.asarray(matrix, dtype=float), classes, classes, title, "{:.2f}")


def confusion_matrix(matrix: Sequence[Sequence[float]], classes: Sequence[str],
                     title: str = "confusion", normalise: bool = False) -> Figure:
    """Rows: true class; columns: predicted class; counts, or each row's share when `normalise`
    (the view for matrices summed over seeds, whose counts depend on how many there were)."""
    values = np.asarray(matrix, dtype=float)
    if normalise:
        values = values / np.maximum(values.sum(1, keepdims=True), 1.0)
    return _matrix(values, classes, classes, title, "{:.2f}" if normalise else "{:.0f}",
                   xlabel="predicted", ylabel="true")


def similarity_curves(runs: Sequence[Sequence[Mapping[str, float]]], classes: Sequence[str]
                      ) -> Figure:
    """IPR Fig. 2: each class prototype's cosine similarity to the others over epochs, one panel
    per class, from the `similarity.<a>.<b>` columns of each run's rows; with several runs (seeds)
    the mean and a ±1 std band."""
    fig, axes = plt.subplots(1, len(classes), figsize=(3 * len(classes), 2.8), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[0], classes):
        for other in classes:
            if other != name:
                pair = sorted((name, other), key=list(classes).index)
                _mean_band(ax, runs, "similarity.{}.{}".format(*pair), other,
                           color=f"C{list(classes).index(other)}")  # one colour per class
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize="x-small")
    axes[0, 0].set_ylabel("prototype cosine similarity")
    fig.tight_layout()
    return fig


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
            fmt: str, xlabel: str = "", ylabel: str = "") -> Figure:
    size = (max(3.6, 1 + 0.6 * len(cols)), max(3.0, 1 + 0.5 * len(rows)))  # room for a title
    fig, ax = plt.subplots(figsize=size)
    ax.set(xlabel=xlabel, ylabel=ylabel)  # before the one layout pass, which makes room for them
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
        _mean_band(ax, runs, key, f"{name} (n={len(runs)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def _mean_band(ax, runs: Sequence[Sequence[Mapping[str, float]]], key: str, label: str,
               color: str | None = None) -> None:
    """One curve: `key` per epoch, mean over runs with a ±1 std band (nothing if no run has it)."""
    by_epoch: dict[float, list[float]] = {}
    for rows in runs:
        for r in rows:
            if key in r and r[key] == r[key]:
                by_epoch.setdefault(r["epoch"], []).append(r[key])
    if not by_epoch:
        return
    epochs = sorted(by_epoch)
    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
    std = np.array([np.std(by_epoch[e]) for e in epochs])
    line, = ax.plot(epochs, mean, marker="o", markersize=3, label=label, color=color)
    ax.fill_between(epochs, mean - std, mean + std, alpha=0.2, color=line.get_color())


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
