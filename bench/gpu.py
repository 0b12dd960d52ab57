"""python -m bench.gpu OUT [--dry-run] [--budget S] [--model PATH] [--emodb PATH]: the GPU check.

On one CUDA GPU, in at most --budget seconds (default 480), runs every GPU code path of the project
through its own library and command line, and writes OUT/gpu-report.json and OUT/gpu-report.md:
  1 environment: GPU, memory, driver and CUDA, torch and Ray versions, NCCL, bf16 support
  2 wav2vec2-base fine-tuning steps (random weights, batch 8 x 6 s): a plain loop in fp32 and in
    bf16 (samples/s, peak memory), then the bf16 steps in one Ray Train GPU worker on NCCL;
    ratios Ray / plain (goal >= 0.95) and bf16 / fp32
  3 IPR, paper preset (random wav2vec2-base unless --model), synthetic corpus, 2 epochs of capped
    steps through `runner.train ipr ... gpu=true workers=1 train.precision=bf16`; the same command
    again then resumes from the run's last checkpoint
  4 EPR, paper preset (VGG-E, 10 ms hop), EmoDB when present (else the synthetic corpus): one
    stage's epoch on a capped set of segments, segments/s trained against segments/s the log-Mel
    pipeline makes on one core
  5 SyncBatchNorm: EPR's VGG converted, forward and backward in one Ray Train GPU worker
Each step has its own share of the budget; a step whose share is spent is cut short, and a step
that cannot start in the time left is skipped, and the report says so. --dry-run runs the same
steps at tiny sizes on the CPU (gloo, fp32 and CPU bf16 autocast) to check that the script works;
its figures mean nothing. A step that fails is reported with its error and the others still run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
# Seconds of the budget each step may use (scaled to --budget), and the least it needs to start.
SHARES = {"environment": (10, 1), "finetune": (150, 30), "ipr": (170, 60), "epr": (110, 20),
          "syncbn": (40, 15)}
STEPS, WARMUP = 20, 5  # timed and untimed fine-tuning steps per measurement
EPR_SEGMENTS = 16384  # training segments of step 4's epoch (EmoDB has ~118k at a 10 ms hop)


@dataclass
class Step:
    name: str
    status: str = "skipped"  # ok | failed | skipped | timed out
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Clock:
    """The budget: each step's share, never past the end of the whole."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.monotonic(), budget
        self.scale = budget / sum(share for share, _ in SHARES.values())

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def share(self, name: str) -> float:
        return min(SHARES[name][0] * self.scale, self.left())


def run_step(step: Step, clock: Clock, body: Callable[[Step, float], None]) -> Step:
    allowed = clock.share(step.name)
    if allowed < SHARES[step.name][1] * min(clock.scale, 1.0):
        step.notes.append(f"skipped: {clock.left():.0f} s of the budget left, the step needs "
                          f"{SHARES[step.name][1] * min(clock.scale, 1.0):.0f} s")
        return step
    start = time.monotonic()
    try:
        body(step, start + allowed)
        step.status = "ok"
    except subprocess.TimeoutExpired as err:
        step.status = "timed out"
        step.notes.append(f"cut short after its {allowed:.0f} s share: {err.cmd[:6]}")
    except Exception as err:  # noqa: BLE001 - one failing step must not hide the others
        step.status = "failed"
        step.notes.append("".join(traceback.format_exception_only(type(err), err)).strip())
        step.notes.append(traceback.format_exc(limit=-3))
    step.seconds = time.monotonic() - start
    return step


# ----------------------------------------------------------------------------------------------------
# 1. Environment
# ----------------------------------------------------------------------------------------------------

def environment(step: Step, deadline: float) -> None:
    import ray
    f = step.figures
    f.update(torch=torch.__version__, cuda_build=torch.version.cuda, ray=ray.__version__,
             python=platform.python_version(), cpus=os.cpu_count(),
             cuda_available=torch.cuda.is_available(),
             nccl_available=torch.distributed.is_nccl_available())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        f.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                 compute_capability=f"{props.major}.{props.minor}",
                 bf16_supported=torch.cuda.is_bf16_supported(),
                 cudnn=torch.backends.cudnn.version())
        try:
            f["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as err:
            f["driver"] = f"unknown ({type(err).__name__})"


# ----------------------------------------------------------------------------------------------------
# 2. wav2vec2-base fine-tuning: plain loop fp32 / bf16, and bf16 in a Ray Train worker
# ----------------------------------------------------------------------------------------------------

def finetune_config(dry: bool) -> Any:
    from bench.finetune_precision import FULL, QUICK
    from emoref.config import build_config
    return build_config("paper", list(QUICK if dry else FULL), method="ipr")


def measured(config: Any, device: torch.device, precision: str, steps: int, warmup: int
             ) -> dict[str, float]:
    """Samples/s of the project's fine-tuning step (bench pair 6's) and its peak GPU memory."""
    from bench.finetune_precision import throughput
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    rate = throughput(config, device, precision, steps, warmup)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return {"samples_per_s": rate, "steps_per_s": rate / config.train.batch_size,
            "peak_memory_gib": peak}


def ray_worker_steps(payload: dict[str, Any]) -> dict[str, float]:
    """Runs in a Ray Train worker: the same bf16 steps on the worker's device."""
    import ray.train.torch
    device = ray.train.torch.get_device() if payload["gpu"] else torch.device("cpu")
    return measured(payload["config"], device, payload["precision"], payload["steps"],
                    payload["warmup"])


def in_ray_train(fn: Callable[[dict], Any], payload: dict[str, Any], gpu: bool, name: str,
                 storage: Path) -> Any:
    """`fn(payload)` in one Ray Train worker (NCCL on a GPU, gloo on CPU); its return value."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    trainer = TorchTrainer(
        fn, train_loop_config={**payload, "gpu": gpu},
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=1, use_gpu=gpu),
        run_config=ray.train.RunConfig(name=f"{name}-{time.time_ns()}",
                                       storage_path=str(storage)))
    return trainer.fit().return_value


def finetune(step: Step, deadline: float, dry: bool, out: Path) -> None:
    gpu = torch.cuda.is_available() and not dry
    device = torch.device("cuda" if gpu else "cpu")
    config = finetune_config(dry)
    steps, warmup = (3, 1) if dry else (STEPS, WARMUP)
    f = step.figures
    f["setup"] = (f"wav2vec2 {config.encoder.size} architecture (random weights), batch "
                  f"{config.train.batch_size} x {config.audio.max_seconds:g} s, AdamW, {steps} "
                  f"steps after {warmup} warm-up, on {device.type}")
    f["plain_fp32"] = measured(config, device, "fp32", steps, warmup)
    f["plain_bf16"] = measured(config, device, "bf16", steps, warmup)
    f["bf16_over_fp32"] = f["plain_bf16"]["samples_per_s"] / f["plain_fp32"]["samples_per_s"]
    if time.monotonic() > deadline:
        step.notes.append("the Ray Train side was skipped: the step's share was spent")
        return
    f["ray_train_bf16"] = in_ray_train(
        ray_worker_steps, {"config": config, "precision": "bf16", "steps": steps,
                           "warmup": warmup}, gpu, "finetune", out / "ray")
    f["ray_over_plain"] = (f["ray_train_bf16"]["samples_per_s"]
                           / f["plain_bf16"]["samples_per_s"])
    f["ray_over_plain_goal"] = ">= 0.95 (one worker)"


# ----------------------------------------------------------------------------------------------------
# 3. IPR through runner.train on the GPU, then resumed from its checkpoint
# ----------------------------------------------------------------------------------------------------

def ipr_command(out: Path, dry: bool, model: Path | None) -> list[str]:
    weights = ([f"encoder.model={model}", "encoder.pretrained=true"] if model
               else ["encoder.pretrained=false", "encoder.size=tiny" if dry else
                     "encoder.size=base"])
    device = (["gpu=false", "workers=1", "train.precision=fp32"] if dry else
              ["gpu=true", "workers=1", "train.precision=bf16"])
    size = (["corpus.synthetic.n_utterances=48", "corpus.synthetic.max_duration=1.5",
             "audio.max_seconds=1.5", "train.batch_size=4", "train.max_steps_per_epoch=2",
             "reference.feature_set=eGeMAPSv02"] if dry else ["train.max_steps_per_epoch=20"])
    return [sys.executable, "-m", "runner.train", "ipr", "--preset", "paper", "--seeds", "1",
            "--quiet", "--out", str(out / "ipr"), *weights, *device, *size, "train.epochs=2",
            "train.warmup_epochs=1", f"dist.storage={out / 'ray'}", "dist.name=gpu-check",
            f"corpus.cache_dir={out / 'cache'}"]


def epochs_of(out: Path) -> list[dict[str, str]]:
    with (out / "ipr" / "ipr" / "seed0" / "epochs.csv").open() as handle:
        return list(csv.DictReader(handle))


def ipr_run(step: Step, deadline: float, dry: bool, out: Path, model: Path | None) -> None:
    import ray
    command = ipr_command(out, dry, model)
    f = step.figures
    f["command"] = " ".join(command[1:])
    # Both runs join this check's Ray instance, as a command on a cluster's head does, rather
    # than each starting its own: Ray's start-up is not what this step measures.
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    for attempt in ("first", "again"):
        start = time.monotonic()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=max(1.0, deadline - time.monotonic()))
        f[f"{attempt}_wall_s"] = time.monotonic() - start
        if done.returncode != 0:
            raise RuntimeError(f"runner.train ({attempt}) exited {done.returncode}: "
                               f"{(done.stdout + done.stderr)[-1500:]}")
        rows = epochs_of(out)
        f[f"{attempt}_epochs"] = [int(float(r["epoch"])) for r in rows]
        f[f"{attempt}_d3_ua"] = [float(r["d3_ua"]) for r in rows if r.get("d3_ua")]
        if attempt == "first":
            first_rows = rows
    checkpoints = sorted((out / "ray").glob("gpu-check-*/checkpoint_*"))
    f["checkpoints"] = len(checkpoints)
    # Rerunning the same command finds the finished run's checkpoint (the run is named after the
    # config, split and code), loads it and has nothing left to train: the same rows come back.
    f["resumed_same_rows"] = rows == first_rows
    if not checkpoints or not f["resumed_same_rows"]:
        raise RuntimeError(f"resume check failed: {len(checkpoints)} checkpoint(s), rows equal: "
                           f"{f['resumed_same_rows']}")


# ----------------------------------------------------------------------------------------------------
# 4. EPR's stage epoch on the GPU against the log-Mel pipeline
# ----------------------------------------------------------------------------------------------------

def epr_rate(step: Step, deadline: float, dry: bool, out: Path, emodb_root: Path | None) -> None:
    import numpy as np
    from torch.nn import functional as F

    from bench.common import SHARED_EMODB
    from emoref.config import build_config
    from emoref.data.corpora import load_manifest
    from emoref.data.features import load_waves, logmel_frames
    from emoref.data.segments import bank_from_frames
    from emoref.methods import epr
    from emoref.methods.common import label_array
    from emoref.runtime import Runtime

    root = emodb_root or SHARED_EMODB
    overrides = [f"corpus.cache_dir={out / 'cache'}", "epr.max_epochs=1", "epr.depth=1"]
    if dry:
        overrides += ["corpus.synthetic.n_utterances=32", "epr.vgg=A", "epr.width=0.0625",
                      "epr.fc=16", "epr.batch_size=32"]
    elif (root / "wav").is_dir():
        overrides += ["corpus.name=emodb", f"corpus.root={root}"]
    config = build_config("paper", overrides, method="epr")
    manifest = load_manifest(config.corpus)
    utterances = manifest.utterances
    gpu = torch.cuda.is_available() and not dry
    runtime = Runtime(device=torch.device("cuda" if gpu else "cpu"),
                      precision="bf16" if gpu else "fp32")
    load_waves(utterances, config)  # decoding and resampling happen once per corpus
    torch.set_num_threads(1)  # the pipeline's rate on one core
    start = time.perf_counter()
    frames = logmel_frames(utterances, config, cache=False)
    bank = bank_from_frames(frames, config.audio)
    pipeline = len(bank.starts) / (time.perf_counter() - start)
    torch.set_num_threads(os.cpu_count() or 1)
    labels = label_array(utterances, sorted({u.label for u in utterances}))
    order = np.random.default_rng(0).permutation(len(bank.starts))
    cap = 256 if dry else EPR_SEGMENTS
    fit_segs, val_segs = np.sort(order[:cap]), np.sort(order[cap:cap + cap // 8])
    n_classes = int(labels.max()) + 1
    targets = F.one_hot(torch.from_numpy(labels[bank.owner]), n_classes).float()
    norm = epr.normaliser(bank, fit_segs)
    network = epr.new_network(config, n_classes, 0)
    start = time.perf_counter()
    epr.train_network(network, bank, fit_segs, val_segs, targets, labels[bank.owner], norm,
                      config, lambda *a: None, runtime)
    if gpu:
        torch.cuda.synchronize()
    trained = (len(fit_segs) + len(val_segs)) / (time.perf_counter() - start)
    step.figures.update(
        corpus=f"{config.corpus.name} ({len(utterances)} utterances, {len(bank.starts)} segments "
               f"at a {config.audio.segment_hop}-frame hop)",
        network=f"VGG-{config.epr.vgg} width {config.epr.width}, fc {config.epr.fc}, batch "
                f"{config.epr.batch_size}, {runtime.precision} on {runtime.device.type}",
        epoch_segments=len(fit_segs), train_segments_per_s=trained,
        pipeline_segments_per_s_one_core=pipeline,
        cores_to_feed_the_gpu=trained / pipeline,
        note="log-Mel frames are cached per corpus (emoref.data.features): the pipeline runs "
             "once, so training reads segments from memory after the first pass")


# ----------------------------------------------------------------------------------------------------
# 5. SyncBatchNorm in one GPU worker
# ----------------------------------------------------------------------------------------------------

def syncbn_worker(payload: dict[str, Any]) -> dict[str, Any]:
    import ray.train.torch
    from torch import nn

    from emoref.methods import epr
    device = ray.train.torch.get_device() if payload["gpu"] else torch.device("cpu")
    network = nn.SyncBatchNorm.convert_sync_batchnorm(
        epr.new_network(payload["config"], 4, 0)).to(device)
    converted = sum(isinstance(m, nn.SyncBatchNorm) for m in network.modules())
    x = torch.randn(16, *payload["shape"], device=device)  # (B, frames, n_mels) segments
    if payload["gpu"]:  # training mode: statistics all-reduced over the process group
        network.train()
        loss = network(x).float().logsumexp(1).mean()
        loss.backward()
        finite = all(bool(torch.isfinite(p.grad).all()) for p in network.parameters()
                     if p.grad is not None)
        return {"sync_batchnorm_layers": converted, "train_step_finite": finite}
    network.eval()  # torch's SyncBatchNorm trains on GPUs only; eval uses running statistics
    return {"sync_batchnorm_layers": converted, "eval_forward_shape": list(network(x).shape)}


def syncbn(step: Step, deadline: float, dry: bool, out: Path) -> None:
    from emoref.config import build_config
    config = build_config("paper", ["epr.batch_norm=true", *(
        ["epr.vgg=A", "epr.width=0.0625", "epr.fc=16"] if dry else [])], method="epr")
    gpu = torch.cuda.is_available() and not dry
    shape = (config.audio.segment_frames, config.audio.n_mels)
    step.figures.update(in_ray_train(syncbn_worker, {"config": config, "shape": shape}, gpu,
                                     "syncbn", out / "ray"))
    if not gpu:
        step.notes.append("CPU dry run: converted and run in eval mode (training needs a GPU)")
    elif not step.figures.get("train_step_finite"):
        raise RuntimeError("SyncBatchNorm training step gave non-finite gradients")


# ----------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------

def markdown(steps: list[Step], header: dict[str, Any]) -> str:
    lines = [f"# GPU check, {header['date']}", "", f"command: `{header['command']}`",
             f"budget: {header['budget_s']:.0f} s; used {header['used_s']:.0f} s"
             + ("; DRY RUN on the CPU (figures mean nothing)" if header["dry_run"] else ""), ""]
    for step in steps:
        lines += [f"## {step.name}: {step.status} ({step.seconds:.0f} s)", ""]
        for key, value in step.figures.items():
            shown = (f"{value:.4g}" if isinstance(value, float) else
                     ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in value.items()) if isinstance(value, dict) else value)
            lines.append(f"- {key}: {shown}")
        lines += [f"- note: {note}" for note in step.notes if not note.startswith("Traceback")]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Step]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu", description=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for gpu-report.json / .md and scratch")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU: checks the script, figures mean nothing")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for all steps together (default 480)")
    parser.add_argument("--model", type=Path,
                        help="a local wav2vec2 checkpoint folder for step 3 (default: random "
                             "wav2vec2-base weights)")
    parser.add_argument("--emodb", type=Path, help="EmoDB folder for step 4 (default "
                        "$EMOREF_EMODB or ../shared/data/emodb)")
    args = parser.parse_args(argv)
    if args.budget < 30:
        parser.error(f"--budget: expected at least 30 seconds, got {args.budget:g}")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA GPU on this machine (torch.cuda.is_available() is false); "
                     "--dry-run checks the script on the CPU")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(args.budget)
    from emoref import ray_train
    ray_train.start_ray(echo=False, local=True)
    dry = args.dry_run
    plan = [("environment", lambda s, d: environment(s, d)),
            ("finetune", lambda s, d: finetune(s, d, dry, out)),
            ("ipr", lambda s, d: ipr_run(s, d, dry, out, args.model)),
            ("epr", lambda s, d: epr_rate(s, d, dry, out, args.emodb)),
            ("syncbn", lambda s, d: syncbn(s, d, dry, out))]
    steps = []
    for name, body in plan:
        steps.append(run_step(Step(name), clock, body))
        print(f"[gpu check] {name}: {steps[-1].status} ({steps[-1].seconds:.0f} s)", flush=True)
    header = {"date": time.strftime("%Y-%m-%d %H:%M"), "budget_s": args.budget,
              "used_s": args.budget - clock.left(), "dry_run": dry,
              "command": "python -m bench.gpu " + " ".join(
                  sys.argv[1:] if argv is None else [str(a) for a in argv])}
    report = {**header, "steps": [step.__dict__ for step in steps]}
    (out / "gpu-report.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpu-report.md").write_text(markdown(steps, header))
    print(markdown(steps, header), flush=True)
    return steps


if __name__ == "__main__":
    main()
