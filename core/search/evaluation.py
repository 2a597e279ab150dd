"""Prove a list of theorems with a policy, each in its own context, and summarise the outcome as JSON.

:func:`evaluate` is the library form of ``python -m jobs.prove --split test`` and of the evaluator role:
each theorem is searched in a :class:`BackwardEnv` / :class:`ForwardEnv` of its own (the assertions
before it, minus ``forbidden`` and itself), many at once with their policy calls batched
(:func:`~core.search.runner.run_searches`), and the results are summarised by :func:`summarize`.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from core.errors import ConfigError, MetamathError
from core.metamath.database import Assertion, Database
from core.metamath.environment import BackwardEnv, ForwardEnv
from core.metamath.prooftree import ProofTree
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.search.backward import BackwardSearch
from core.search.forward import ForwardGreedySearch, ForwardSamplingSearch
from core.search.htps import ConstantCritic, Critic, HtpsSearch, HtpsSettings
from core.search.merged import with_baseline
from core.search.policy import Policy
from core.search.runner import Search, SearchResult, SearchSettings, run_searches
from core.search.truth_table import ProductCritic, TruthTableCritic

logger = logging.getLogger(__name__)


def make_search(
    db: Database,
    theorem: Assertion,
    settings: SearchSettings,
    *,
    grammar: Grammar,
    kernel: Kernel,
    forbidden: Collection[str] = (),
    htps: HtpsSettings | None = None,
    critic: Critic | None = None,
    max_solved_subgoals: int = 0,
    max_critic_examples: int = 0,
) -> Search:
    """The search ``settings.prover`` names, for ``theorem`` in its own context.

    ``htps``: the settings of ``htps`` (default: :meth:`HtpsSettings.from_search` of ``settings``).
    ``critic``: the goal critic of ``htps`` (default: the constant ``critic_value``) and of ``backward``
    (which then orders goals by it too; default: none); with ``settings.truth_table``, times the theorem's
    :class:`~core.search.truth_table.TruthTableCritic`. ``max_solved_subgoals``: how many of the goals it
    solved a failed backward or HTPS search reports (:attr:`SearchResult.solved_subgoals`; 0: none);
    ``max_critic_examples``: how many critic targets a backward or HTPS search reports
    (:attr:`SearchResult.critic_examples`; 0: none).
    """
    if settings.prover in ("backward", "htps"):
        env = BackwardEnv(db, theorem, grammar=grammar, kernel=kernel, forbidden=forbidden)
        if settings.prover == "htps":
            htps = htps or HtpsSettings.from_search(settings)
            if settings.truth_table:
                critic = _with_truth_table(critic or ConstantCritic(htps.critic_value), db, theorem)
            return HtpsSearch(env, htps, critic, max_solved_subgoals, max_critic_examples)
        if settings.truth_table:
            critic = _with_truth_table(critic, db, theorem)
        return BackwardSearch(env, settings, critic, max_solved_subgoals, max_critic_examples)

    def make_env() -> ForwardEnv:
        return ForwardEnv(db, theorem, grammar=grammar, kernel=kernel, forbidden=forbidden)

    if settings.prover == "forward-greedy":
        return ForwardGreedySearch(make_env, settings)
    return ForwardSamplingSearch(make_env, settings)


def _with_truth_table(critic: Critic | None, db: Database, theorem: Assertion) -> Critic:
    """``critic`` times ``theorem``'s truth table (the table alone without ``critic``)."""
    table = TruthTableCritic(db, theorem)
    return table if critic is None else ProductCritic(critic, table)


def prove_theorems(
    db: Database,
    theorems: Sequence[Assertion],
    policy: Policy,
    settings: SearchSettings,
    *,
    forbidden: Collection[str] = (),
    grammar: Grammar | None = None,
    kernel: Kernel | None = None,
    batch: int | None = None,
    on_result: Callable[[SearchResult], None] | None = None,
    htps: HtpsSettings | None = None,
    critic: Critic | None = None,
    max_solved_subgoals: int = 0,
    max_critic_examples: int = 0,
) -> list[SearchResult]:
    """Search every theorem (``batch`` at a time, default ``settings.batch_goals``); results in order.

    ``htps`` / ``critic`` / ``max_solved_subgoals`` / ``max_critic_examples``: the HTPS settings, the critic
    of HTPS or best-first search, the solved subgoals a failed backward search reports and the critic
    targets a search reports (see :func:`make_search`).

    A learned policy searching backward is merged with the model-free baseline's candidates unless
    ``settings.merge_baseline`` is false (with the model's lemmas filled from the goal's subexpressions when
    ``settings.fill_lemmas``), or its model ranks the baseline's candidates when ``settings.rank_baseline``
    (:func:`core.search.merged.with_baseline`); ``critic`` is used only
    while ``settings.critic`` is true. Logs progress
    (theorems done, proved, rate, ETA) at most every 10 seconds.
    """
    grammar = grammar or Grammar(db)
    kernel = kernel or Kernel(db)
    progress = ProgressLog(len(theorems), on_result)
    policy = with_baseline(
        policy,
        db,
        grammar,
        prover=settings.prover,
        merge=settings.merge_baseline,
        rank=settings.rank_baseline,
        pool=settings.rank_pool,
        fill_lemmas=settings.fill_lemmas,
    )
    critic = critic if settings.critic else None

    def searches() -> Iterator[Search]:
        for theorem in theorems:
            yield make_search(
                db,
                theorem,
                settings,
                grammar=grammar,
                kernel=kernel,
                forbidden=forbidden,
                htps=htps,
                critic=critic,
                max_solved_subgoals=max_solved_subgoals,
                max_critic_examples=max_critic_examples,
            )

    results = run_searches(searches(), policy, batch=batch or settings.batch_goals, on_result=progress)
    progress.log(final=True)
    return results


class ProgressLog:
    """A result callback that logs theorems done, proved, rate and ETA at most every ``every_s`` seconds."""

    def __init__(
        self, total: int, callback: Callable[[SearchResult], None] | None = None, every_s: float = 10.0
    ) -> None:
        self.total = total
        self.every_s = every_s
        self.callback = callback
        self.done = 0
        self.proved = 0
        self.start = self.last = time.perf_counter()

    def __call__(self, result: SearchResult) -> None:
        self.done += 1
        self.proved += result.proved
        if self.callback is not None:
            self.callback(result)
        if time.perf_counter() - self.last >= self.every_s:
            self.log()

    def log(self, final: bool = False) -> None:
        self.last = now = time.perf_counter()
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        logger.info(
            "%s %d/%d theorems, %d proved, %.2f theorems/s%s",
            "searched" if final else "searching",
            self.done,
            self.total,
            self.proved,
            rate,
            "" if final else f", ETA {eta:.0f} s",
        )


def summarize(
    results: Sequence[SearchResult],
    *,
    settings: SearchSettings | None = None,
    include_proofs: bool = False,
    elapsed_s: float | None = None,
) -> dict[str, Any]:
    """The JSON summary of a set of search results.

    Keys: ``total``, ``proved``, ``success_rate``; ``expansions_per_solved`` / ``time_s_per_solved`` /
    ``proof_size`` / ``proof_depth`` (each ``{"mean", "median", "max"}`` over solved theorems, ``None``
    when none is solved); ``invalid_proposals`` and ``pruned`` (counters summed over all searches);
    ``kernel_rejections`` (must be 0); ``stop_reasons``; ``settings``; ``elapsed_s``; and ``theorems``
    (one :meth:`SearchResult.to_json` per theorem, with its proof tree if ``include_proofs``).
    """
    solved = [r for r in results if r.proved]
    invalid: Counter[str] = Counter()
    pruned: Counter[str] = Counter()
    for result in results:
        invalid.update(result.invalid)
        pruned.update(result.pruned)
    return {
        "total": len(results),
        "proved": len(solved),
        "success_rate": len(solved) / len(results) if results else 0.0,
        "expansions_per_solved": _stats([r.expansions for r in solved]),
        "time_s_per_solved": _stats([r.time_s for r in solved]),
        "proof_size": _stats([r.proof_size for r in solved if r.proof_size is not None]),
        "proof_depth": _stats([r.proof_depth for r in solved if r.proof_depth is not None]),
        "invalid_proposals": dict(sorted(invalid.items())),
        "pruned": dict(sorted(pruned.items())),
        "kernel_rejections": sum(r.kernel_rejections for r in results),
        "stop_reasons": dict(sorted(Counter(r.stop_reason for r in results).items())),
        "settings": settings.to_dict() if settings is not None else None,
        "elapsed_s": round(elapsed_s, 3) if elapsed_s is not None else None,
        "theorems": [r.to_json(include_proof=include_proofs) for r in results],
    }


def found_proofs(summary: Any, *, where: str) -> dict[str, ProofTree]:
    """The proof trees of a :func:`summarize` summary made with ``include_proofs`` (``jobs.prove --json``):
    label -> tree, for each proved theorem. ``where`` names the summary in errors; a summary of another shape
    or a malformed tree is refused (:class:`ConfigError`), never guessed at."""
    theorems = summary.get("theorems") if isinstance(summary, dict) else None
    if not isinstance(theorems, list):
        raise ConfigError(f"{where}: not a search summary (jobs.prove --json): no list of theorems")
    found: dict[str, ProofTree] = {}
    for entry in theorems:
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
            raise ConfigError(f"{where}: a theorem entry without a label: {str(entry)[:80]}")
        if not entry.get("proved"):
            continue
        if not isinstance(entry.get("proof"), dict):
            raise ConfigError(f"{where}: {entry['label']} is proved but its proof is missing (a summary written "
                              "without proofs? jobs.prove --json includes them)")  # fmt: skip
        try:
            found[entry["label"]] = ProofTree.from_json(entry["proof"])
        except MetamathError as error:
            raise ConfigError(f"{where}: the proof of {entry['label']} is malformed: {error}") from error
    return found


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "mean": round(statistics.fmean(values), 6),
        "median": round(float(statistics.median(values)), 6),
        "max": round(float(max(values)), 6),
    }


def evaluate(
    db: Database,
    theorems: Sequence[Assertion],
    policy: Policy,
    settings: SearchSettings,
    *,
    forbidden: Collection[str] = (),
    grammar: Grammar | None = None,
    kernel: Kernel | None = None,
    batch: int | None = None,
    on_result: Callable[[SearchResult], None] | None = None,
    include_proofs: bool = False,
    critic: Critic | None = None,
) -> dict[str, Any]:
    """Search each theorem in its own context (itself and ``forbidden`` excluded); the :func:`summarize` JSON.
    ``critic``: the goal critic of a backward or HTPS search (see :func:`prove_theorems`)."""
    start = time.perf_counter()
    results = prove_theorems(
        db,
        theorems,
        policy,
        settings,
        forbidden=forbidden,
        grammar=grammar,
        kernel=kernel,
        batch=batch,
        on_result=on_result,
        critic=critic,
    )
    return summarize(results, settings=settings, include_proofs=include_proofs, elapsed_s=time.perf_counter() - start)
