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
* ``ranked``: the baseline's candidates ranked by the learned model's log-probability of each, without
  decoding (:mod:`core.search.ranked`), backward best-first;
* ``model``: the learned policy alone (``search.merge_baseline=false``), for comparison;
* ``htps-baseline``: HyperTree proof search (:mod:`core.search.htps`) with the model-free baseline's
  proposals and the constant prior value (no critic);
* ``htps``: HyperTree proof search with the learned policy (baseline candidates merged in), no critic;
* ``htps-ranked``: HyperTree proof search with the ``ranked`` policy, no critic;
* ``htps-baseline-critic`` / ``htps-critic``: as ``htps-baseline`` / ``htps``, with a goal critic
  (:mod:`core.models.critic`): the one ``--checkpoint`` holds (the prover trainer publishes it with the
  policy, ``prover_trainer.critic``), else one trained here first, the way the prover trainer trains it,
  from the critic targets (:attr:`SearchResult.critic_examples`: solved goals 1, failed 0, HTPS's soft
  values) of HTPS searches of the model-free baseline on ``--critic-theorems`` theorems of the train split,
  ``--critic-steps`` steps of ``--critic-batch`` targets; with ``--critic-theorems 0`` (and no critic in the
  checkpoint) the critic rows say there is none. The line ``critic: ...`` says which it is.

The table names them: baseline, baseline + critic, best-first learned, best-first ranked, best-first model
only, HTPS baseline, HTPS baseline + critic, HTPS, HTPS ranked, HTPS with critic. Every HTPS row searches with the same
:class:`core.search.htps.HtpsSettings` (``--exploration``, ``--virtual-loss``, ``--succ-expansions``,
``--critic-value``, defaulting to the experiment configuration's ``search.htps``; the tactic count is
``--candidates``, the depth limit 24), given to the searches explicitly. The model-free rows propose
``--baseline-candidates`` tactics per expansion when it is given (``--candidates`` otherwise): a best-first
search expands each goal once, so k bounds every goal's branching, and each policy has its own best k.

The learned policy is ``--checkpoint`` (a prover checkpoint file or an experiment root) or, without one,
an untrained ``tiny`` model: its proposals are noise, which shows the table's logic (``merged`` must prove
at least what ``baseline`` proves at equal expansions) without hours of training.

Each row: theorems proved, success rate, mean charged seconds per theorem, mean proof size (steps of the
proved theorems' proof trees), and expansions/s (expansions of all searches over the wall-clock seconds
of the run)::

    .venv/bin/python benchmarks/provers.py                                   # untrained tiny model
    .venv/bin/python benchmarks/provers.py --checkpoint runs/exp1 --expansions 200 --seconds 20
    .venv/bin/python benchmarks/provers.py --theorems 8 --tautologies 8 --expansions 16 --seconds 1   # quick

Several budgets of each kind are comma-separated (``--expansions 200,2000``; ``--seconds 0`` for none), and a
prover named ``NAME@B`` runs at budget ``B`` alone (``baseline@2000``, ``merged@200``, ``htps@5s``). With two
or more expansion budgets the table ends with the issue's comparison, per set: each learned prover at the
smallest expansion budget against the model-free baseline at the largest, in theorems proved and in seconds
per theorem (the learned prover *beats* the baseline when it proves more in no more time)::

    .venv/bin/python benchmarks/provers.py --checkpoint prover60.safetensors --theorems 90 --tautologies 90 \
        --expansions 200,2000 --seconds 0 --provers baseline,merged@200,htps@200,htps-critic@200
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
from core.metamath.excerpt import database_excerpt
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.metamath.syntax import Grammar
from core.metamath.tautologies import TautologySettings, labels, tautologies, theorem_block
from core.metamath.verifier import Kernel
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.htps import Critic, HtpsSettings
from core.search.policy import Policy
from core.search.runner import SearchResult, SearchSettings
from core.search.settings import HtpsParameters

SHARED = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data"))
PROP_MM = SHARED / "metamath" / "prop.mm"
PROVERS = (
    "baseline",
    "baseline-critic",
    "merged",
    "ranked",
    "model",
    "htps-baseline",
    "htps-baseline-critic",
    "htps",
    "htps-ranked",
    "htps-critic",
)
NO_LIMIT = 10**9
LABELS = {
    "baseline": "baseline",
    "baseline-critic": "baseline + critic",
    "merged": "best-first learned",
    "ranked": "best-first ranked",
    "model": "best-first model only",
    "htps-baseline": "HTPS baseline",
    "htps-baseline-critic": "HTPS baseline + critic",
    "htps": "HTPS",
    "htps-ranked": "HTPS ranked",
    "htps-critic": "HTPS with critic",
}


@dataclass(frozen=True)
class ProverSpec:
    """How a row searches: ``search`` (backward best-first or htps), the model-free baseline's policy or the
    learned one, merged with the baseline's candidates or not, with the critic or not."""

    search: str
    model_free: bool
    merge: bool
    critic: bool
    rank: bool = False

    @classmethod
    def of(cls, name: str) -> ProverSpec:
        rank = name in ("ranked", "htps-ranked")
        return cls(
            search="htps" if name.startswith("htps") else "backward",
            model_free=name in ("baseline", "baseline-critic", "htps-baseline", "htps-baseline-critic"),
            merge=name != "model" and not rank,
            critic=name.endswith("-critic"),
            rank=rank,
        )


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
class Entry:
    """A ``--provers`` entry: a prover, and the one budget it runs at (``NAME@B``), or every budget."""

    prover: str
    budget: str | None = None

    @classmethod
    def parse(cls, text: str) -> Entry:
        name, _, budget = text.partition("@")
        return cls(name, budget_key(budget) if budget else None)

    def runs_at(self, budget: str) -> bool:
        return self.budget is None or self.budget == budget


def budget_key(text: str) -> str:
    """The table's name of a budget: ``200`` -> ``200 expans``, ``5s`` or ``5 s`` -> ``5 s``; ValueError if it is
    neither a positive whole number of expansions nor a positive number of seconds."""
    text = text.strip()
    if text.endswith("s"):
        seconds = float(text[:-1])
        if not seconds > 0:
            raise ValueError(f"a wall-clock budget must be positive, not {text!r}")
        return seconds_budget(seconds)
    expansions = int(text)
    if expansions <= 0:
        raise ValueError(f"an expansion budget must be positive, not {text!r}")
    return expansion_budget(expansions)


def expansion_budget(expansions: int) -> str:
    """The table's name of an equal-expansions budget."""
    return f"{expansions} expans"


def seconds_budget(seconds: float) -> str:
    """The table's name of an equal-wall-clock budget."""
    return f"{seconds:g} s"


@dataclass(frozen=True)
class Row:
    benchmark: str
    budget: str
    prover: str
    results: tuple[SearchResult, ...]
    wall_s: float
    missing: str = "(no results)"

    @property
    def proved(self) -> int:
        return sum(r.proved for r in self.results)

    @property
    def seconds_per_theorem(self) -> float:
        """Mean charged seconds per theorem."""
        return statistics.fmean(r.time_s for r in self.results)

    def text(self) -> str:
        head = f"{self.benchmark:<22} {self.budget:<14} {LABELS[self.prover]:<22}"
        if not self.results:
            return f"{head} {self.missing:>50}"
        proved = [r for r in self.results if r.proved]
        sizes = [r.proof_size for r in proved if r.proof_size is not None]
        size = f"{statistics.fmean(sizes):.1f}" if sizes else "-"
        per_theorem = self.seconds_per_theorem
        rate = sum(r.expansions for r in self.results) / self.wall_s if self.wall_s > 0 else float("nan")
        return (
            f"{head} {len(proved):>4}/{len(self.results):<4} {100 * len(proved) / len(self.results):>6.1f}% "
            f"{per_theorem:>9.3f} {size:>7} {rate:>11.1f}"
        )


HEADER = (
    f"{'benchmark':<22} {'budget':<14} {'prover':<22} {'proved':>9} {'rate':>7} {'s/theorem':>9} "
    f"{'size':>7} {'expans/s':>11}"
)


def split_benchmark(db: Database, split: str, count: int, skip: int = 0) -> Benchmark:
    """The ``count`` theorems of ``split`` that follow its first ``skip``."""
    theorems = split_theorems(db)[split][skip : skip + count]
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


def learned_policy(args: argparse.Namespace, db: Database) -> tuple[Callable[[], Policy], Critic | None]:
    """A factory of the learned policy: ``--checkpoint``, else an untrained tiny model (fixed seed); and the
    goal critic the checkpoint holds, if any."""
    from core.models.checkpoint import read_model
    from core.models.formats import build_vocabulary
    from core.models.training import new_model
    from core.search.model_policy import ModelPolicy

    critic = None
    if args.checkpoint:
        loaded = read_model(args.checkpoint, kind="prover", db=db, device=args.device)
        model, vocab, critic = loaded.model, loaded.vocab, loaded.critic
    else:
        vocab = build_vocabulary(db)
        model = new_model(vocab, "tiny", seed=args.seed)
    return lambda: ModelPolicy(model, vocab, device=args.device, seed=args.seed, precision=args.precision), critic


def train_critic(
    benchmark: Benchmark, settings: SearchSettings, htps: HtpsSettings, args: argparse.Namespace
) -> Critic:
    """A goal critic trained as the prover trainer trains it, from the critic targets HTPS searches of the
    baseline on ``benchmark``'s theorems report (each search's ``critic_max_examples``, root first)."""
    from core.models.critic import CriticTrainer, GoalCritic

    results = prove_theorems(
        benchmark.db,
        benchmark.theorems,
        BaselinePolicy(benchmark.db, grammar=benchmark.grammar),
        replace(settings, prover="htps"),
        forbidden=benchmark.forbidden,
        grammar=benchmark.grammar,
        kernel=benchmark.kernel,
        htps=htps,
        max_critic_examples=args.critic_max_examples,
    )
    examples = [(goal, target) for r in results for goal, target, _ in r.critic_examples]
    trainer = CriticTrainer(GoalCritic(seed=args.seed), lr=args.critic_lr)
    rng = random.Random(args.seed)
    for _ in range(args.critic_steps if examples else 0):
        batch = rng.choices(examples, k=args.critic_batch)
        trainer.step([goal for goal, _ in batch], [target for _, target in batch])
    proved = sum(r.proved for r in results)
    positive = sum(target > 0.5 for _, target in examples)
    print(
        f"critic: trained here, {len(examples)} targets ({positive} above 0.5) from HTPS searches of the baseline "
        f"on {len(results)} train theorems ({proved} proved), {args.critic_steps} steps of {args.critic_batch}, "
        f"last loss {trainer.loss:.3f}",
        flush=True,
    )
    return trainer.critic


def run(
    benchmark: Benchmark,
    prover: str,
    settings: SearchSettings,
    budget: str,
    learned: Callable[[], Policy],
    batch: int,
    critic: Critic | None = None,
    htps: HtpsSettings | None = None,
    rank_pool: int | None = None,
    baseline_candidates: int | None = None,
) -> Row:
    spec = ProverSpec.of(prover)
    if spec.critic and critic is None:
        return Row(benchmark.name, budget, prover, (), 0.0, "(no critic: --critic-theorems 0)")
    policy = BaselinePolicy(benchmark.db, grammar=benchmark.grammar) if spec.model_free else learned()
    settings = replace(
        settings,
        merge_baseline=spec.merge,
        rank_baseline=spec.rank,
        rank_pool=rank_pool or settings.rank_pool,
        prover=spec.search,
        critic=spec.critic,
        candidates=(baseline_candidates or settings.candidates) if spec.model_free else settings.candidates,
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
        critic=critic if spec.critic else None,
        htps=replace(
            htps, num_expansions=settings.expansions, timeout_s=settings.timeout_s, num_tactics=settings.candidates
        )
        if htps
        else None,
    )
    return Row(benchmark.name, budget, prover, tuple(results), time.perf_counter() - start)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/provers.py", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    default_db = PROP_MM if PROP_MM.exists() else embedded_database_path()
    parser.add_argument("--database", default=str(default_db), help="the .mm file (default: prop.mm, else embedded)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--theorems", type=int, default=30, help="theorems of the split (the first N; 0: none)")
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="leave out the split's first N theorems (to share a long run among processes)",
    )
    parser.add_argument("--tautologies", type=int, default=30, help="random tautologies (0: none)")
    parser.add_argument("--tautology-seed", type=int, default=0)
    parser.add_argument("--min-depth", type=int, default=2, help="tautologies: shallowest formula")
    parser.add_argument("--max-depth", type=int, default=4, help="tautologies: deepest formula")
    parser.add_argument(
        "--expansions", default="200", help="the equal-expansions budgets per theorem, comma-separated (e.g. 200,2000)"
    )
    parser.add_argument(
        "--seconds", default="10", help="the equal-wall-clock budgets per theorem, comma-separated (0: none)"
    )
    parser.add_argument("--candidates", type=int, default=8, help="proposals per query (k)")
    parser.add_argument(
        "--baseline-candidates",
        type=int,
        default=None,
        help="k of the model-free rows (baseline, HTPS baseline; default: --candidates)",
    )
    parser.add_argument(
        "--rank-pool",
        type=int,
        default=None,
        help="ranked: baseline candidates scored per query (default: search.rank_pool's, 32)",
    )
    parser.add_argument(
        "--fill-lemmas",
        action="store_true",
        help="merged rows: also the model's lemmas filled by the goal's subexpressions (search.fill_lemmas)",
    )
    parser.add_argument(
        "--truth-table",
        action="store_true",
        help="every backward and HTPS row: goals the theorem's hypotheses do not entail go last (search.truth_table)",
    )
    parser.add_argument("--batch", type=int, default=16, help="searches run together (their model calls batched)")
    parser.add_argument(
        "--critic-theorems",
        type=int,
        default=30,
        help="htps-critic: train-split theorems whose HTPS searches train the critic (0: none)",
    )
    parser.add_argument("--critic-steps", type=int, default=200, help="htps-critic: optimiser steps of the critic")
    parser.add_argument("--critic-batch", type=int, default=32, help="htps-critic: targets per critic step")
    parser.add_argument("--critic-lr", type=float, default=1e-3, help="htps-critic: the critic's learning rate")
    parser.add_argument(
        "--critic-max-examples", type=int, default=64, help="htps-critic: critic targets per training search"
    )
    configured = HtpsParameters()  # the experiment configuration's defaults (search.htps)
    parser.add_argument(
        "--exploration", type=float, default=configured.exploration, help="HTPS: the PUCT exploration constant"
    )
    parser.add_argument(
        "--virtual-loss", type=int, default=configured.virtual_loss, help="HTPS: virtual visits of a pending selection"
    )
    parser.add_argument(
        "--succ-expansions", type=int, default=configured.succ_expansions, help="HTPS: leaves expanded per step"
    )
    parser.add_argument(
        "--critic-value", type=float, default=configured.critic_value, help="HTPS: a new goal's value without a critic"
    )
    parser.add_argument(
        "--provers",
        default=",".join(p for p in PROVERS if p != "model"),
        help=f"comma-separated, of {', '.join(PROVERS)}",
    )
    parser.add_argument("--checkpoint", default="", help="the learned policy (default: an untrained tiny model)")
    parser.add_argument("--device", default="cpu", help="where the learned policy runs (cpu, cuda)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="the learned policy's decoding: bf16 on CUDA, or on a CPU with native bfloat16",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.expansions = [int(e) for e in args.expansions.split(",") if e.strip()]
        args.seconds = [float(t) for t in args.seconds.split(",") if t.strip() and float(t) != 0]
        args.entries = [Entry.parse(p) for p in args.provers.split(",") if p.strip()]
    except ValueError as error:
        parser.error(f"--expansions, --seconds or a NAME@B of --provers: {error}")
    if args.skip < 0:
        parser.error(f"--skip {args.skip}: give 0 or a positive number of theorems")
    if args.candidates < 1 or (args.baseline_candidates is not None and args.baseline_candidates < 1):
        parser.error("--candidates and --baseline-candidates: give a positive number of proposals")
    if args.rank_pool is not None and args.rank_pool < 1:
        parser.error(f"--rank-pool {args.rank_pool}: give a positive number of candidates")
    if not args.expansions or min(args.expansions) <= 0 or min(args.seconds, default=1) < 0:
        parser.error("--expansions: give one or more positive whole numbers; --seconds: positive numbers, or 0")
    unknown = [e.prover for e in args.entries if e.prover not in PROVERS]
    if unknown:
        parser.error(f"--provers: unknown {', '.join(unknown)}; choose from {', '.join(PROVERS)}")
    budgets = {expansion_budget(e) for e in args.expansions} | {seconds_budget(t) for t in args.seconds}
    stray = [f"{e.prover}@{e.budget}" for e in args.entries if e.budget is not None and e.budget not in budgets]
    if stray:
        parser.error(f"--provers: {', '.join(stray)}: no such budget in --expansions or --seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    db = read_database(args.database)
    learned, critic = learned_policy(args, db)
    budgets = {
        expansion_budget(e): SearchSettings(
            expansions=e,
            timeout_s=NO_LIMIT,
            candidates=args.candidates,
            fill_lemmas=args.fill_lemmas,
            truth_table=args.truth_table,
        )
        for e in args.expansions
    }
    budgets |= {
        seconds_budget(t): SearchSettings(
            expansions=NO_LIMIT,
            timeout_s=t,
            candidates=args.candidates,
            fill_lemmas=args.fill_lemmas,
            truth_table=args.truth_table,
        )
        for t in args.seconds
    }
    first = next(iter(budgets.values()))
    htps = HtpsSettings.from_search(
        replace(first, prover="htps"),
        exploration=args.exploration,
        virtual_loss=args.virtual_loss,
        succ_expansions=args.succ_expansions,
        critic_value=args.critic_value,
    )
    if critic is not None:
        print(f"critic: the one {args.checkpoint} holds (published by the prover trainer)", flush=True)
    elif any(e.prover.endswith("-critic") for e in args.entries) and args.critic_theorems:
        critic = train_critic(split_benchmark(db, "train", args.critic_theorems), first, htps, args)
    with tempfile.TemporaryDirectory() as folder:
        benchmarks = [split_benchmark(db, args.split, args.theorems, args.skip)] if args.theorems else []
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
            f"{args.database}; learned policy: {args.checkpoint or 'an untrained tiny model'} on {args.device} ({args.precision}); "
            f"backward best-first or HTPS (exploration {htps.exploration:g}, virtual loss {htps.virtual_loss}, "
            f"{htps.succ_expansions} leaves per step, critic value {htps.critic_value:g}), k={args.candidates}"
            f"{f' (model-free rows: k={args.baseline_candidates})' if args.baseline_candidates else ''}"
        )
        print(HEADER, flush=True)
        rows = []
        for benchmark in benchmarks:
            for budget, settings in budgets.items():
                for entry in args.entries:
                    if entry.runs_at(budget):
                        rows.append(
                            run(
                                benchmark,
                                entry.prover,
                                settings,
                                budget,
                                learned,
                                args.batch,
                                critic,
                                htps,
                                args.rank_pool,
                                args.baseline_candidates,
                            )
                        )
                        print(rows[-1].text(), flush=True)
        for line in comparison(rows, args.expansions):
            print(line)
    return 0


def comparison(rows: Sequence[Row], expansions: Sequence[int]) -> list[str]:
    """The issue's comparison, one line per set and learned prover: the learned prover at the smallest expansion
    budget against the model-free baseline at the largest (empty with fewer than two expansion budgets)."""
    if len(set(expansions)) < 2:
        return []
    low, high = expansion_budget(min(expansions)), expansion_budget(max(expansions))
    lines = [f"learned provers at {min(expansions)} expansions against the baseline at {max(expansions)}:"]
    for benchmark in dict.fromkeys(r.benchmark for r in rows):
        found = {(r.budget, r.prover): r for r in rows if r.benchmark == benchmark and r.results}
        baseline = found.get((high, "baseline"))
        if baseline is None:
            lines.append(f"  {benchmark}: no baseline row at {max(expansions)} expansions")
            continue
        for (budget, prover), row in found.items():
            if budget != low or ProverSpec.of(prover).model_free:
                continue
            more, faster = row.proved > baseline.proved, row.seconds_per_theorem <= baseline.seconds_per_theorem
            verdict = "beats it" if more and faster else "does not beat it"
            lines.append(
                f"  {benchmark}: {LABELS[prover]} {row.proved}/{len(row.results)} in {row.seconds_per_theorem:.2f} "
                f"s/theorem, baseline {baseline.proved}/{len(baseline.results)} in "
                f"{baseline.seconds_per_theorem:.2f} s/theorem: {verdict}"
            )
    return lines


if __name__ == "__main__":
    sys.exit(run_guarded(main))
