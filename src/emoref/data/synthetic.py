"""The built-in synthetic corpus: speech-like WAV files whose emotions are blended and rated.

Why it exists: every command must run on a fresh machine with no licensed corpus, and the ambiguity
split must mean something there. So each utterance renders a *mixture* of emotions and simulated
raters vote from that mixture: pure utterances get unanimous votes (D1), blends split the raters
(D2, D3), exactly the structure IPR is about.

How an utterance is made (all deterministic from the corpus seed):
- a mixture w over the classes ~ Dirichlet(0.5 + purity * onehot(primary)), purity log-uniform in
  [purity_min, purity_max];
- syllables at the mixture's tempo; each syllable's emotion is drawn from w (emotion varies within
  the utterance, as EPR's segment-level profiles assume) and its prosody is half that emotion's and
  half the mixture's mean;
- a voiced source (glottal pulse train at f0 with jitter, through a one-pole spectral-tilt filter,
  with breath noise) shaped by three formant resonators of a random vowel, scaled per speaker;
- f0 level, range and contour slope, tempo, loudness and tilt depend on the emotion;
- raters vote ~ w sharpened (p proportional to w**1.5) with a 5% lapse to a uniform guess; the label
  is the majority vote (ties to the larger mixture weight), agreement the share voting for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from emoref.config import SyntheticConfig
from emoref.data.manifest import Manifest, Utterance

GENERATOR_VERSION = 1  # bump when the rendering changes, so cached corpora are regenerated

# Per-emotion prosody: f0 factor (x speaker base), f0 range (semitones), contour slope (semitones
# over the utterance), tempo (syllables/s), loudness (dB), tilt (one-pole coefficient: higher is
# darker), jitter (fraction of the period), breathiness (noise share).
EMOTION_PROSODY: dict[str, tuple[float, float, float, float, float, float, float, float]] = {
    "anger":     (1.30, 7.0, -2.0, 5.5, 6.0, 0.55, 0.015, 0.05),
    "happiness": (1.35, 9.0, 3.0, 5.0, 3.0, 0.70, 0.010, 0.08),
    "sadness":   (0.90, 2.0, -4.0, 3.0, -6.0, 0.93, 0.006, 0.25),
    "neutral":   (1.00, 3.5, -1.0, 4.0, 0.0, 0.82, 0.005, 0.10),
    "fear":      (1.45, 6.0, 1.0, 6.0, -1.0, 0.75, 0.030, 0.20),
    "boredom":   (0.85, 1.5, -2.0, 2.8, -4.0, 0.90, 0.006, 0.15),
    "disgust":   (0.95, 5.0, -3.0, 3.2, 0.0, 0.80, 0.020, 0.12),
}
# (F1, F2, F3) in Hz of five vowels for an adult male vocal tract; speakers scale them.
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
                   [570, 840, 2410]], dtype=np.float64)
FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 140.0])  # Hz


def corpus_key(config: SyntheticConfig) -> str:
    """Cache key naming everything the files depend on."""
    text = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(config)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_synthetic_corpus(config: SyntheticConfig, cache_dir: Path) -> Manifest:
    """The corpus under `cache_dir/synthetic/<key>/`, generated on first use (atomically)."""
    target = Path(cache_dir) / "synthetic" / corpus_key(config)
    if not (target / "manifest.csv").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            generate(config, staging)
            try:
                os.rename(staging, target)
            except OSError:  # another process finished first; its copy is identical
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    manifest = Manifest.from_csv(target / "manifest.csv", "synthetic", config.classes)
    # Paths are stored relative so a moved cache still works.
    return dataclasses.replace(manifest, utterances=tuple(
        dataclasses.replace(u, path=str(target / u.path)) for u in manifest.utterances))


def generate(config: SyntheticConfig, out_dir: Path) -> Manifest:
    """Write `wav/*.wav` and `manifest.csv` into `out_dir`; returns the manifest (relative paths)."""
    rng = np.random.default_rng(config.seed)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    classes, k = config.classes, len(config.classes)
    speakers = [_speaker(i, rng) for i in range(config.n_speakers)]
    utterances = []
    for index in range(config.n_utterances):
        primary = index % k  # balanced primary emotions
        speaker = speakers[index % config.n_speakers]
        purity = float(np.exp(rng.uniform(np.log(config.purity_min), np.log(config.purity_max))))
        alpha = np.full(k, 0.5)
        alpha[primary] += purity
        mixture = rng.dirichlet(alpha)
        duration = float(rng.uniform(config.min_duration, config.max_duration))
        wave = _render(mixture, classes, speaker, duration, config.sample_rate, rng)
        votes = _rate(mixture, config.n_raters, rng)
        order = sorted(range(k), key=lambda c: (-votes[c], -mixture[c]))
        label = order[0]
        utt_id = f"syn{index:05d}"
        rel = f"wav/{utt_id}.wav"
        sf.write(out_dir / rel, wave, config.sample_rate, subtype="PCM_16")
        utterances.append(Utterance(
            id=utt_id, path=rel, speaker=speaker["id"], label=classes[label],
            agreement=float(votes[label] / config.n_raters),
            votes=tuple((classes[c], int(votes[c])) for c in order if votes[c] > 0),
            n_raters=config.n_raters, duration=len(wave) / config.sample_rate, corpus="synthetic",
            extra=(("primary", classes[primary]),
                   ("mixture", ",".join(f"{w:.4f}" for w in mixture)))))
    manifest = Manifest(corpus="synthetic", classes=tuple(classes), utterances=tuple(utterances))
    manifest.to_csv(out_dir / "manifest.csv")
    return manifest


def _speaker(index: int, rng: np.random.Generator) -> dict:
    female = index % 2 == 0
    return {"id": f"spk{index + 1:02d}{'F' if female else 'M'}",
            "f0": (205.0 if female else 118.0) * rng.uniform(0.9, 1.1),  # Hz
            "formant_scale": (1.16 if female else 1.0) * rng.uniform(0.96, 1.04)}


def _rate(mixture: np.ndarray, n_raters: int, rng: np.random.Generator) -> np.ndarray:
    """Vote counts per class from `n_raters` simulated raters."""
    perceived = mixture ** 1.5
    perceived = 0.95 * perceived / perceived.sum() + 0.05 / len(mixture)
    return rng.multinomial(n_raters, perceived)


def _render(mixture: np.ndarray, classes: tuple[str, ...], speaker: dict, duration: float,
            sr: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) float32 waveform in [-1, 1]."""
    from scipy.signal import lfilter  # here: scipy.signal takes ~1 s to import
    table = np.array([EMOTION_PROSODY[c] for c in classes])  # (K, 8)
    mean = mixture @ table
    n = int(duration * sr)
    n_syll = max(1, int(round(duration * mean[3])))
    bounds = np.linspace(0, n, n_syll + 1).astype(int)
    t = np.arange(n) / n  # normalised time over the utterance
    out = np.zeros(n)
    for s in range(n_syll):
        emotion = rng.choice(len(classes), p=mixture)
        f0_factor, f0_range, slope, _, loud_db, tilt, jitter, breath = 0.5 * (mean + table[emotion])
        start, end = bounds[s], bounds[s + 1]
        voiced_end = start + int(0.72 * (end - start))
        # f0 contour (Hz): level x (global slope + a per-syllable accent within the emotion's range).
        accent = rng.uniform(-0.5, 0.5) * f0_range
        semitones = slope * (t[start:voiced_end] - 0.5) + accent * np.hanning(voiced_end - start)
        f0 = speaker["f0"] * f0_factor * 2.0 ** (semitones / 12.0)
        f0 *= 1.0 + jitter * rng.standard_normal(len(f0))
        phase = np.cumsum(f0 / sr)
        pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0])).astype(np.float64)
        source = lfilter([1.0], [1.0, -tilt], pulses)  # spectral tilt: glottal roll-off
        source = (1 - breath) * source / (np.abs(source).max() + 1e-9)
        source += breath * rng.standard_normal(len(source)) * 0.3
        vowel = VOWELS[rng.integers(len(VOWELS))] * speaker["formant_scale"]
        voiced = source
        for freq, bw in zip(vowel, FORMANT_BANDWIDTHS):
            r = np.exp(-np.pi * bw / sr)
            theta = 2 * np.pi * min(freq, 0.45 * sr) / sr
            voiced = lfilter([1 - r], [1.0, -2 * r * np.cos(theta), r * r], voiced)
        voiced = voiced / (np.sqrt(np.mean(voiced ** 2)) + 1e-9)  # unit RMS, then the emotion's level
        out[start:voiced_end] += 0.08 * 10 ** (loud_db / 20.0) * np.hanning(len(voiced)) ** 0.5 * voiced
        # Unvoiced stretch: a faint fricative.
        out[voiced_end:end] += 0.01 * 10 ** (loud_db / 20.0) * rng.standard_normal(end - voiced_end)
    out += 10 ** (-50 / 20) * rng.standard_normal(n)  # room noise floor, -50 dBFS
    return np.clip(out, -1.0, 1.0).astype(np.float32)
