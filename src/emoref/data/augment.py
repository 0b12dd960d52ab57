"""IPR's augmented view (Sec. 2.3: "adding noise, changing volume, adding reverberation, and changing
pitch"), built with audiomentations.

Reverberation uses audiomentations' ApplyImpulseResponse over room responses this module generates
(exponentially decaying noise with an RT60 drawn from the configured range), since no impulse-response
files can be assumed on a user's machine. They are written once to the cache and reused.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

from emoref.config import AugmentConfig

N_IMPULSE_RESPONSES = 16
# Bumped whenever the generated responses change, so caches built on older ones (folders of
# responses, frozen-encoder embeddings of augmented views) are not mixed with new ones.
IMPULSE_RESPONSES_VERSION = 2


def synthetic_impulse_responses(directory: Path, rt60: tuple[float, float], sample_rate: int,
                                count: int = N_IMPULSE_RESPONSES) -> list[Path]:
    """Write `count` room impulse responses (WAV) into `directory`; returns their paths, in order.

    Safe when several trials share the folder: response i comes from its own generator (so it is
    the same whichever files already exist), each is written under a name private to this
    process and renamed into place atomically. The reverb draws from the returned list, not from
    whatever audio the folder holds: a folder scan would also pick up another trial's response
    still being written (gone a moment later: FileNotFoundError) or one left by a killed process,
    and a seeded draw from a longer list picks other responses."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"rir_{i:02d}.wav" for i in range(count)]
    for i, (path, t60) in enumerate(zip(paths, np.linspace(rt60[0], rt60[1], count))):
        if path.is_file():
            continue
        rng = np.random.default_rng([1234, i])
        n = int(t60 * sample_rate)
        decay = np.exp(-6.9078 * np.arange(n) / n)  # -60 dB at t60
        response = rng.standard_normal(n) * decay
        response[0] = 1.0  # direct path
        response /= np.abs(response).max()
        # Not a .wav name while it is written (the format given explicitly instead).
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
        sf.write(tmp, response.astype(np.float32), sample_rate, subtype="FLOAT", format="WAV")
        tmp.replace(path)
    return paths


class Augmenter:
    """Callable (samples,) float32 -> (samples,) float32 augmented view, reproducible per call seed."""

    def __init__(self, config: AugmentConfig, sample_rate: int, cache_dir: str | Path) -> None:
        # Imported here, not at the top: audiomentations pulls in scipy.signal (~2 s), which every
        # process that imports emoref (each Ray worker) would pay even when it never augments.
        from audiomentations import AddGaussianSNR, ApplyImpulseResponse, Compose, Gain, PitchShift
        self.sample_rate = sample_rate
        ir_dir = (Path(cache_dir).expanduser() / "impulse_responses" /
                  f"v{IMPULSE_RESPONSES_VERSION}_{sample_rate}_{config.reverb_rt60[0]:g}_"
                  f"{config.reverb_rt60[1]:g}")
        transforms = [
            AddGaussianSNR(min_snr_db=config.noise_snr_db[0], max_snr_db=config.noise_snr_db[1],
                           p=config.noise_p),
            Gain(min_gain_db=config.gain_db[0], max_gain_db=config.gain_db[1], p=config.gain_p),
            ApplyImpulseResponse(ir_path=synthetic_impulse_responses(
                ir_dir, config.reverb_rt60, sample_rate), p=config.reverb_p,
                leave_length_unchanged=True),
            PitchShift(min_semitones=config.pitch_semitones[0],
                       max_semitones=config.pitch_semitones[1], p=config.pitch_p),
        ]
        self.compose = Compose(transforms)

    def __call__(self, wave: np.ndarray, seed: int) -> np.ndarray:
        # audiomentations draws from Python's and NumPy's global generators; seed both per call so a
        # view depends only on (wave, seed), then restore them for the caller.
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            out = self.compose(samples=wave.astype(np.float32, copy=False),
                               sample_rate=self.sample_rate)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return np.clip(out, -1.0, 1.0).astype(np.float32)
