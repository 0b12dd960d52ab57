"""EPR's label refinement and utterance statistics as pure functions, each pinned by a unit test.

Numbers refer to the EPR paper (papers/001_fe5d044a6f71e6c0.txt).
"""

from __future__ import annotations

import numpy as np
import torch


def refine_targets(profiles: torch.Tensor, onehot: torch.Tensor, owner: np.ndarray, labels: str,
                   mix_weight: float) -> torch.Tensor:
    """Stage t's segment targets from stage t - 1's outputs. (S, K) profiles, (S, K) one-hot
    utterance labels copied to segments, (S,) utterance of each segment -> (S, K) targets.

    soft   (sEPR, Eq. 4): the previous stage's softmax outputs themselves.
    mixed  (pEPR, Sec. 4.4): (1 - w) * outputs + w * one-hot; w = 0.5 is the paper's "added and
           normalised" ([0.6, 0.1, 0.1, 0.2] with [1, 0, 0, 0] -> [0.8, 0.05, 0.05, 0.1]).
    hard   (Table 3, hard dynamic): one-hot of each segment's most likely class.
    static (Table 3, soft static): the mean output over the utterance's segments, on each of them.
    """
    if labels == "soft":
        return profiles.clone()
    if labels == "mixed":
        return (1.0 - mix_weight) * profiles + mix_weight * onehot
    if labels == "hard":
        return torch.nn.functional.one_hot(profiles.argmax(1), profiles.shape[1]).to(profiles.dtype)
    if labels == "static":
        index = torch.from_numpy(np.asarray(owner, dtype=np.int64))
        n = int(index.max()) + 1
        sums = torch.zeros(n, profiles.shape[1], dtype=profiles.dtype).index_add_(0, index, profiles)
        counts = torch.bincount(index, minlength=n).clamp_min(1).to(profiles.dtype)
        return (sums / counts[:, None])[index]
    raise ValueError(f"labels: expected soft, mixed, hard or static, got {labels!r}")


STATISTICS = {
    "mean": lambda x: x.mean(0), "std": lambda x: x.std(0), "min": lambda x: x.min(0),
    "max": lambda x: x.max(0), "median": lambda x: np.median(x, 0),
    "q25": lambda x: np.percentile(x, 25, 0), "q75": lambda x: np.percentile(x, 75, 0),
    # The share of the utterance's segments whose most likely class is each emotion.
    "share": lambda x: np.bincount(x.argmax(1), minlength=x.shape[1]) / len(x),
}


def utterance_features(profiles: np.ndarray, owner: np.ndarray, n_utterances: int,
                       statistics: tuple[str, ...]) -> np.ndarray:
    """The utterance representation (Sec. 2, after [10]): each statistic of each emotion-profile
    dimension over the utterance's segments. (S, K), (S,) -> (U, K * len(statistics)), laid out
    statistic-major: [mean_1..mean_K, std_1..std_K, ...]. std is the population std (ddof 0)."""
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(n_utterances + 1))
    out = np.zeros((n_utterances, profiles.shape[1] * len(statistics)), dtype=np.float64)
    for u in range(n_utterances):
        rows = profiles[order[bounds[u]:bounds[u + 1]]]
        if len(rows):
            out[u] = np.concatenate([STATISTICS[s](rows) for s in statistics])
    return out
