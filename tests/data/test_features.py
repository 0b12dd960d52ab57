"""Feature caches: log-Mel frames for EPR and frozen-encoder embeddings for the IPR family.

A cache must stand for recomputation (same numbers), be reused across seeds and trials (nothing
computed twice), and miss whenever anything its values depend on changes."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from emoref.config import ConfigError, build_config
from emoref.data import features
from emoref.data.corpora import load_manifest
from emoref.data.features import FrozenInputs, logmel_frames
from emoref.data.splits import make_split
from emoref.methods import baselines, ipr
from emoref.methods.common import SERModel
from emoref.record import ListReporter
from emoref.models.encoders import build_encoder


def entries(root: Path, kind: str) -> dict[Path, int]:
    """Every cached value of `kind` under `root` with its modification time."""
    return {p: p.stat().st_mtime_ns for p in (root / "features" / kind).glob("*/*.npy")}


@pytest.fixture
def corpus(tmp_path):
    """A fresh cache folder holding the smoke corpus (each test sees its own feature cache)."""
    config = build_config("smoke", [f"corpus.cache_dir={tmp_path}"])
    manifest = load_manifest(config.corpus)
    return config, manifest, tmp_path


def frozen(config, *more):
    from emoref.config import apply_overrides
    pairs = [("encoder.kind", "logmel_cnn"), ("encoder.freeze", "true"), ("encoder.views", "3"),
             ("train.epochs", "2"),
             *(m.split("=", 1) for m in more)]
    return apply_overrides(config, pairs)


def test_logmel_cache_equals_computing_and_is_read_back(corpus, monkeypatch):
    config, manifest, root = corpus
    utterances = manifest.utterances[:12]
    direct = logmel_frames(utterances, config, cache=False)
    first = logmel_frames(utterances, config)
    assert all(np.array_equal(a, b) for a, b in zip(direct, first))
    assert all(a.shape[1] == config.audio.n_mels for a in first)
    stored = entries(root, "logmel")
    assert len(stored) == 12
    # A second reader (another seed, trial or fold) computes nothing: decoding is not even reached.
    monkeypatch.setattr(features, "load_wave", lambda *a: pytest.fail("recomputed a cached value"))
    again = logmel_frames(utterances, config)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert entries(root, "logmel") == stored


def test_logmel_cache_misses_when_settings_or_audio_change(corpus):
    config, manifest, root = corpus
    utterances = manifest.utterances[:3]
    logmel_frames(utterances, config)
    # Other Mel settings: a separate cache.
    wider = dataclasses.replace(config, audio=dataclasses.replace(config.audio, n_mels=32))
    assert logmel_frames(utterances, wider)[0].shape[1] == 32
    assert len(list((root / "features" / "logmel").iterdir())) == 2
    # A segment hop is not part of the key: segments are views into the same frames.
    hop = dataclasses.replace(config, audio=dataclasses.replace(config.audio, segment_hop=3))
    logmel_frames(utterances, hop)
    assert len(list((root / "features" / "logmel").iterdir())) == 2
    # An edited file (new size and time) is computed again, not served stale.
    path = Path(utterances[0].path)
    before = logmel_frames(utterances[:1], config)[0]
    import soundfile as sf
    wave, rate = sf.read(path, dtype="float32")
    sf.write(path, np.concatenate([wave, wave]), rate)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    after = logmel_frames(utterances[:1], config)[0]
    assert len(after) > len(before)


@pytest.mark.parametrize("encoder", ["logmel_cnn", "wav2vec2"])
def test_frozen_embeddings_cached_equal_recomputed(corpus, encoder):
    config, manifest, root = corpus
    config = frozen(config, f"encoder.kind={encoder}", "encoder.size=tiny")
    model = SERModel(config, 4)
    utterances = manifest.utterances[:6]
    cached = FrozenInputs(utterances, config, model.encoder)
    fresh = FrozenInputs(utterances, dataclasses.replace(
        config, encoder=dataclasses.replace(config.encoder, cache=False)), model.encoder)
    assert cached.table is not None and fresh.table is None
    rows, views = np.array([0, 3, 5, 5]), np.array([0, 1, 3, 0])
    a, b = cached.embed(rows, views), fresh.embed(rows, views)
    assert a.shape == (4, model.encoder.dim)
    assert torch.allclose(a, b, atol=1e-5)
    # Augmented views differ from the clean one (a view may draw no transform, or only a gain
    # that the CNN's per-band normalisation removes, so not every one).
    differs = ~np.isclose(cached.table[:, 1:], cached.table[:, :1], atol=1e-4).all(axis=-1)
    assert differs.mean() > 0.5
    # 1 clean + 3 augmented views of 6 utterances, one file each, under four specs.
    assert len(entries(root, "embeddings")) == 6 * 4
    assert len(list((root / "features" / "embeddings").iterdir())) == 4


def test_frozen_encoder_is_shared_by_seeds_and_stays_in_eval(corpus):
    config, _, _ = corpus
    config = frozen(config)
    torch.manual_seed(0)
    a = SERModel(config, 4)
    torch.manual_seed(1)
    b = SERModel(config, 4)
    for x, y in zip(a.encoder.state_dict().values(), b.encoder.state_dict().values()):
        assert torch.equal(x, y)  # encoder.init_seed, whatever the global generator
    assert not torch.equal(a.classifier.net[0].weight, b.classifier.net[0].weight)  # run seed
    a.train()
    assert a.classifier.training and not a.encoder.training
    assert not any(p.requires_grad for p in a.encoder.parameters())


def test_frozen_ipr_uses_the_cache_and_matches_recomputing(corpus, monkeypatch):
    config, manifest, root = corpus
    split = make_split(manifest, config.split)
    config = frozen(config)
    cached, fresh = ListReporter(), ListReporter()
    result = ipr.fit(config, split, cached)
    stored = entries(root, "embeddings")
    n = len({u.id for part in (split.d1, split.d2, split.dev, split.d3) for u in part})
    assert len(stored) == n * (1 + config.encoder.views)
    uncached = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, cache=False))
    ipr.fit(uncached, split, fresh)
    for row_a, row_b in zip(cached.rows, fresh.rows):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert row_a[key] == pytest.approx(row_b[key], abs=1e-4), key
    assert result.checkpoint is not None
    # Another seed and a baseline read the same cache and encode nothing.
    monkeypatch.setattr(features, "encode", lambda *a: pytest.fail("encoded a cached utterance"))
    ipr.fit(dataclasses.replace(config, seed=1), split, ListReporter())
    baselines.fit_baseline_star(config, split, ListReporter())
    assert entries(root, "embeddings") == stored


def test_checkpoint_of_a_frozen_run_annotates_new_audio(corpus):
    config, manifest, _ = corpus
    split = make_split(manifest, config.split)
    config = frozen(config)
    result = ipr.fit(config, split, ListReporter())
    rows = ipr.annotate(result.checkpoint, split.d3[:4], config)
    assert len(rows) == 4 and {"pseudo_label", "confidence"} <= set(rows[0])


def test_encoder_layer_is_checked_and_changes_the_embedding():
    config = build_config("cpu", ["encoder.kind=wav2vec2", "encoder.size=tiny"])
    with pytest.raises(ConfigError, match="encoder.layer"):
        build_config("cpu", ["encoder.layer=2"])  # logmel_cnn has no layers to choose
    too_deep = dataclasses.replace(config.encoder, layer=3)  # tiny has 2
    with pytest.raises(ConfigError, match=r"encoder.layer: expected -1 or 0..2"):
        build_encoder(too_deep, config.audio)
    torch.manual_seed(0)
    last = build_encoder(config.encoder, config.audio).eval()
    first = build_encoder(dataclasses.replace(config.encoder, layer=1), config.audio).eval()
    first.load_state_dict(last.state_dict())
    wave = torch.randn(1, 8000) * 0.1
    mask = torch.ones_like(wave, dtype=torch.bool)
    assert not torch.allclose(last(wave, mask), first(wave, mask))
    with pytest.raises(ConfigError, match="encoder.views"):
        build_config("cpu", ["encoder.views=0"])
