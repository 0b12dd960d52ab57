"""Audio: decode (soundfile), mono, resample to 16 kHz (torchaudio), a disk cache, batching with
masks, 64-bin log-Mel and fixed-length segments."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch
import torchaudio

from emoref.config import AudioConfig
from emoref.data.manifest import DataError


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """(samples,) float32 mono waveform at `sample_rate`."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except Exception as err:
        raise DataError(f"{path}: cannot decode audio ({type(err).__name__}: {err})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: no audio frames (empty file)")
    wave = data.mean(axis=1)
    if sr != sample_rate:
        wave = torchaudio.functional.resample(torch.from_numpy(wave), sr, sample_rate).numpy()
    return np.ascontiguousarray(wave, dtype=np.float32)


class AudioCache:
    """Decoded, resampled waveforms as .npy under `root/audio/<corpus>/`.

    The key names the file's absolute path, size and modification time and the target rate, so an
    edited or replaced file is decoded again instead of served stale.
    """

    def __init__(self, root: str | Path, corpus: str, sample_rate: int) -> None:
        self.dir = Path(root).expanduser() / "audio" / corpus
        self.sample_rate = sample_rate

    def key(self, path: str | Path) -> str:
        path = Path(path).resolve()
        try:
            stat = path.stat()
        except OSError:
            raise DataError(f"{path}: file not found") from None
        text = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{self.sample_rate}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def get(self, path: str | Path) -> np.ndarray:
        target = self.dir / f"{self.key(path)}.npy"
        if target.is_file():
            try:
                return np.load(target)
            except (OSError, ValueError):
                pass  # a torn cache file: decode again below
        wave = load_audio(path, self.sample_rate)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, wave)
        os.replace(tmp, target)  # atomic: concurrent trials never read a half-written file
        return wave


def crop_or_pad(wave: np.ndarray, length: int, mode: str, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, int]:
    """A (length,) window of `wave` and how many of its samples are real (the rest is zero padding).

    mode: "random" (training), "center" (evaluation) or "start".
    """
    if len(wave) <= length:
        out = np.zeros(length, dtype=np.float32)
        out[:len(wave)] = wave
        return out, len(wave)
    excess = len(wave) - length
    if mode == "random":
        start = int((rng or np.random.default_rng()).integers(0, excess + 1))
    elif mode == "center":
        start = excess // 2
    elif mode == "start":
        start = 0
    else:
        raise ValueError(f"crop mode must be random, center or start, got {mode!r}")
    return wave[start:start + length].astype(np.float32, copy=False), length


def collate(waves: Sequence[np.ndarray], max_samples: int, mode: str,
            rng: np.random.Generator | None = None, keep: np.ndarray | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) float waveforms and a (B, T) bool mask of real samples; T = min(longest, max_samples).

    `keep` (rows of `waves`) returns only those rows, with T and the random crops still drawn for
    the whole batch: a DDP rank building its shard of a global batch gets exactly the rows, padding
    and crops one process would (only the kept rows' audio is read, so the others may be stand-ins
    of the same length).
    """
    length = min(max(len(w) for w in waves), max_samples)
    rows = np.arange(len(waves)) if keep is None else np.asarray(keep)
    position = {int(r): i for i, r in enumerate(rows)}
    batch = np.zeros((len(rows), length), dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=bool)
    for i, wave in enumerate(waves):
        window, valid = crop_or_pad(wave, length, mode, rng)  # draws for every row, kept or not
        if i in position:
            batch[position[i]] = window
            mask[position[i], :valid] = True
    return torch.from_numpy(batch), torch.from_numpy(mask)


class LogMel(torch.nn.Module):
    """(..., samples) -> (..., n_mels, frames) natural-log Mel power.

    frames = 1 + (samples - window) // hop with config.center false (the EPR paper's count), or
    1 + samples // hop when true. Inputs shorter than one window are zero-padded to one window.
    """

    def __init__(self, config: AudioConfig) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft,
            win_length=int(round(config.sample_rate * config.win_ms / 1000)),
            hop_length=int(round(config.sample_rate * config.hop_ms / 1000)),
            n_mels=config.n_mels, power=2.0, center=config.center)
        self.window, self.center = self.mel.spectrogram.win_length, config.center
        # torch.stft centres a short window inside n_fft; padding (n_fft - window) / 2 zeros on each
        # side makes frame j cover exactly samples [j * hop, j * hop + window) (the window is zero
        # over the padding, so nothing else changes).
        self.side = (config.n_fft - self.window) // 2

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] < self.window:
            wave = torch.nn.functional.pad(wave, (0, self.window - wave.shape[-1]))
        if not self.center:
            wave = torch.nn.functional.pad(wave, (self.side, self.side))
        return torch.log(self.mel(wave) + 1e-6)


def segment_count(frames: int, segment_frames: int, hop: int) -> int:
    """Segments of `segment_frames` frames every `hop` frames; a shorter input gives one padded one."""
    return 1 if frames <= segment_frames else 1 + (frames - segment_frames) // hop


def segments(logmel: torch.Tensor, segment_frames: int, hop: int) -> torch.Tensor:
    """(n_mels, frames) -> (N, segment_frames, n_mels), N = segment_count(frames, ...).

    An input shorter than one segment is padded with its own minimum (silence in log-Mel terms).
    """
    n_mels, frames = logmel.shape
    if frames < segment_frames:
        pad = logmel.min().expand(n_mels, segment_frames - frames)
        logmel = torch.cat([logmel, pad], dim=1)
    windows = logmel.unfold(1, segment_frames, hop)  # (n_mels, N, segment_frames)
    return windows.permute(1, 2, 0).contiguous()
