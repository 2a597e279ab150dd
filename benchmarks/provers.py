"""Provers side by side: the model-free baseline against learned best-first search and HTPS, in one table.

Two benchmark sets: the database's ``--split`` (default: prop.mm's test split, each theorem in its own
context) and a seeded set of random tautologies appended after the database
(:mod:`core.metamath.tautologies`: theorems from outside the database). Two budgets per theorem: equal
*expansions* (``--expansions``, no time limit to speak of) and equal *wall-clock* (``--seconds`` of charged
time each, expansions unlimited). Provers (``--provers``, comma-separated):

* ``baseline``: the model-free baseline (:mod:`core.search.baseline`), backward best-first;
* ``baseline-critic``: the same, with goals ordered by the critic too (see ``htps-critic`` below);
* ``merged``: the learned policy with the baseline's candidates merged in (:mod:`core.search.merged`,
  the default of every learned backward search), backward best-first;
* ``model``: the learned policy alone (``search.merge_baseline=false``), for comparison;
* ``htps-baseline``: HyperTree proof search (:mod:`core.search.htps`) with the model-free baseline's
  proposals and the constant prior value (no critic);
* ``htps``: HyperTree proof search with the learned policy (baseline candidates merged in), no critic;
* ``htps-baseline-critic`` / ``htps-critic``: as ``htps-baseline`` / ``htps``, with a goal critic
  (:mod:`core.models.critic`) trained here first from HTPS searches of the model-free baseline on
  ``--critic-theorems`` theorems of the train split (:func:`core.search.htps.critic_examples`,
  ``--critic-steps`` optimiser steps); with ``--critic-theorems 0`` the critic rows say there is none.

The learned policy is ``--checkpoint`` (a prover checkpoint file or an experiment root) or, without one,
an untrained ``tiny`` model: its proposals are noise, which shows the table's logic (``merged`` must prove
at least what ``baseline`` proves at equal expansions) without hours of training.

Each row: theorems proved, success rate, mean charged seconds per theorem, mean proof size (steps of the
proved theorems' proof trees), and expansions/s (expansions of all searches over the wall-clock seconds
of the run)::

    .venv/bin/python benchmarks/provers.py                                   # untrained tiny model
    .venv/bin/python benchmarks/provers.py --checkpoint runs/exp1 --expansions 200 --seconds 20
    .venv/bin/python benchmarks/provers.py --theorems 8 --tautologies 8 --expansions 16 --seconds 1   # quick
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.errors import run_guarded
from core.metamath.database import Assertion, Database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import BackwardEnv
from core.metamath.excerpt import database_excerpt
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.metamath.syntax import Grammar
from core.metamath.tautologies import TautologySettings, labels, tautologies, theorem_block
from core.metamath.verifier import Kernel
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.htps import Critic, HtpsSearch, HtpsSettings, critic_examples
from core.search.policy import Policy
from core.search.runner import SearchResult, SearchSettings, run_searches

SHARED = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data"))
PROP_MM = SHARED / "metamath" / "prop.mm"
PROVERS = (
    "baseline",
    "baseline-critic",
    "merged",
    "model",
    "htps-baseline",
    "htps-baseline-critic",
    "htps",
    "htps-critic",
)
NO_LIMIT = 10**9


@dataclass(frozen=True)
class Benchmark:
    """A set of theorems, each searched in its own context of ``db``."""

    name: str
    db: Database
    grammar: Grammar
    kernel: Kernel
    theorems: list[Assertion]
    forbidden: frozenset[str]


@dataclass(frozen=True)
class Row:
    benchmark: str
    budget: str
    prover: str
    results: tuple[SearchResult, ...]
    wall_s: float
    missing: str = "(no results)"

    def text(self) -> str:
        head = f"{self.benchmark:<22} {self.budget:<14} {self.prover:<20}"
        if not self.results:
            return f"{head} {self.missing:>50}"
        proved = [r for r in self.results if r.proved]
        sizes = [r.proof_size for r in proved if r.proof_size is not None]
        size = f"{statistics.fmean(sizes):.1f}" if sizes else "-"
        per_theorem = statistics.fmean(r.time_s for r in self.results)
        rate = sum(r.expansions for r in self.results) / self.wall_s if self.wall_s > 0 else float("nan")
        return (
            f"{head} {len(proved):>4}/{len(self.results):<4} {100 * len(proved) / len(self.results):>6.1f}% "
            f"{per_theorem:>9.3f} {size:>7} {rate:>11.1f}"
        )


HEADER = (
    f"{'benchmark':<22} {'budget':<14} {'prover':<20} {'proved':>9} {'rate':>7} {'s/theorem':>9} "
    f"{'size':>7} {'expans/s':>11}"
)


def split_benchmark(db: Database, split: str, count: int) -> Benchmark:
    theorems = split_theorems(db)[split][:count]
    forbidden = frozenset(a.label for a in db.incomplete_theorems())
    return Benchmark(f"{Path(db.path).name} {split}", db, Grammar(db), Kernel(db), theorems, forbidden)


def tautology_benchmark(db: Database, folder: str, settings: TautologySettings) -> Benchmark:
    """``settings.count`` random tautologies written after ``db`` (whole file) and read back."""
    statements = tautologies(db, settings)
    path = os.path.join(folder, "tautologies.mm")
    text = database_excerpt(db.path) + theorem_block(labels(db, len(statements)), statements, settings)
    Path(path).write_text(text, encoding="latin-1")
    extended = read_database(path)
    theorems = extended.incomplete_theorems()
    name = f"tautologies seed {settings.seed}"
    forbidden = frozenset(t.label for t in theorems)
    return Benchmark(name, extended, Grammar(extended), Kernel(extended), theorems, forbidden)


def learned_policy(args: argparse.Namespace, db: Database) -> Callable[[], Policy]:
    """A factory of the learned policy: ``--checkpoint``, else an untrained tiny model (fixed seed)."""
    from core.models.checkpoint import read_model
    from core.models.formats import build_vocabulary
    from core.models.training import new_model
    from core.search.model_policy import ModelPolicy

    if args.checkpoint:
        loaded = read_model(args.checkpoint, kind="prover", db=db, device=args.device)
        model, vocab = loaded.model, loaded.vocab
    else:
        vocab = build_vocabulary(db)
        model = new_model(vocab, "tiny", seed=args.seed)
    return lambda: ModelPolicy(model, vocab, device=args.device, seed=args.seed)


def train_critic(benchmark: Benchmark, settings: SearchSettings, steps: int, seed: int) -> Critic:
    """A goal critic trained from HTPS searches of the baseline on ``benchmark``'s theorems."""
    import torch

    from core.models.critic import GoalCritic, critic_step

    policy = BaselinePolicy(benchmark.db, grammar=benchmark.grammar)
    htps = HtpsSettings.from_search(settings)
    searches = [
        HtpsSearch(
            BackwardEnv(
                benchmark.db, t, grammar=benchmark.grammar, kernel=benchmark.kernel, forbidden=benchmark.forbidden
            ),
            htps,
        )
        for t in benchmark.theorems
    ]
    run_searches(searches, policy, batch=16)
    examples = [e for s in searches for e in critic_examples(s)]
    critic = GoalCritic(seed=seed)
    optimizer = torch.optim.Adam(critic.parameters(), lr=3e-3)
    rng = random.Random(seed)
    for _ in range(steps if examples else 0):
        batch = rng.sample(examples, min(256, len(examples)))
        critic_step(critic, optimizer, [e.goal for e in batch], [e.target for e in batch])
    proved = sum(s.proof is not None for s in searches)
    print(
        f"critic: {len(examples)} examples from HTPS on {len(searches)} train theorems ({proved} proved), "
        f"{steps} steps",
        flush=True,
    )
    return critic


def run(
    benchmark: Benchmark,
    prover: str,
    settings: SearchSettings,
    budget: str,
    learned: Callable[[], Policy],
    batch: int,
    critic: Critic | None = None,
) -> Row:
    uses_critic = prover.endswith("-critic")
    if uses_critic and critic is None:
        return Row(benchmark.name, budget, prover, (), 0.0, "(no critic: --critic-theorems 0)")
    model_free = prover.startswith(("baseline", "htps-baseline"))
    policy = BaselinePolicy(benchmark.db, grammar=benchmark.grammar) if model_free else learned()
    settings = replace(
        settings, merge_baseline=prover != "model", prover="htps" if prover.startswith("htps") else settings.prover
    )
    start = time.perf_counter()
    results = prove_theorems(
        benchmark.db,
        benchmark.theorems,
        policy,
        settings,
        forbidden=benchmark.forbidden,
        grammar=benchmark.grammar,
        kernel=benchmark.kernel,
        batch=batch,
        critic=critic if uses_critic else None,
    )
    return Row(benchmark.name, budget, prover, tuple(results), time.perf_counter() - start)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/provers.py", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    default_db = PROP_MM if PROP_MM.exists() else embedded_database_path()
    parser.add_argument("--database", default=str(default_db), help="the .mm file (default: prop.mm, else embedded)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--theorems", type=int, default=30, help="theorems of the split (the first N)")
    parser.add_argument("--tautologies", type=int, default=30, help="random tautologies (0: none)")
    parser.add_argument("--tautology-seed", type=int, default=0)
    parser.add_argument("--min-depth", type=int, default=2, help="tautologies: shallowest formula")
    parser.add_argument("--max-depth", type=int, default=4, help="tautologies: deepest formula")
    parser.add_argument("--expansions", type=int, default=200, help="the equal-expansions budget per theorem")
    parser.add_argument("--seconds", type=float, default=10.0, help="the equal-wall-clock budget per theorem")
    parser.add_argument("--candidates", type=int, default=8, help="proposals per query (k)")
    parser.add_argument("--batch", type=int, default=16, help="searches run together (their model calls batched)")
    parser.add_argument(
        "--critic-theorems",
        type=int,
        default=30,
        help="htps-critic: train-split theorems whose HTPS searches train the critic (0: none)",
    )
    parser.add_argument("--critic-steps", type=int, default=200, help="htps-critic: optimiser steps of the critic")
    parser.add_argument(
        "--provers",
        default=",".join(p for p in PROVERS if p != "model"),
        help=f"comma-separated, of {', '.join(PROVERS)}",
    )
    parser.add_argument("--checkpoint", default="", help="the learned policy (default: an untrained tiny model)")
    parser.add_argument("--device", default="cpu", help="where the learned policy runs (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [p for p in args.provers.split(",") if p not in PROVERS]
    if unknown:
        parser.error(f"--provers: unknown {', '.join(unknown)}; choose from {', '.join(PROVERS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    db = read_database(args.database)
    learned = learned_policy(args, db)
    budgets = {
        f"{args.expansions} expans": SearchSettings(
            expansions=args.expansions, timeout_s=NO_LIMIT, candidates=args.candidates
        ),
        f"{args.seconds:g} s": SearchSettings(expansions=NO_LIMIT, timeout_s=args.seconds, candidates=args.candidates),
    }
    critic = None
    if any(p.endswith("-critic") for p in args.provers.split(",")) and args.critic_theorems:
        train = split_benchmark(db, "train", args.critic_theorems)
        critic = train_critic(train, next(iter(budgets.values())), args.critic_steps, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        benchmarks = [split_benchmark(db, args.split, args.theorems)]
        if args.tautologies:
            benchmarks.append(
                tautology_benchmark(
                    db,
                    folder,
                    TautologySettings(
                        count=args.tautologies,
                        seed=args.tautology_seed,
                        min_depth=args.min_depth,
                        max_depth=args.max_depth,
                    ),
                )
            )
        print(
            f"{args.database}; learned policy: {args.checkpoint or 'an untrained tiny model'} on {args.device}; "
            f"backward best-first or HTPS (default settings), k={args.candidates}"
        )
        print(HEADER, flush=True)
        for benchmark in benchmarks:
            for budget, settings in budgets.items():
                for prover in args.provers.split(","):
                    row = run(benchmark, prover, settings, budget, learned, args.batch, critic)
                    print(row.text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
