"""Decoding, resampling, the decoded-audio cache, batching masks, log-Mel, segments, augmentation."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from emoref.config import AudioConfig, AugmentConfig
from emoref.data.audio import (AudioCache, LogMel, collate, crop_or_pad, load_audio, segment_count,
                               segments)
from emoref.data.augment import Augmenter
from emoref.data.manifest import DataError


def test_decode_stereo_44k_to_mono_16k(tmp_path, tone):
    path = tone(tmp_path / "s.wav", seconds=0.5, sr=44100, channels=2)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 8000


def test_decode_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="bad.wav: cannot decode audio"):
        load_audio(bad, 16000)


def test_cache_hits_and_invalidates_on_change(tmp_path, tone):
    path = tone(tmp_path / "a.wav", seconds=0.2)
    cache = AudioCache(tmp_path / "cache", "toy", 16000)
    first = cache.get(path)
    files = list((tmp_path / "cache" / "audio" / "toy").glob("*.npy"))
    assert len(files) == 1
    assert np.array_equal(cache.get(path), first)
    tone(path, seconds=0.4, freq=330.0)  # the file changes: new size and mtime
    os.utime(path, ns=(1, 1))
    changed = cache.get(path)
    assert len(changed) == 6400 and len(list(files[0].parent.glob("*.npy"))) == 2


def test_crop_pad_and_masks():
    rng = np.random.default_rng(0)
    short, long_ = np.ones(100, np.float32), np.arange(1000, dtype=np.float32)
    padded, valid = crop_or_pad(short, 300, "random", rng)
    assert valid == 100 and padded[100:].sum() == 0
    centred, valid = crop_or_pad(long_, 300, "center")
    assert valid == 300 and centred[0] == 350
    batch, mask = collate([short, long_], max_samples=500, mode="center")
    assert batch.shape == (2, 500) and mask.shape == (2, 500)
    assert mask[0].sum() == 100 and mask[1].all()


def test_logmel_frames_and_segments():
    config = AudioConfig()
    logmel = LogMel(config)
    wave = torch.randn(16000) * 0.1
    features = logmel(wave)
    assert features.shape == (64, 1 + (16000 - 400) // 160)  # 98 frames, no centring
    segs = segments(features, 32, 1)
    assert segs.shape == (segment_count(98, 32, 1), 32, 64) == (67, 32, 64)
    assert torch.equal(segs[1], features[:, 1:33].T)
    assert segments(features, 32, 3).shape[0] == 1 + (98 - 32) // 3
    short = logmel(torch.randn(2000) * 0.1)
    assert segments(short, 32, 1).shape == (1, 32, 64)
    centred = LogMel(AudioConfig(center=True))(wave)
    assert centred.shape == (64, 1 + 16000 // 160)


def test_augmenter_is_seeded_and_changes_audio(tmp_path):
    config = AugmentConfig(noise_p=1.0, gain_p=1.0, reverb_p=1.0, pitch_p=0.0)
    augment = Augmenter(config, 16000, tmp_path)
    wave = (np.sin(np.arange(8000) / 10) * 0.3).astype(np.float32)
    a, b, c = augment(wave, 7), augment(wave, 7), augment(wave, 8)
    assert a.shape == wave.shape and np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.allclose(a, wave)
    assert len(list(tmp_path.rglob("rir_*.wav"))) == 16
    state = np.random.get_state()[1].copy()
    augment(wave, 9)
    assert np.array_equal(state, np.random.get_state()[1])  # global generators restored
    nothing = Augmenter(AugmentConfig(noise_p=0, gain_p=0, reverb_p=0, pitch_p=0), 16000, tmp_path)
    assert np.array_equal(nothing(wave, 1), wave)


def test_reverb_draws_from_its_own_responses_whatever_else_their_folder_holds(tmp_path, tone):
    """Another file in the responses' folder is never drawn: a trial that listed a response still
    being written by another trial failed when that file was renamed away (FileNotFoundError),
    and a leftover in the list would change every seeded view."""
    config = AugmentConfig(noise_p=0.0, gain_p=0.0, reverb_p=1.0, pitch_p=0.0)
    wave = (np.sin(np.arange(8000) / 10) * 0.3).astype(np.float32)
    clean = Augmenter(config, 16000, tmp_path / "clean")
    folder = next((tmp_path / "clean").rglob("rir_00.wav")).parent
    cluttered = tmp_path / "cluttered" / folder.relative_to(tmp_path / "clean")
    tone(cluttered / "rir_15.4242.0123abcd.tmp.wav")  # what a killed writer once left
    (cluttered / "rir_15.wav.4242.0123abcd.part").write_bytes(b"RIFF")  # one being written now
    augment = Augmenter(config, 16000, tmp_path / "cluttered")
    for seed in range(12):
        np.testing.assert_array_equal(augment(wave, seed), clean(wave, seed))
    assert sorted(p.name for p in cluttered.glob("rir_??.wav")) == [
        f"rir_{i:02d}.wav" for i in range(16)]


def test_impulse_responses_do_not_depend_on_what_exists_and_survive_concurrent_writers(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    from emoref.data.augment import synthetic_impulse_responses

    fresh = synthetic_impulse_responses(tmp_path / "fresh", (0.2, 0.6), 16000, count=6)
    assert fresh == [tmp_path / "fresh" / f"rir_{i:02d}.wav" for i in range(6)]
    fresh = fresh[0].parent
    partial = tmp_path / "partial"
    synthetic_impulse_responses(partial, (0.2, 0.6), 16000, count=6)
    for i in (0, 2):  # regenerate some, the others already there
        (partial / f"rir_{i:02d}.wav").unlink()
    synthetic_impulse_responses(partial, (0.2, 0.6), 16000, count=6)
    shared = tmp_path / "shared"
    with ProcessPoolExecutor(2) as pool:  # two trials creating the same folder at once
        list(pool.map(synthetic_impulse_responses, [shared] * 4, [(0.2, 0.6)] * 4,
                      [16000] * 4, [6] * 4))
    for folder in (partial, shared):
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in fresh.iterdir())
        for path in fresh.iterdir():
            # Samples, not bytes: libsndfile's PEAK chunk in a float WAV carries the second it was
            # written, so files written in different seconds differ there and nowhere else.
            ours, our_rate = sf.read(folder / path.name, dtype="float32")
            theirs, their_rate = sf.read(path, dtype="float32")
            assert our_rate == their_rate
            np.testing.assert_array_equal(ours, theirs)
