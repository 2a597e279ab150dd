"""Benchmark supervised training throughput: optimiser steps/s and examples/s per model size and device.

Examples are the backward-prover examples of prop.mm's train split (the embedded database when prop.mm
is absent), the batches those of :func:`core.models.training.train_examples` (length-bucketed). Each
(size, device) pair trains a fresh model for a few warm-up steps, then for ``--seconds`` (or ``--steps``,
whichever ends first). On a machine with CUDA the same sizes also run on the GPU, and the table gives
the GPU/CPU speed ratio measured in this run, with the card's name. The script runs unchanged on a
CPU-only machine and on a GPU machine. Steps per CPU-second (this process's CPU time, all threads) is the
figure to compare on a shared machine, where other processes slow the wall clock.

    .venv/bin/python benchmarks/training.py                       # tiny and small; base too on a GPU
    .venv/bin/python benchmarks/training.py --sizes tiny --seconds 5 --threads 1 2   # thread counts compared
    .venv/bin/python benchmarks/training.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from core.errors import run_guarded
from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.models.formats import build_vocabulary
from core.models.supervised import database_examples
from core.models.training import length_bucketed_batches, new_model, new_trainer

ROOT = Path(__file__).resolve().parents[1]
PROP_MM = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "metamath" / "prop.mm"


@dataclass
class Row:
    size: str
    device: str
    parameters: int
    batch_size: int
    threads: int
    steps: int
    seconds: float
    steps_per_s: float
    examples_per_s: float
    tokens_per_s: float
    cpu_s: float
    steps_per_cpu_s: float
    speedup_vs_cpu: float | None = None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(examples, vocab, size: str, device: torch.device, batch_size: int, seconds: float, steps: int,
            warmup: int) -> Row:  # fmt: skip
    model = new_model(vocab, size, seed=0).to(device)
    trainer = new_trainer(model, steps=10**6, warmup_steps=10, device=device)
    batches = length_bucketed_batches(examples, batch_size, random.Random(0))
    for _ in range(warmup):
        trainer.step([examples[i] for i in next(batches)])
    synchronize(device)
    done = n_examples = n_tokens = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while done < steps and time.perf_counter() - start < seconds:
        result = trainer.step([examples[i] for i in next(batches)])
        done += 1
        n_examples += int(result["examples"])
        n_tokens += int(result["tokens"])
    synchronize(device)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Row(size, str(device), model.num_parameters(), batch_size, torch.get_num_threads(), done, round(elapsed, 2),
               round(done / elapsed, 3), round(n_examples / elapsed, 1), round(n_tokens / elapsed, 1), round(cpu, 2),
               round(done / max(cpu, 1e-9), 3))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/training.py", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database", help="the .mm file (default: prop.mm, else the embedded database)")
    parser.add_argument("--sizes", nargs="+", help="model sizes (default: tiny small; plus base on a GPU)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per (size, device)")
    parser.add_argument("--steps", type=int, default=200, help="most measured steps per (size, device)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured steps first")
    parser.add_argument(
        "--threads", type=int, nargs="+", help="torch CPU thread counts to measure, e.g. 1 2 (default: torch's choice)"
    )
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even when available")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    path = Path(args.database) if args.database else (PROP_MM if PROP_MM.is_file() else embedded_database_path())
    db = read_database(path)
    vocab = build_vocabulary(db)
    cuda = torch.cuda.is_available() and not args.cpu_only
    sizes = args.sizes or (["tiny", "small", "base"] if cuda else ["tiny", "small"])
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if cuda else [])
    card = torch.cuda.get_device_name(0) if cuda else None
    print(f"database {path.name}, torch {torch.__version__}, {os.cpu_count()} CPUs ({platform.processor() or '?'}), "
          f"GPU: {card or 'none'}")  # fmt: skip
    threads = args.threads or [torch.get_num_threads()]
    rows: list[Row] = []
    for size in sizes:
        config = new_model(vocab, size).config
        examples = database_examples(db, vocab, config).examples
        cpu_row = None
        for device, count in [(d, n) for d in devices for n in (threads if d.type == "cpu" else threads[-1:])]:
            if size == "base" and device.type == "cpu":
                continue  # minutes per step on a CPU: not worth measuring
            torch.set_num_threads(count)
            row = measure(examples, vocab, size, device, args.batch_size, args.seconds, args.steps, args.warmup)
            if device.type == "cpu" and (cpu_row is None or row.steps_per_s > cpu_row.steps_per_s):
                cpu_row = row  # the GPU is compared with the fastest CPU setting
            elif cpu_row is not None:
                row.speedup_vs_cpu = round(row.steps_per_s / cpu_row.steps_per_s, 1)
            rows.append(row)
            ratio = f"  x{row.speedup_vs_cpu} vs CPU" if row.speedup_vs_cpu else ""
            print(f"  {size:5s} {row.device:5s} {row.threads:2d} threads {row.parameters / 1e6:6.2f}M params  "
                  f"batch {row.batch_size:3d}  "
                  f"{row.steps_per_s:8.2f} steps/s  {row.examples_per_s:9.1f} examples/s  {row.tokens_per_s:10.0f} "
                  f"tokens/s  {row.steps_per_cpu_s:8.2f} steps/CPU-s{ratio}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"database": str(path), "card": card, "cpus": os.cpu_count(),
                                               "rows": [asdict(r) for r in rows]}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
