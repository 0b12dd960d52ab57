"""Pair 6: wav2vec2-base fine-tuning throughput on a GPU, bf16 autocast vs fp32.

The IPR paper preset's training step as the methods run it (`SERModel`: encoder, pooled
classifier and projection head; `Runtime.autocast` and `Runtime.step`; AdamW at the preset's
learning rate), on batches of the preset's size and crop length (8 x 6 s at 16 kHz). The
weights are a randomly initialised wav2vec2-base (`encoder.pretrained=false`,
`encoder.size=base`): the same architecture and arithmetic as facebook/wav2vec2-base, so the same
throughput, with nothing downloaded. Both sides run the same steps on the same batches, after
warm-up steps, alternating repeats; the figure is samples (utterances) per second.

Without CUDA the full pair is skipped (the result says so); `--quick` runs it on the CPU with
the tiny architecture to check the code path (bf16 autocast exists on CPU too)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.common import Figure, Result
from emoref.config import build_config
from emoref.runtime import Runtime
from emoref.methods.common import SERModel

FULL = ("encoder.pretrained=false", "encoder.size=base")
QUICK = ("encoder.pretrained=false", "encoder.size=tiny", "audio.max_seconds=1.0",
         "train.batch_size=4")
STEPS, WARMUP = 20, 5  # timed steps per repeat, and untimed ones before them
QUICK_STEPS = 3


def throughput(config, device: torch.device, precision: str, steps: int, warmup: int,
               n_classes: int = 4) -> float:
    """Samples per second of `steps` fine-tuning steps, after `warmup` untimed ones."""
    torch.manual_seed(0)
    model = SERModel(config, n_classes)
    runtime = Runtime(device=device, precision=precision)
    module = runtime.prepare(model)
    module.train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.train.lr)
    batch = config.train.batch_size
    samples = int(config.audio.max_seconds * config.audio.sample_rate)
    generator = torch.Generator().manual_seed(0)
    wave = (0.1 * torch.randn(batch, samples, generator=generator)).to(device)
    mask = torch.ones(batch, samples, dtype=torch.bool, device=device)
    labels = torch.randint(n_classes, (batch,), generator=generator).to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with runtime.autocast():
            logits, _ = module(wave, mask)
        runtime.step(F.cross_entropy(logits.float(), labels), optimizer)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch / (time.perf_counter() - start)


def run(work: Path, quick: bool, repeats: int) -> Result:
    title = "6. wav2vec2-base fine-tuning throughput on a GPU, bf16 vs fp32"
    if not quick and not torch.cuda.is_available():
        return Result(title=title, setup="skipped: no CUDA device on this machine",
                      figures=[], ratios={})
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    config = build_config("paper", list(QUICK if quick else FULL), method="ipr")
    steps, warmup = (QUICK_STEPS, 1) if quick else (STEPS, WARMUP)
    fp32, bf16 = Figure("fp32", "samples/s"), Figure("bf16 autocast", "samples/s")
    for _ in range(repeats):
        fp32.values.append(throughput(config, device, "fp32", steps, warmup))
        bf16.values.append(throughput(config, device, "bf16", steps, warmup))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return Result(
        title=title,
        setup=f"{name}; wav2vec2 {config.encoder.size} architecture (random weights), batch "
              f"{config.train.batch_size} x {config.audio.max_seconds:g} s, AdamW, {steps} steps "
              f"after {warmup} warm-up, {repeats} alternating repeats",
        figures=[fp32, bf16],
        ratios={"bf16_over_fp32": (bf16.median / fp32.median, "samples per second")})
