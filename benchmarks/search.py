"""Proof-search throughput: expansions/s one search at a time versus many searches with batched policy calls.

Both modes run in this process, on the same theorems, settings and policy, one after the other: mode
``alone`` runs the searches with ``batch=1`` (one query per policy call), mode ``batched`` runs ``--batch``
searches together (one policy call per round for all of them). The ratio batched / alone is the speed-up
batching buys; the target (batched >= 5x) is about a *model* policy, whose cost per call hardly grows
with the batch. The model-free baseline is measured too, as the reference: it does the same work per
query whatever the batch, so its ratio stays near 1.

Policies (``--policy``, comma-separated):

* ``baseline``: the model-free baseline (:mod:`core.search.baseline`);
* ``merged``: the learned policy with the baseline's candidates merged in (:mod:`core.search.merged`, the
  default of every learned backward or HTPS search);
* ``model``: the learned policy, HOOK: :func:`model_policy` builds it, from ``--checkpoint`` (a checkpoint
  file or an experiment root, via ``core.models.checkpoint.read_model``) or, without one, a fresh
  ``--model-size`` model trained for ``--train-steps`` steps on the database's train split (0 = untrained
  weights: the timing of decoding is what matters, not the quality of the proposals).

Searches (``--prover``, comma-separated): ``backward`` (best-first), ``htps`` (HyperTree proof search,
:mod:`core.search.htps`, with its default settings), ``forward-greedy``, ``forward-sampling``. Each row also
gives the policy's seconds per expansion (``policy ms/exp``); the last lines check that batching does not
make it grow (batched / alone, per search and policy).

Run from the repository root::

    .venv/bin/python benchmarks/search.py                                  # baseline, prop.mm test split
    .venv/bin/python benchmarks/search.py --policy baseline,model --model-size small --train-steps 300
    .venv/bin/python benchmarks/search.py --policy model --checkpoint runs/exp1 --devices cpu,cuda
    .venv/bin/python benchmarks/search.py --prover backward,htps --policy baseline,merged --checkpoint P.safetensors
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.errors import run_guarded
from core.metamath.database import Assertion, Database
from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.search.baseline import BaselinePolicy
from core.search.evaluation import make_search
from core.search.merged import with_baseline
from core.search.policy import BackwardQuery, ForwardQuery, Policy, Proposal
from core.search.runner import SearchResult, SearchSettings, run_searches

SHARED = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data"))
PROP_MM = SHARED / "metamath" / "prop.mm"
TARGET_RATIO = 5.0


class TimedPolicy:
    """Wraps a policy: seconds spent in it, calls made and queries answered."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0
        self.queries = 0

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        return self._timed(lambda: self.inner.propose_backward(queries, k), len(queries))

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        return self._timed(lambda: self.inner.propose_forward(queries, k, temperature), len(queries))

    def _timed(self, call: Callable[[], Any], size: int) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.queries += size


@dataclass
class Measure:
    prover: str
    policy: str
    device: str
    mode: str
    batch: int
    expansions: int
    seconds: float
    policy_seconds: float
    calls: int
    proved: int
    theorems: int

    @property
    def rate(self) -> float:
        return self.expansions / self.seconds if self.seconds > 0 else float("nan")

    @property
    def policy_ms_per_expansion(self) -> float:
        return 1000 * self.policy_seconds / self.expansions if self.expansions else float("nan")

    def row(self) -> str:
        return (
            f"{self.prover:<16} {self.policy:<9} {self.device:<6} {self.mode:<8} {self.batch:>5} {self.expansions:>7} "
            f"{self.seconds:>8.2f} {self.rate:>10.1f} {100 * self.policy_seconds / self.seconds:>7.0f}% "
            f"{self.policy_ms_per_expansion:>8.2f} {self.expansions / max(self.calls, 1):>8.1f} "
            f"{self.proved:>4}/{self.theorems}"
        )


HEADER = (
    f"{'search':<16} {'policy':<9} {'device':<6} {'mode':<8} {'batch':>5} {'expans':>7} {'seconds':>8} "
    f"{'expans/s':>10} {'policy':>8} {'ms/exp':>8} {'q/call':>8} {'proved':>7}"
)


def measure(
    db: Database,
    grammar: Grammar,
    kernel: Kernel,
    theorems: Sequence[Assertion],
    policy: Policy,
    settings: SearchSettings,
    batch: int,
) -> tuple[float, TimedPolicy, list[SearchResult]]:
    timed = TimedPolicy(with_baseline(policy, db, grammar, prover=settings.prover, merge=settings.merge_baseline))
    searches = (make_search(db, t, settings, grammar=grammar, kernel=kernel) for t in theorems)
    start = time.perf_counter()
    results = run_searches(searches, timed, batch=batch)
    return time.perf_counter() - start, timed, results


def compare(
    name: str,
    device: str,
    db: Database,
    grammar: Grammar,
    kernel: Kernel,
    theorems: Sequence[Assertion],
    make_policy: Callable[[], Policy],
    settings: SearchSettings,
    batch: int,
    repeat: int,
) -> list[Measure]:
    """Alone then batched, ``repeat`` times each (the fastest run of each mode is kept).

    Every run gets a fresh policy from ``make_policy`` (same weights), so no run profits from the caches
    (masks, parses) an earlier run filled.
    """
    rows = []
    for mode, size in (("alone", 1), ("batched", batch)):
        best: Measure | None = None
        for _ in range(repeat):
            seconds, timed, results = measure(db, grammar, kernel, theorems, make_policy(), settings, size)
            row = Measure(
                settings.prover,
                name,
                device,
                mode,
                size,
                sum(r.expansions for r in results),
                seconds,
                timed.seconds,
                timed.calls,
                sum(r.proved for r in results),
                len(results),
            )
            if best is None or row.rate > best.rate:
                best = row
        assert best is not None
        print(best.row(), flush=True)
        rows.append(best)
    return rows


# --- policies -------------------------------------------------------------------------------------


def model_policy(args: argparse.Namespace, db: Database, device: str) -> Callable[[], Policy]:
    """HOOK for the learned policy: from --checkpoint, or a fresh --model-size model (briefly trained).

    Returns a factory of fresh :class:`ModelPolicy` objects over the same weights.
    """
    import torch

    from core.models.checkpoint import read_model
    from core.search.model_policy import ModelPolicy

    torch.manual_seed(args.seed)
    if args.checkpoint:
        loaded = read_model(args.checkpoint, kind="prover", db=db, device=device)
        model, vocab = loaded.model, loaded.vocab
    else:
        from core.models.formats import build_vocabulary
        from core.models.supervised import train_prover_on_database
        from core.models.training import new_model

        if args.train_steps > 0:
            model, vocab, _ = train_prover_on_database(
                db, size=args.model_size, steps=args.train_steps, seed=args.seed, device=device, validate=False
            )
        else:
            vocab = build_vocabulary(db)
            model = new_model(vocab, args.model_size, seed=args.seed)
    return lambda: ModelPolicy(model, vocab, device=device, seed=args.seed)


def policy_factory(
    name: str, args: argparse.Namespace, db: Database, grammar: Grammar, device: str
) -> Callable[[], Policy]:
    if name == "baseline":
        return lambda: BaselinePolicy(db, grammar=grammar, seed=args.seed)
    if name == "model":  # also the weights of "merged", which main merges with the baseline's candidates
        return model_policy(args, db, device)
    raise SystemExit(f"unknown policy {name!r}: choose baseline or model")


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/search.py", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    default_db = PROP_MM if PROP_MM.exists() else embedded_database_path()
    parser.add_argument("--database", default=str(default_db), help="the .mm file (default: prop.mm, else embedded)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--theorems", type=int, default=64, help="theorems searched in each mode")
    parser.add_argument(
        "--prover", default="backward", help="comma-separated: backward, htps, forward-greedy, forward-sampling"
    )
    parser.add_argument("--expansions", type=int, default=32, help="expansion budget per theorem")
    parser.add_argument("--candidates", type=int, default=8, help="proposals per query")
    parser.add_argument("--batch", type=int, default=32, help="searches run together in the batched mode")
    parser.add_argument("--policy", default="baseline", help="comma-separated: baseline, merged, model")
    parser.add_argument("--checkpoint", default="", help="model policy: a checkpoint file or an experiment root")
    parser.add_argument("--model-size", default="small", help="model policy without checkpoint: tiny, small, base")
    parser.add_argument("--train-steps", type=int, default=0, help="model policy without checkpoint: training steps")
    parser.add_argument("--devices", default="cpu", help="model policy: comma-separated devices, e.g. cpu,cuda")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode (the fastest is kept)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wrong = [p for p in args.prover.split(",") if p not in SEARCHES] + [
        p for p in args.policy.split(",") if p not in POLICIES
    ]
    if wrong:
        parser.error(f"unknown search or policy {', '.join(wrong)}: searches {SEARCHES}, policies {POLICIES}")
    return args


SEARCHES = ("backward", "htps", "forward-greedy", "forward-sampling")
POLICIES = ("baseline", "merged", "model")
LEARNED = ("merged", "model")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    db = read_database(args.database)
    grammar, kernel = Grammar(db), Kernel(db)
    theorems = split_theorems(db)[args.split][: args.theorems]
    print(
        f"{args.database}: {len(theorems)} {args.split} theorems, {args.expansions} expansions, "
        f"k={args.candidates}, batched mode: {args.batch} searches at once"
    )
    print(HEADER)
    ratios = []
    decoders: list[tuple[str, Callable[[], Policy]]] = []
    factories: dict[tuple[str, str], Callable[[], Policy]] = {}
    for prover in args.prover.split(","):
        for name in args.policy.split(","):
            settings = SearchSettings(
                prover=prover,
                expansions=args.expansions,
                candidates=args.candidates,
                timeout_s=1e9,
                batch_goals=args.batch,
                merge_baseline=name == "merged",
            )
            for device in args.devices.split(",") if name in LEARNED else ["cpu"]:
                kind = "model" if name in LEARNED else name  # merged and model share the weights
                if (kind, device) not in factories:
                    factories[kind, device] = policy_factory(kind, args, db, grammar, device)
                make_policy = factories[kind, device]
                alone, batched = compare(
                    name, device, db, grammar, kernel, theorems, make_policy, settings, args.batch, args.repeat
                )
                ratios.append((prover, name, device, alone, batched))
                if name == "model" and prover == "backward" and device not in [d for d, _ in decoders]:
                    decoders.append((device, make_policy))
    for prover, name, device, alone, batched in ratios:
        target = f" (target >= {TARGET_RATIO:g}x)" if name in LEARNED else " (reference: no model to batch)"
        growth = batched.policy_ms_per_expansion / alone.policy_ms_per_expansion
        print(
            f"{prover} {name} on {device}: batched / alone = {batched.rate / alone.rate:.2f}x expansions/s{target}; "
            f"policy cost per expansion {growth:.2f}x ({'does not grow' if growth <= 1.0 else 'GROWS'} with the batch)"
        )
    for device, make_policy in decoders:
        decoding_rates(args, db, device, make_policy())
    return 0


def decoding_rates(args: argparse.Namespace, db: Database, device: str, policy: Policy) -> None:
    """Decoder tokens/s of greedy, sampling and beam decoding on backward-prover sources of the split,
    one source at a time and ``--batch`` at once (every row fed through the decoder counts: all beams)."""
    import torch

    from core.models.decoding import beam_search, greedy, measure, sample
    from core.models.supervised import database_examples

    model, vocab = policy.model, policy.vocab  # type: ignore[attr-defined]  # a ModelPolicy: see the caller
    sources = [source for source, _ in database_examples(db, vocab, model.config, split=args.split).examples][
        : args.batch
    ]
    k = args.candidates
    decoders = {"greedy": (greedy, {}), f"sample n={k}": (sample, {"n": k}), f"beam k={k}": (beam_search, {"k": k})}
    print(f"\nmodel decoding on {device}, {len(sources)} {args.split} sources (decoder tokens/s, all rows counted)")
    print(f"{'decoder':<12} {'one at a time':>14} {f'batch of {len(sources)}':>12} {'ratio':>7}")
    for name, (decoder, options) in decoders.items():
        with torch.inference_mode():
            alone = [measure(decoder, model, [source], **options) for source in sources]
            tokens, seconds = measure(decoder, model, sources, **options)
        one_at_a_time = sum(t for t, _ in alone) / sum(s for _, s in alone)
        print(f"{name:<12} {one_at_a_time:>14.0f} {tokens / seconds:>12.0f} {tokens / seconds / one_at_a_time:>6.1f}x")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
