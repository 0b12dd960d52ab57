"""python -m bench [--only 1,3] [--quick] [--repeats N] [--json FILE]: run the benchmark pairs.

Each pair does the same work two ways in this one invocation and prints both figures (median and
spread over repeats) and their ratio. Pairs: 1 Ray Train vs a plain loop; 2 frozen-encoder sweep
with vs without the embedding cache; 3 two concurrent trials vs sequential; 4 audio pipeline vs a
training step; 5 EPR segment extraction computed vs cached, and a stage epoch; 6 wav2vec2-base
fine-tuning throughput on a GPU, bf16 vs fp32 (skipped without CUDA); 7 openSMILE extraction as
Ray tasks on every core vs one process, and cache reads; 8 a process's start-up imports with
the heavy libraries imported where they are used vs at the top; 9 EPR networks two at a time
with 1 thread each vs one at a time with 2 threads; 10 an EPR stage epoch with channels-last
feature maps vs the contiguous layout. --quick runs each
on tiny data (seconds; its figures mean nothing, it checks that the benchmarks run)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

PAIRS = {1: "ray_overhead", 2: "feature_cache", 3: "concurrency", 4: "audio_pipeline",
         5: "epr_segments", 6: "finetune_precision", 7: "opensmile_extraction",
         8: "startup_imports", 9: "epr_lanes", 10: "epr_layout"}
REPEATS = {1: 2, 2: 1, 3: 2, 4: 3, 5: 3, 6: 3, 7: 2, 8: 7, 9: 3, 10: 3}  # full-size defaults (pair 2 is minutes per side)


def machine() -> str:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"torch {torch.__version__}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> list:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated pair numbers (default all)")
    parser.add_argument("--quick", action="store_true", help="tiny data: checks the benchmarks run")
    parser.add_argument("--repeats", type=int, help="repeats per pair (default: per pair)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--emodb", type=Path, help="EmoDB folder for pair 5 (default "
                        "$EMOREF_EMODB or ../shared/data/emodb; the synthetic corpus if absent)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    try:
        chosen = [int(p) for p in args.only.split(",") if p.strip()] or list(PAIRS)
    except ValueError:
        parser.error(f"--only: expected pair numbers from {list(PAIRS)}, got {args.only!r}")
    unknown = [p for p in chosen if p not in PAIRS]
    if unknown or (args.repeats is not None and args.repeats < 1):
        parser.error(f"--only: pairs are {list(PAIRS)}; --repeats: an integer >= 1")
    import importlib
    print(f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M')}\n"
          f"command: python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="emoref-bench-") as scratch:
        root = args.work or Path(scratch)
        for number in chosen:
            module = importlib.import_module(f"bench.{PAIRS[number]}")
            repeats = 1 if args.quick else (args.repeats or REPEATS[number])
            work = root / f"pair{number}"
            work.mkdir(parents=True, exist_ok=True)
            extra = {"emodb_root": args.emodb} if number in (5, 7, 9, 10) else {}
            start = time.perf_counter()
            result = module.run(work, args.quick, repeats, **extra)
            print(result.text() + f"\n   ({time.perf_counter() - start:.0f} s)\n", flush=True)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2))
    return results


if __name__ == "__main__":
    main()
