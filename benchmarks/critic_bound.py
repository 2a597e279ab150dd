"""How much could a goal critic that knows which goals are false gain? Best-first search told by a truth table.

A goal critic (:mod:`core.models.critic`) orders best-first search: a goal's priority is its path's summed
log-probability plus the log of the critic's value. Many goals a backward search creates are false (a
lemma applied with a wrong filler leaves subgoals that no proof reaches), and every expansion spent below
one is lost. This benchmark bounds what the best critic of that kind could give: the critic is a truth table
(:func:`core.metamath.tautologies.entails`). A goal the theorem's essential hypotheses do not entail gets
the value ``--false-value`` (1e-6: its priority drops by 13.8, below every true goal of the search); every
other goal 1. Only propositional notation is read (:func:`core.metamath.tautologies.parse_formula`): a goal
or hypothesis outside it counts as true (unknown), so on a database beyond propositional logic the bound is
loose.

Each row is a prover (``baseline``: the model-free baseline; ``merged``: the ``--checkpoint`` policy merged
with the baseline's candidates, best-first) without and with the truth-table critic, on the theorems of a
split, at one expansion budget; it prints theorems proved, seconds per theorem and, with the critic, the
share of created goals the truth table refuted (``--critic none`` or ``truth-table``: only that row;
``--fill-lemmas``: the merged rows fill the model's lemmas, :mod:`core.search.merged`). Theorems are
searched one at a time (the critic is the theorem's), each with ``jobs.prove``'s restrictions (no
incomplete theorem and no "New usage is discouraged" one is cited). ``--split incomplete`` searches the
database's ``?`` theorems instead of a split (a tautology set: the second example)::

    python benchmarks/critic_bound.py --checkpoint tiny.safetensors --split valid --expansions 200 --candidates 32 \\
        --threads 1 --provers merged
    python -m core.metamath tautologies --database prop.mm --out taut0.mm --count 90 --seed 0
    python benchmarks/critic_bound.py --database taut0.mm --split incomplete --checkpoint tiny.safetensors
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.errors import run_guarded
from core.metamath.comments import database_discouraged_labels
from core.metamath.database import Assertion, Database
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.model_policy import load_policy
from core.search.policy import Policy
from core.search.runner import SearchSettings
from core.search.truth_table import FALSE_VALUE, TruthTableCritic

SHARED = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data"))
PROP_MM = SHARED / "metamath" / "prop.mm"
PROVERS = ("baseline", "merged")
NO_LIMIT = 1e9  # seconds: the expansion budget is the only one


def run(
    db: Database,
    theorems: Sequence[Assertion],
    policy: Policy,
    settings: SearchSettings,
    forbidden: frozenset[str],
    false_value: float | None,
    checking: tuple[Grammar, Kernel],
) -> tuple[int, float, float]:
    """Theorems proved, seconds per theorem, and the share of judged goals refuted (NaN without a critic).
    ``checking``: the database's grammar and kernel, built once for every row."""
    grammar, kernel = checking
    proved, judged, refuted = 0, 0, 0
    started = time.perf_counter()
    for theorem in theorems:
        critic = None if false_value is None else TruthTableCritic(db, theorem, false_value)
        [result] = prove_theorems(
            db, [theorem], policy, settings, forbidden=forbidden, grammar=grammar, kernel=kernel, critic=critic
        )
        proved += result.proved
        if critic is not None:
            judged, refuted = judged + critic.judged, refuted + critic.refuted
    seconds = (time.perf_counter() - started) / max(len(theorems), 1)
    return proved, seconds, refuted / judged if judged else math.nan


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database", default=str(PROP_MM), help="the .mm file (default: shared prop.mm)")
    parser.add_argument("--checkpoint", help="a prover checkpoint (needed by the merged rows)")
    parser.add_argument(
        "--split",
        default="valid",
        choices=("train", "valid", "test", "incomplete"),
        help="a split of the database's theorems, or its ? theorems (incomplete), such as the tautologies of "
        "python -m core.metamath tautologies",
    )
    parser.add_argument("--theorems", type=int, default=0, help="the split's first N theorems (0: all)")
    parser.add_argument("--expansions", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=32, help="proposals per expansion (k)")
    parser.add_argument("--provers", default="baseline,merged", help=f"comma-separated, of {', '.join(PROVERS)}")
    parser.add_argument("--false-value", type=float, default=FALSE_VALUE, help="the critic's value of a refuted goal")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="the model's decoding")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    parser.add_argument(
        "--critic",
        default="both",
        choices=("both", "none", "truth-table"),
        help="the rows: without it, with it, or both",
    )
    parser.add_argument(
        "--fill-lemmas",
        action="store_true",
        help="the merged rows fill the model's lemmas (SearchSettings.fill_lemmas)",
    )
    args = parser.parse_args(argv)
    args.provers = [p for p in args.provers.split(",") if p]
    unknown = [p for p in args.provers if p not in PROVERS]
    if unknown or not args.provers:
        parser.error(f"--provers: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(PROVERS)}")
    if "merged" in args.provers and not args.checkpoint:
        parser.error("--provers merged needs --checkpoint (a prover checkpoint file)")
    if args.expansions < 1 or args.candidates < 1 or args.theorems < 0 or args.threads < 0:
        parser.error("--expansions and --candidates must be >= 1, --theorems and --threads >= 0")
    if not 0.0 < args.false_value <= 1.0:
        parser.error(f"--false-value must be in (0, 1], got {args.false_value}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    db = read_database(args.database)
    theorems = db.incomplete_theorems() if args.split == "incomplete" else split_theorems(db)[args.split]
    theorems = theorems[: args.theorems] if args.theorems else theorems
    forbidden = frozenset({a.label for a in db.incomplete_theorems()} | database_discouraged_labels(db))
    settings = SearchSettings(
        expansions=args.expansions, timeout_s=NO_LIMIT, candidates=args.candidates, fill_lemmas=args.fill_lemmas
    )
    false_values = {"both": (None, args.false_value), "none": (None,), "truth-table": (args.false_value,)}
    print(f"{args.database} {args.split}: {len(theorems)} theorems, {args.expansions} expansions, k={args.candidates}")
    print(f"{'prover':<10} {'critic':<12} {'proved':>8} {'s/theorem':>10} {'refuted':>8}", flush=True)
    checking = (Grammar(db), Kernel(db))
    for name in args.provers:
        policy: Policy = (
            BaselinePolicy(db, grammar=checking[0])
            if name == "baseline"
            else load_policy(args.checkpoint, "cpu", name="prover", db=db, precision=args.precision)
        )
        for false_value in false_values[args.critic]:
            proved, seconds, refuted = run(db, theorems, policy, settings, forbidden, false_value, checking)
            critic = "none" if false_value is None else "truth table"
            share = "-" if math.isnan(refuted) else f"{refuted:.0%}"
            print(f"{name:<10} {critic:<12} {f'{proved}/{len(theorems)}':>8} {seconds:>10.3f} {share:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
