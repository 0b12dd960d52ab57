"""Checks a command makes before it trains anything, and the plan `runner.tune --plan` prints.

- A setting that fine-tunes a pretrained transformer encoder is a GPU setting: started with
  gpu=false that nobody asked for, it would run for days per seed on a CPU. It stops, naming the
  preset or file it came from and the two ways on.
- gpu=true where no GPU is here, in the Ray cluster, or among the node types it can scale up,
  would wait forever for a GPU. It stops, naming where it looked.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from emoref.config import ConfigError, RunConfig

BOOTSTRAP = Path("~/ray_bootstrap_config.yaml")  # `ray up` writes the cluster file here, on the head


def fine_tunes(config: RunConfig) -> bool:
    """The encoder is a pretrained transformer whose weights train (the IPR paper's setting)."""
    encoder = config.encoder
    return encoder.kind == "wav2vec2" and encoder.pretrained and not encoder.freeze


def check_fine_tuning_device(config: RunConfig, given: set[str], source: str) -> None:
    """ConfigError when `config` fine-tunes a pretrained encoder with gpu=false that `given`
    (the keys the file and the command line set) does not contain: nobody asked for the CPU."""
    if fine_tunes(config) and not config.gpu and "gpu" not in given:
        raise ConfigError(
            f"{source} fine-tunes the pretrained encoder {config.encoder.model} with gpu=false: "
            "on a CPU that is days per seed. Pass gpu=false to mean it, or run it on a GPU "
            "machine or cluster with gpu=true workers=1 (one GPU per seed)")


@dataclass(frozen=True)
class Capacity:
    """What Ray can give trials: CPUs and GPUs now, and GPUs the autoscaler can add."""

    where: str           # "this machine", "the Ray cluster at ..."
    cpus: float
    gpus: float
    scalable_gpus: float  # from node types the autoscaler may start (0 when none or unknown)
    scalable: str = ""    # which node types, for the plan

    def gpus_possible(self) -> float:
        return self.gpus + self.scalable_gpus


def scalable_gpus(path: Path = BOOTSTRAP) -> tuple[float, str]:
    """GPUs of the node types the head's autoscaler may start (the cluster file `ray up` put on
    the head), and a description; (0, "") where there is no such file."""
    path = path.expanduser()
    if not path.is_file():
        return 0.0, ""
    config = yaml.safe_load(path.read_text()) or {}
    total, kinds = 0.0, []
    for name, kind in (config.get("available_node_types") or {}).items():
        gpus = float((kind.get("resources") or {}).get("GPU", 0))
        if gpus and kind.get("max_workers", 0):
            total += gpus * kind["max_workers"]
            kinds.append(f"{name} (up to {kind['max_workers']} x {gpus:g} GPU)")
    return total, ", ".join(kinds)


def capacity(connect: bool) -> Capacity:
    """The resources trials could use: those of the Ray cluster this command would join (joined
    when `connect`; RAY_ADDRESS or a `ray start` node), else of this machine."""
    from emoref import ray_train
    address = ray_train.cluster_address()
    if address and connect:
        import ray
        ray_train.start_ray(echo=False)
        total = ray.cluster_resources()
        more, kinds = scalable_gpus()
        return Capacity(f"the Ray cluster at {address}", float(total.get("CPU", 0)),
                        float(total.get("GPU", 0)), more, kinds)
    import torch
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return Capacity("this machine" + (f" (a Ray cluster is configured at {address})"
                                      if address else ""), float(os.cpu_count() or 1),
                    float(gpus), 0.0)


def check_gpus(config: RunConfig, found: Capacity, source: str) -> None:
    """ConfigError when gpu=true and no GPU is here, in the cluster, or in a node type it can
    start: Ray would wait for one forever."""
    if config.gpu and found.gpus_possible() == 0:
        raise ConfigError(
            f"{source} asks for GPUs (gpu=true) and {found.where} has none and no node type "
            "with GPUs it could start: run it on a GPU machine or cluster (cluster.yaml scales "
            "GPU workers up from zero), or pass gpu=false workers=0 to train on the CPU")


def trials_at_once(found: Capacity, cpus_per_trial: float, gpus_per_trial: float,
                   max_concurrent: int) -> tuple[int, int]:
    """Trials that fit now, and with every GPU node the autoscaler can start (each GPU node
    brings the CPUs its trial needs)."""
    def capped(n: int) -> int:
        return min(n, max_concurrent) if max_concurrent else n
    now = math.floor(found.cpus / cpus_per_trial)
    if gpus_per_trial:
        now = min(now, math.floor(found.gpus / gpus_per_trial))
        return capped(now), capped(math.floor(found.gpus_possible() / gpus_per_trial))
    return capped(now), capped(now)


def plan_text(method: str, config: RunConfig, source: str, space: dict[str, Any],
              space_file: str, samples: int, seeds: int, baselines: int, per_trial: str,
              cpus_per_trial: float, gpus_per_trial: float, max_concurrent: int,
              found: Capacity, problems: list[str]) -> str:
    """What a sweep would do, for --plan."""
    if method == "epr":
        epochs = (f"{config.split.folds} folds x {config.epr.depth} stages x at most "
                  f"{config.epr.max_epochs} epochs")
    else:
        epochs = f"{config.train.epochs} epochs ({config.train.warmup_epochs} warm-up on D1)"
    now, largest = trials_at_once(found, cpus_per_trial, gpus_per_trial, max_concurrent)
    lines = [
        f"plan: {method} sweep of {source}",
        f"  corpus {config.corpus.name}" + (f" at {config.corpus.root}" if config.corpus.root
                                            else "") + f", split {config.split.kind}",
        f"  encoder {config.encoder.kind}" + (f" {config.encoder.model}, "
                                              + ("fine-tuned" if fine_tunes(config) else
                                                 "frozen" if config.encoder.freeze else
                                                 "random weights")
                                              if config.encoder.kind == "wav2vec2" else ""),
        f"  searches {len(space)} keys ({space_file}): {', '.join(space)}",
        f"  {samples} configurations x {seeds} seeds = {samples * seeds} seed trainings of "
        f"{epochs}" + (f"; then {baselines} baselines x {seeds} seeds at the best"
                       if baselines else ""),
        f"  per trial: {per_trial}",
        f"  resources: {found.where}: {found.cpus:g} CPUs, {found.gpus:g} GPUs"
        + (f"; can scale up {found.scalable}" if found.scalable else ""),
        f"  trials at once: {now} now" + (f", {largest} with every GPU node it can start"
                                          if found.scalable_gpus else ""),
    ]
    if problems:
        lines.append("  would stop before training:")
        lines += [f"    - {p}" for p in problems]
    else:
        lines.append("  every check passed: the same command without --plan starts it")
    return "\n".join(lines)
