"""Feature caches on disk: EPR's log-Mel frames and frozen-encoder embeddings.

A sweep of 20 configurations x 5 seeds trains 100 times on the same audio; what does not depend on
the trained weights is computed once and read back by every trial, seed and fold. Each cache lives
under `<corpus.cache_dir>/features/<kind>/<spec key>/`, where the spec key hashes everything the
values depend on (written beside them as spec.json, readable), and holds one .npy per utterance
named by its audio key (absolute path, size, modification time, sample rate: `AudioCache.key`),
so an edited or moved file is computed again and a corpus is fingerprinted file by file.

- log-Mel frames (`logmel_frames`): (frames, n_mels) per utterance, keyed by the STFT and Mel
  settings. Segments are views into frames, so one cache serves every segment length and hop.
- frozen-encoder embeddings (`FrozenInputs`, encoder.freeze=true): the pooled (D,) embedding of
  each utterance's centred crop (view 0) and of K augmented views (1..K, encoder.views), keyed by
  the encoder's config, layer and a digest of its weights (so a pretrained id, a local checkpoint
  and a random initialisation can never share entries), the audio settings and, for augmented
  views, the augmentation config and the view index.

Each utterance is encoded alone, at its own length: with padding, a group-norm wav2vec2 or an
instance-normalised CNN would give an utterance a different embedding in every batch, and the cache
could not stand for recomputation. With encoder.cache=false the same embeddings are computed again
whenever a batch needs them (what the benchmark compares against).

Concurrent trials: the first to miss takes a lock file, computes and writes (atomically); the others
wait on the lock and then read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from emoref.config import RunConfig
from emoref.data.audio import AudioCache, LogMel, crop_or_pad
from emoref.data.augment import IMPULSE_RESPONSES_VERSION, Augmenter
from emoref.data.manifest import Utterance
from emoref.provenance import digest

# Bump when what a cached value means changes (a new pooling, a different crop): old entries are
# then simply not found. 2: augmented views seeded by utterance id, not by the file's path.
FORMAT = 2


def spec_key(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:20]


class FeatureCache:
    """One kind of feature under one spec: `get(keys, compute)` returns an array per key, computing
    (in one call, for all missing keys) only what is not on disk yet."""

    def __init__(self, root: str | Path, kind: str, spec: dict[str, Any]) -> None:
        self.spec = {"format": FORMAT, **spec}
        self.dir = Path(root).expanduser() / "features" / kind / spec_key(self.spec)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def missing(self, keys: Sequence[str]) -> list[int]:
        return [i for i, key in enumerate(keys) if not self.path(key).is_file()]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get(self, keys: Sequence[str], compute: Callable[[list[int]], list[np.ndarray]]
            ) -> list[np.ndarray]:
        """Every key's array; `compute(positions)` makes the missing ones (positions in `keys`)."""
        if self.missing(keys):
            with self.locked():
                todo = self.missing(keys)  # another trial may have filled them while we waited
                if todo:
                    spec_file = self.dir / "spec.json"
                    if not spec_file.is_file():
                        spec_file.write_text(json.dumps(self.spec, indent=2, sort_keys=True,
                                                        default=str))
                    for i, value in zip(todo, compute(todo)):
                        self.write(keys[i], value)
        return [self._read(key) for key in keys]

    def write(self, key: str, value: np.ndarray) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, np.ascontiguousarray(value, dtype=np.float32))
        os.replace(tmp, self.path(key))  # atomic: a reader never sees half a file

    def _read(self, key: str) -> np.ndarray:
        try:
            return np.load(self.path(key))
        except (OSError, ValueError) as err:
            raise OSError(f"{self.path(key)}: unreadable feature cache entry ({err}); delete it "
                          "and run again") from None


def audio_keys(utterances: Sequence[Utterance], config: RunConfig) -> list[str]:
    """Each utterance's audio key: its file's absolute path, size, mtime and the sample rate."""
    cache = AudioCache(config.corpus.cache_dir, config.corpus.name, config.audio.sample_rate)
    return [cache.key(u.path) for u in utterances]


def load_waves(utterances: Sequence[Utterance], config: RunConfig) -> list[np.ndarray]:
    """The decoded, resampled audio of each utterance, from the audio cache (data.audio)."""
    cache = AudioCache(config.corpus.cache_dir, config.corpus.name, config.audio.sample_rate)
    return [cache.get(u.path) for u in utterances]


def load_wave(utterance: Utterance, config: RunConfig) -> np.ndarray:
    return load_waves([utterance], config)[0]


# ----------------------------------------------------------------------------------------------------
# EPR: log-Mel frames
# ----------------------------------------------------------------------------------------------------

def logmel_spec(config: RunConfig) -> dict[str, Any]:
    a = config.audio
    return {"sample_rate": a.sample_rate, "n_mels": a.n_mels, "win_ms": a.win_ms,
            "hop_ms": a.hop_ms, "n_fft": a.n_fft, "center": a.center}


def logmel_frames(utterances: Sequence[Utterance], config: RunConfig, cache: bool = True
                  ) -> list[np.ndarray]:
    """(frames, n_mels) natural-log Mel of each utterance (see `data.audio.LogMel`), from the cache
    when `cache`; audio is decoded only for utterances not cached yet."""
    logmel = LogMel(config.audio)

    def compute(positions: list[int]) -> list[np.ndarray]:
        with torch.no_grad():
            return [logmel(torch.from_numpy(load_wave(utterances[i], config))).T.numpy()
                    for i in positions]

    if not cache:
        return compute(list(range(len(utterances))))
    store = FeatureCache(config.corpus.cache_dir, "logmel", logmel_spec(config))
    return store.get(audio_keys(utterances, config), compute)


# ----------------------------------------------------------------------------------------------------
# Frozen encoder: embeddings of the centred crop and of K augmented views
# ----------------------------------------------------------------------------------------------------

def embedding_spec(config: RunConfig, weights: str, view: int) -> dict[str, Any]:
    """Everything view `view`'s embeddings depend on (view 0: the clean centred crop); `weights`
    is `provenance.digest` of the encoder's weights."""
    e = config.encoder
    spec = {"encoder": {k: v for k, v in dataclasses.asdict(e).items()
                        if k not in ("freeze", "cache", "views", "init_seed")},
            "weights": weights, "sample_rate": config.audio.sample_rate,
            "max_seconds": config.audio.max_seconds, "view": view}
    if e.kind == "logmel_cnn":
        spec["logmel"] = logmel_spec(config)
    if view:
        spec["augment"] = dataclasses.asdict(config.augment)
        spec["impulse_responses"] = IMPULSE_RESPONSES_VERSION
    return spec


def view_seed(utterance_id: str, view: int) -> int:
    """The augmentation seed of an utterance's view: from its id, so view k is the same wherever
    the corpus or the cache lives (a path would make results depend on the folder)."""
    return zlib.crc32(f"{utterance_id}/{view}".encode())


@torch.no_grad()
def encode(encoder: nn.Module, wave: np.ndarray, max_samples: int, device: torch.device
           ) -> np.ndarray:
    """(D,) embedding of one utterance's centred crop, alone (no padding), in eval mode."""
    window, valid = crop_or_pad(wave, min(len(wave), max_samples), "center")
    x = torch.from_numpy(np.ascontiguousarray(window[:valid]))[None].to(device)
    return encoder(x, torch.ones_like(x, dtype=torch.bool))[0].float().cpu().numpy()


class FrozenInputs:
    """A part's utterances as frozen-encoder embeddings: `embed(rows, views)` -> (len(rows), D).

    With the cache (encoder.cache=true) every view of every utterance is computed once (or read
    from disk) when this is built; without it, each call encodes the rows it is asked for again.
    Both give the same numbers."""

    def __init__(self, utterances: Sequence[Utterance], config: RunConfig, encoder: nn.Module,
                 device: torch.device = torch.device("cpu")) -> None:
        self.utterances, self.config, self.encoder, self.device = utterances, config, encoder, device
        self.n_views = config.encoder.views
        self.keys = audio_keys(utterances, config)
        self.max_samples = int(config.audio.max_seconds * config.audio.sample_rate)
        self.augment = Augmenter(config.augment, config.audio.sample_rate, config.corpus.cache_dir)
        self.table: np.ndarray | None = None  # (N, 1 + K, D) when cached
        if config.encoder.cache and len(utterances):
            encoder.eval()
            weights, views = digest(encoder.state_dict()), []
            for view in range(1 + self.n_views):
                store = FeatureCache(config.corpus.cache_dir, "embeddings",
                                     embedding_spec(config, weights, view))
                views.append(np.stack(store.get(
                    self.keys, lambda todo, v=view: [self._compute(i, v) for i in todo])))
            self.table = np.stack(views, axis=1)

    def __len__(self) -> int:
        return len(self.utterances)

    def _compute(self, row: int, view: int) -> np.ndarray:
        wave = load_wave(self.utterances[row], self.config)
        if view:
            wave = self.augment(wave, view_seed(self.utterances[row].id, view))
        return encode(self.encoder, wave, self.max_samples, self.device)

    def clean(self) -> list[np.ndarray]:
        """Each utterance's view-0 embedding (for the trunk's standardisation statistics)."""
        return list(self.embed(np.arange(len(self))).numpy())

    def batch(self, rows: np.ndarray, views: int | np.ndarray = 0) -> tuple[torch.Tensor, None]:
        """(len(rows), D) embeddings, and no frame mask (one vector per utterance)."""
        return self.embed(rows, views), None

    def embed(self, rows: np.ndarray, views: int | np.ndarray = 0) -> torch.Tensor:
        """(len(rows), D) float32 embeddings on CPU; `views` one index or one per row."""
        rows = np.asarray(rows, dtype=int)
        views = np.broadcast_to(np.asarray(views, dtype=int), rows.shape)
        if not len(rows):
            return torch.zeros((0, self.encoder.dim))
        if self.table is not None:
            return torch.from_numpy(self.table[rows, views])
        was_training = self.encoder.training
        self.encoder.eval()
        out = torch.from_numpy(np.stack([self._compute(r, v) for r, v in zip(rows, views)]))
        self.encoder.train(was_training)
        return out
