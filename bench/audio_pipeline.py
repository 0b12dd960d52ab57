"""Pair 4: the audio pipeline (decode, resample, augment) per core vs what a training step eats.

Pipeline: the synthetic corpus written at 48 kHz, so every file is decoded (soundfile) and
resampled to 16 kHz (torchaudio), then given IPR's augmentation (noise, gain, reverberation, pitch;
audiomentations), one thread. Training: IPR's step on the cpu preset (log-Mel CNN) with 2 threads,
forward, losses' backward and the AdamW step over pre-built batches: a D1 batch of B and a D2 pair
of 2B (B = 16), i.e. 2B utterances read and B augmented per step.

In emoref decoding and resampling happen once per corpus (AudioCache keeps the 16 kHz waveforms
on disk and a fit holds them in memory); augmentation happens in every step, on the training
thread. The ratios say how many utterances one core prepares per utterance a step consumes: above
1, one core of data preparation keeps up with the step."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch.nn import functional as F

from bench.common import LOGMEL_CNN, Figure, Result, synthetic
from emoref.data.augment import Augmenter
from emoref.data.audio import load_audio
from emoref.methods.common import PerBatch, SERModel, make_batch

FULL = (*LOGMEL_CNN, "corpus.synthetic.n_utterances=96")
QUICK = (*LOGMEL_CNN, "corpus.synthetic.n_utterances=16")


def run(work: Path, quick: bool, repeats: int) -> Result:
    config, manifest = synthetic(work / "cache", "corpus.synthetic.sample_rate=48000",
                                 *(QUICK if quick else FULL))
    paths = [u.path for u in manifest.utterances]
    augment = Augmenter(config.augment, 16000, config.corpus.cache_dir)
    seconds = sum(sf.info(p).duration for p in paths) / len(paths)
    decode, resample, augmented, whole = (Figure(n, "utt/s/core") for n in (
        "decode", "resample 48 -> 16 kHz", "augment", "decode + resample + augment"))
    torch.set_num_threads(1)
    for _ in range(repeats):
        t_decode = t_resample = t_augment = 0.0
        for i, path in enumerate(paths):
            start = time.perf_counter()
            data, rate = sf.read(path, dtype="float32")
            t_decode += time.perf_counter() - start
            start = time.perf_counter()
            wave = torchaudio.functional.resample(torch.from_numpy(data), rate, 16000).numpy()
            t_resample += time.perf_counter() - start
            start = time.perf_counter()
            augment(wave, i)
            t_augment += time.perf_counter() - start
        n = len(paths)
        decode.values.append(n / t_decode)
        resample.values.append(n / t_resample)
        augmented.values.append(n / t_augment)
        whole.values.append(n / (t_decode + t_resample + t_augment))
    # ---- A training step, on batches built beforehand (what the step itself costs).
    torch.set_num_threads(2)
    waves = [load_audio(p, 16000) for p in paths]
    rng = np.random.default_rng(0)
    model = SERModel(config, 4)
    net = PerBatch(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    b = config.train.batch_size
    steps = []
    for step in range(3 if quick else 12):
        idx = rng.choice(len(waves), b)
        pair = [waves[i] for i in idx] + [augment(waves[i], int(i)) for i in idx]
        batches = [make_batch(waves, idx, config, True, rng),
                   make_batch(pair, np.arange(2 * b), config, True, rng)]
        start = time.perf_counter()
        (logits, _), (logits2, _) = net(batches)
        y = torch.from_numpy(rng.integers(0, 4, 3 * b))
        loss = F.cross_entropy(torch.cat([logits, logits2]), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step pays one-off allocations
            steps.append(time.perf_counter() - start)
    consumed = Figure(f"a training step reads ({2 * b} utterances per step, 2 threads)", "utt/s",
                      [2 * b / s for s in steps])
    augmented_need = Figure(f"a training step augments ({b} per step)", "utt/s",
                            [b / s for s in steps])
    return Result(
        title="4. Audio pipeline per core vs a training step's consumption",
        setup=f"{len(paths)} synthetic utterances at 48 kHz (mean {seconds:.2f} s), "
              f"{repeats} passes; IPR step on the cpu preset, batch {b}",
        figures=[decode, resample, augmented, whole, consumed, augmented_need],
        ratios={"pipeline_per_core_over_step": (whole.median / consumed.median,
                                                "decode+resample+augment per core / utterances "
                                                "a step reads"),
                "augment_per_core_over_step": (augmented.median / augmented_need.median,
                                               "augmentations per core / those a step needs")})
