"""Benchmark the generated theorems: their proof sizes beside the database's, and how many a prover proves.

A generator is trained on the database's train split for ``--steps`` supervised steps (the default preset's
version 0 is 150 steps of a ``tiny`` model), then each *variant* of the generation settings runs the same
number of rollouts from the same seed (``--rollouts``), a theorem is selected from each rollout as the
generator actor does, and each theorem is given to the model-free baseline prover (``--expansions``, the
bar a learned prover must clear, so the proved fraction is an upper bound on what a weak learned prover
proves). One row per variant: theorems, median and quartiles of the essential proof size, mean depth, the
fraction proved, how the rollouts ended, and seconds per theorem. The database's human proofs (train split)
are the first row. Several ``--seeds`` give the spread.

    .venv/bin/python benchmarks/generation.py                                   # default vs compose=true
    .venv/bin/python benchmarks/generation.py --variants "" "compose=true,max_steps=8" --seeds 0 1 2
    .venv/bin/python benchmarks/generation.py --database ../shared/data/metamath/prop.mm --json out.json

A variant is a comma-separated list of ``field=value`` of ``generator_actor``'s generation settings
(:class:`core.adversarial.settings.GenerationSettings`); the empty variant is the default preset's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from configs.databases import resolve_database
from configs.experiment import DatabaseConfig
from configs.presets import preset
from configs.schema import parse_value
from core.adversarial.generation import TheoremGenerator
from core.adversarial.settings import GenerationSettings
from core.adversarial.workspace import Workspace
from core.errors import UsageError, run_guarded
from core.metamath.prooftree import tree_from_proof
from core.models.supervised import train_generator_on_database
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.model_policy import ModelPolicy
from core.search.settings import SearchSettings


def settings_of(variant: str, base: GenerationSettings) -> GenerationSettings:
    """``base`` with the ``field=value`` pairs of ``variant`` (typed by the field's default)."""
    changes: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in variant.split(","))):
        name, _, text = item.partition("=")
        if name not in {f.name for f in dataclasses.fields(GenerationSettings)}:
            raise UsageError(f"variant {variant!r}: {name!r} is not a generation setting")
        changes[name] = parse_value(f"variant {name}", text, type(getattr(base, name)))
    return dataclasses.replace(base, **changes)


def quartiles(values: list[int]) -> tuple[float, float, float]:
    if len(values) < 2:
        value = float(values[0]) if values else float("nan")
        return value, value, value
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def human_row(ws: Workspace) -> dict[str, Any]:
    sizes, depths = [], []
    for theorem in ws.train_theorems():
        tree = tree_from_proof(ws.db, theorem, ws.kernel)
        sizes.append(tree.size)
        depths.append(tree.depth)
    q1, median, q3 = quartiles(sizes)
    return {"variant": "human proofs (train split)", "theorems": len(sizes), "size_q1": q1, "size_median": median,
            "size_q3": q3, "depth_mean": round(statistics.mean(depths), 2)}  # fmt: skip


def run_variant(ws: Workspace, policy: ModelPolicy, settings: GenerationSettings, args: argparse.Namespace,
                seed: int) -> dict[str, Any]:  # fmt: skip
    start = time.perf_counter()
    generator = TheoremGenerator(ws, policy, settings, seed=seed, max_statement_tokens=args.max_statement_tokens)
    theorems = []
    while len(theorems) < args.theorems and generator.counters["rollouts"] < args.max_rollouts:
        for rollout in generator.run(args.batch):
            generator.counters["rollouts"] += 1
            generated = generator.select(rollout)
            if generated is not None:
                theorems.append(generated)
    generated_s = time.perf_counter() - start
    search = SearchSettings(prover="backward", expansions=args.expansions, timeout_s=args.timeout, batch_goals=16)
    results = prove_theorems(ws.db, [g.theorem for g in theorems], BaselinePolicy(ws.db, grammar=ws.grammar),
                             search, forbidden=ws.generator_forbidden, grammar=ws.grammar, kernel=ws.kernel)  # fmt: skip
    sizes = [g.proof.size for g in theorems]
    q1, median, q3 = quartiles(sizes)
    ends = {k.removeprefix("rollout_end_"): v for k, v in generator.counters.items() if k.startswith("rollout_end_")}
    return {
        "seed": seed,
        "theorems": len(theorems),
        "rollouts": generator.counters["rollouts"],
        "size_q1": q1,
        "size_median": median,
        "size_q3": q3,
        "depth_mean": round(statistics.mean(g.proof.depth for g in theorems), 2) if theorems else None,
        "proved": round(sum(r.proved for r in results) / max(len(results), 1), 3),
        "ends": ends,
        "s_per_theorem": round(generated_s / max(len(theorems), 1), 3),
        "counters": dict(generator.counters),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/generation.py", allow_abbrev=False,
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--database", default="default", help="the .mm file (default: the default preset's)")
    parser.add_argument("--variants", nargs="+", default=["", "compose=true"], help="generation settings to compare")
    parser.add_argument("--steps", type=int, default=150, help="supervised steps of the generator")
    parser.add_argument("--size", default="tiny", help="generator model size")
    parser.add_argument("--theorems", type=int, default=60, help="theorems per variant and seed")
    parser.add_argument("--max-rollouts", type=int, default=400, help="most rollouts per variant and seed")
    parser.add_argument("--batch", type=int, default=16, help="rollouts run in lockstep")
    parser.add_argument("--expansions", type=int, default=24, help="the baseline prover's expansions per theorem")
    parser.add_argument("--timeout", type=float, default=5.0, help="the baseline prover's seconds per theorem")
    parser.add_argument("--max-statement-tokens", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    database = resolve_database(DatabaseConfig(path=args.database))
    path = database.path
    ws = Workspace.load(path, stop_at=database.stop_at)
    base = preset("default").generator_actor
    base_settings = GenerationSettings(
        **{f.name: getattr(base, f.name) for f in dataclasses.fields(GenerationSettings)}
    )
    variants = [(v, settings_of(v, base_settings)) for v in args.variants]
    print(f"database {path} ({len(ws.train_theorems())} train theorems); generator: {args.size}, {args.steps} steps; "
          f"baseline prover at {args.expansions} expansions")  # fmt: skip
    rows = [human_row(ws)]
    print(json.dumps(rows[0]))
    for seed in args.seeds:
        random.seed(seed)
        torch.manual_seed(seed)
        model, vocab, _ = train_generator_on_database(ws.db, size=args.size, steps=args.steps, seed=seed,
                                                      log_every=10**9, validate=False)  # fmt: skip
        for name, settings in variants:
            policy = ModelPolicy(model, vocab, kind="generator", formats=("generator",), device="cpu", seed=seed)
            row = {"variant": name or "default", **run_variant(ws, policy, settings, args, seed)}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "counters"}))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
