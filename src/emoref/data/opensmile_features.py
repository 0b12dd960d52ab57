"""openSMILE front end: the field's standard acoustic features, extracted once and cached.

audEERING's `opensmile` package (its wheel ships the openSMILE library, so this works offline)
computes eGeMAPSv02 or ComParE_2016 either as functionals, one vector per utterance, or as
low-level descriptors (LLD), one row per 10 ms frame. Each utterance is processed whole (no crop:
functionals summarise the utterance, and EmoDB's longest file is under 9 s), as its clean audio
(view 0) and as K augmented views (1..K, encoder.views, the same seeded augmentations as the
frozen-encoder cache), into the feature cache (`features.FeatureCache`, kind "opensmile") under a
key that names the feature set, level, openSMILE version, sample rate, view and, for augmented
views, the augmentation config: a cache of another set, level or version is never read as this one.

Extraction is the expensive part (ComParE functionals ~0.05-0.3 s per file and view on one core),
so `prepare` fills the cache before training, as Ray tasks over every core of the machine or
cluster when Ray is running, printing its progress; trials, seeds and folds then only read.
A file openSMILE cannot use (too short for its analysis windows, giving undefined features) is a
`DataError` naming it, or with corpus.on_bad_audio=skip is dropped from the manifest and listed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from emoref.config import AugmentConfig, EncoderConfig, RunConfig
from emoref.data.audio import AudioCache
from emoref.data.augment import IMPULSE_RESPONSES_VERSION, Augmenter
from emoref.data.features import FeatureCache, view_seed
from emoref.data.manifest import DataError, Manifest, Utterance
from emoref.storage import SharedStorage, StorageError

# Features per utterance (functionals) or per frame (lld); tests check them against openSMILE.
DIMS = {("eGeMAPSv02", "functionals"): 88, ("eGeMAPSv02", "lld"): 25,
        ("ComParE_2016", "functionals"): 6373, ("ComParE_2016", "lld"): 65}
# Shorter audio than this leaves openSMILE's 60 ms ComParE windows too few frames for functionals
# (it fills them with NaN); 0.1 s is the shortest length that gave finite values for both sets.
MIN_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class Extraction:
    """What one cached openSMILE value depends on (besides the audio file)."""

    feature_set: str
    level: str
    sample_rate: int
    views: int  # K augmented views besides the clean one (0: the clean audio only)
    augment: AugmentConfig
    cache_dir: str
    corpus: str

    @classmethod
    def of(cls, config: RunConfig, encoder: EncoderConfig | None = None,
           views: int | None = None) -> "Extraction":
        e = encoder or config.encoder
        return cls(e.feature_set, e.level, config.audio.sample_rate,
                   e.views if views is None else views, config.augment, config.corpus.cache_dir,
                   config.corpus.name)

    def spec(self, view: int) -> dict[str, Any]:
        import opensmile
        spec = {"feature_set": self.feature_set, "level": self.level,
                "opensmile": opensmile.__version__, "sample_rate": self.sample_rate, "view": view}
        if view:
            spec["augment"] = dataclasses.asdict(self.augment)
            spec["impulse_responses"] = IMPULSE_RESPONSES_VERSION
        return spec

    def keys(self, utterances: Sequence[Utterance]) -> list[str]:
        """Each utterance's audio key (path, size, mtime, sample rate: `AudioCache.key`)."""
        cache = AudioCache(self.cache_dir, self.corpus, self.sample_rate)
        return [cache.key(u.path) for u in utterances]

    def store(self, view: int) -> FeatureCache:
        return FeatureCache(self.cache_dir, "opensmile", self.spec(view))


def smile(feature_set: str, level: str) -> Any:
    import opensmile
    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set),
        feature_level=(opensmile.FeatureLevel.Functionals if level == "functionals"
                       else opensmile.FeatureLevel.LowLevelDescriptors))


def extract(extractor: Any, wave: np.ndarray, sample_rate: int, name: str) -> np.ndarray:
    """(F,) functionals or (frames, F) descriptors of one waveform; DataError naming `name` when
    openSMILE cannot describe it."""
    if len(wave) < MIN_SECONDS * sample_rate:
        raise DataError(f"{name}: {len(wave) / sample_rate:.3f} s of audio is too short for "
                        f"openSMILE's analysis windows (at least {MIN_SECONDS} s)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Segment too short": caught as NaN below
            values = extractor.process_signal(wave, sample_rate).to_numpy(np.float32)
    except Exception as err:  # openSMILE's own errors carry no file name
        raise DataError(f"{name}: openSMILE could not process it ({type(err).__name__}: {err})"
                        ) from None
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise DataError(f"{name}: openSMILE gave {bad} undefined feature value(s) (audio too "
                        "short or silent for its analysis windows)")
    return values[0] if values.shape[0] == 1 and extractor.feature_level.name == "Functionals" \
        else values


def extract_items(job: Extraction, items: Sequence[tuple[str, str, int]]
                  ) -> list[np.ndarray | str]:
    """Features of (audio path, utterance id, view) items; an item openSMILE cannot use gives its
    error message instead of an array (the caller decides: stop, or skip the file)."""
    extractor = smile(job.feature_set, job.level)
    audio = AudioCache(job.cache_dir, job.corpus, job.sample_rate)
    augment = Augmenter(job.augment, job.sample_rate, job.cache_dir)
    out: list[np.ndarray | str] = []
    for path, utterance_id, view in items:
        try:
            wave = audio.get(path)
            if view:
                wave = augment(wave, view_seed(utterance_id, view))
            out.append(extract(extractor, wave, job.sample_rate,
                               path if not view else f"{path} (augmented view {view})"))
        except DataError as err:
            out.append(str(err))
    return out


def extract_checked(job: Extraction, items: Sequence[tuple[str, str, int]],
                    storage: SharedStorage | None) -> list[np.ndarray | str]:
    """extract_items in a Ray task: on its node, first, the check that it sees the corpus and
    the cache as the driver does (a node that does not fails with StorageError, naming itself,
    instead of reporting every file as missing)."""
    if storage is not None:
        storage.verify()
    return extract_items(job, items)


def _ray_map(job: Extraction, chunks: list[list[tuple[str, str, int]]],
             done: Callable[[int, list[np.ndarray | str]], None],
             storage: SharedStorage | None = None) -> None:
    """Each chunk as one Ray task (1 CPU), results handed to `done` as they arrive."""
    import ray
    task = ray.remote(num_cpus=1)(extract_checked)
    pending = {task.remote(job, chunk, storage): i for i, chunk in enumerate(chunks)}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            try:
                done(pending.pop(ref), ray.get(ref))
            except ray.exceptions.RayTaskError as err:
                if isinstance(err.cause, StorageError):  # its one line, not a traceback
                    raise err.cause from None
                raise


def pending(utterances: Sequence[Utterance], job: Extraction) -> int:
    """How many (utterance, view) values of `job` are not cached yet."""
    keys = job.keys(utterances)
    return sum(len(job.store(view).missing(keys)) for view in range(1 + job.views))


def fill(utterances: Sequence[Utterance], job: Extraction, use_ray: bool | None = None,
         echo: bool = True, storage: SharedStorage | None = None) -> dict[str, str]:
    """Computes every (utterance, view) value missing from the cache; returns {audio path: error
    message} for the files openSMILE could not use (nothing is written for those). Ray tasks over every
    core when Ray is running (`use_ray` None: whenever ray.is_initialized()), else here."""
    keys = job.keys(utterances)
    stores = [job.store(view) for view in range(1 + job.views)]
    todo = [(utterances[i].path, utterances[i].id, keys[i], view)
            for view, store in enumerate(stores) for i in store.missing(keys)]
    if not todo:
        return {}
    if use_ray is None:
        import ray
        use_ray = ray.is_initialized()
    errors: dict[str, str] = {}
    with contextlib.ExitStack() as locks:
        for store in stores:  # fixed order: concurrent fillers cannot deadlock
            locks.enter_context(store.locked())
        todo = [item for item in todo if not stores[item[3]].path(item[2]).is_file()]
        size = max(1, min(32, len(todo) // 64))  # items per Ray task
        chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
        work = [[(path, uid, view) for path, uid, _, view in chunk] for chunk in chunks]
        start, last, finished = time.perf_counter(), 0.0, 0

        def done(index: int, values: list[np.ndarray | str]) -> None:
            nonlocal last, finished
            for (path, _, key, view), value in zip(chunks[index], values):
                if isinstance(value, str):
                    errors.setdefault(path, value)
                else:
                    stores[view].write(key, value)
            finished += len(values)
            now = time.perf_counter() - start
            if echo and (now - last > 5 or finished == len(todo)):
                last = now
                print(f"openSMILE {job.feature_set} {job.level}: {finished}/{len(todo)} "
                      f"(utterance, view) extracted, {now:.0f} s", file=sys.stderr, flush=True)

        if use_ray:
            _ray_map(job, work, done, storage)
        else:
            for i, chunk in enumerate(work):
                done(i, extract_items(job, chunk))
    return errors


def prepare(manifest: Manifest, jobs: Sequence[Extraction], on_bad_audio: str = "error",
            echo: bool = True, storage: SharedStorage | None = None) -> Manifest:
    """Fills the cache for every job over the whole manifest (before any split or training, so
    trials only read). A file openSMILE cannot use stops here with its name, or with
    on_bad_audio=skip is dropped from the returned manifest and listed in its `skipped`.
    `storage`: what each Ray task checks on its node first (emoref.storage)."""
    bad: dict[str, str] = {}
    for job in jobs:
        for path, message in fill(manifest.utterances, job, echo=echo, storage=storage).items():
            bad.setdefault(path, message)
    if not bad:
        return manifest
    if on_bad_audio != "skip":
        first = next(iter(bad.values()))
        raise DataError(f"{first}; {len(bad)} file(s) in all. Set corpus.on_bad_audio=skip to "
                        "leave such files out")
    kept = tuple(u for u in manifest.utterances if u.path not in bad)
    return dataclasses.replace(manifest, utterances=kept,
                               skipped=manifest.skipped + tuple(bad.values()))


def read(utterances: Sequence[Utterance], job: Extraction, view: int) -> list[np.ndarray]:
    """Each utterance's cached value of `view`, extracting here whatever is missing."""
    keys = job.keys(utterances)
    store = job.store(view)

    def compute(positions: list[int]) -> list[np.ndarray]:
        values = extract_items(job, [(utterances[i].path, utterances[i].id, view)
                                     for i in positions])
        for value in values:
            if isinstance(value, str):
                raise DataError(value)
        return values  # type: ignore[return-value]

    return store.get(keys, compute)


class OpenSmileInputs:
    """A part's utterances as openSMILE features of their clean audio (view 0) and K augmented
    views: `batch(rows, views)` -> ((B, F) vectors, None) for functionals, ((B, T, F) frames,
    (B, T) bool mask) for descriptors. Values are raw; the model standardises them."""

    def __init__(self, utterances: Sequence[Utterance], config: RunConfig) -> None:
        self.utterances = utterances
        self.job = Extraction.of(config)
        self.n_views = config.encoder.views
        self.level = config.encoder.level
        self.dim = DIMS[(self.job.feature_set, self.level)]
        # [view][utterance] -> (F,) or (frames, F)
        self.values = [read(utterances, self.job, view) for view in range(1 + self.n_views)] \
            if len(utterances) else []

    def __len__(self) -> int:
        return len(self.utterances)

    def clean(self) -> list[np.ndarray]:
        """Each utterance's clean-audio features (for standardisation statistics)."""
        return self.values[0] if self.values else []

    def batch(self, rows: np.ndarray, views: int | np.ndarray = 0
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = np.asarray(rows, dtype=int)
        views = np.broadcast_to(np.asarray(views, dtype=int), rows.shape)
        picked = [self.values[v][r] for r, v in zip(rows, views)]
        if self.level == "functionals":
            if not picked:
                return torch.zeros((0, self.dim)), None
            return torch.from_numpy(np.stack(picked)), None
        length = max((len(p) for p in picked), default=1)
        frames = np.zeros((len(picked), length, self.dim), dtype=np.float32)
        mask = np.zeros((len(picked), length), dtype=bool)
        for i, p in enumerate(picked):
            frames[i, :len(p)], mask[i, :len(p)] = p, True
        return torch.from_numpy(frames), torch.from_numpy(mask)
