r"""The model-free baseline's candidates inside every learned backward search: :class:`MergedPolicy`.

A learned policy that proposes only what its model decodes can lose to the model-free baseline
(:mod:`core.search.baseline`) on theorems unlike its training data: a weak model's substitutions are
often invalid, while unification finds the applicable lemmas and fills their free variables from the
goal's subterms. :class:`MergedPolicy` asks both for every backward query and answers their union:

- the learned policy's proposals first, in its order, with its log-probabilities;
- then the baseline's proposals the learned one did not make (same tactic: same label and substitution),
  in the baseline's order (fully determined tactics first), each with the baseline's log-probability.

So every expansion applies at least the tactics a baseline expansion applies, plus the model's; the search
ranks goals by the summed log-probabilities as usual. Up to ``2 k`` proposals are returned per query.
Forward queries go to the learned policy alone (the merge is for backward search).

With ``fill_lemmas`` (``SearchSettings.fill_lemmas``, off by default), between the two: each lemma the model
proposed whose conclusion leaves exactly one variable free, with that variable filled by every distinct
subexpression of its typecode of the goal, the theorem and the theorem's hypotheses
(:meth:`BaselinePolicy.subexpressions`), each scored the model's mass on the lemma (the log of the summed
probabilities of its proposals of it) minus the log of the number of fillings. A small model proposes the
right lemma with a short wrong filler where the proof needs a long subterm of a hypothesis (``syl2anc``:
``pm3.27d`` with ``( ( ph /\ ps ) /\ ( ch /\ th ) )``), which the baseline's pool, shortest first and capped,
reaches late or never.

:func:`with_baseline` is how searches get it by default (``SearchSettings.merge_baseline``), or the
:class:`~core.search.ranked.RankedPolicy` instead (``SearchSettings.rank_baseline``): it wraps a learned
policy (one whose ``learned`` attribute is true, as :class:`~core.search.model_policy.ModelPolicy`'s is) for
backward search, with a baseline cached per database, and leaves any other policy as it is.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from core.errors import ConfigError
from core.metamath.database import Assertion, Database
from core.metamath.environment import Tactic, tactic_key
from core.metamath.syntax import Grammar
from core.search.baseline import BaselinePolicy
from core.search.model_policy import ModelPolicy
from core.search.policy import BackwardQuery, ForwardQuery, Policy, Proposal
from core.search.ranked import RankedPolicy
from core.search.settings import RANK_POOL

BASELINE_CACHE = 4  # databases whose baseline policy is kept (building one indexes every assertion)
_baselines: OrderedDict[int, tuple[Database, BaselinePolicy]] = OrderedDict()


class MergedPolicy:
    """A learned policy's backward proposals, then the baseline's others (see the module docstring)."""

    learned = True

    def __init__(self, model: Policy, baseline: Policy, *, fill_lemmas: bool = False) -> None:
        if fill_lemmas and not isinstance(baseline, BaselinePolicy):
            raise ConfigError(
                f"MergedPolicy: fill_lemmas fills from the model-free BaselinePolicy's subexpressions; the baseline "
                f"given is a {type(baseline).__name__}"
            )
        self.model = model
        self.baseline = baseline
        self.filler = baseline if fill_lemmas and isinstance(baseline, BaselinePolicy) else None
        self.from_baseline = 0  # proposals only the baseline made, over all queries
        self.from_model = 0
        self.from_fillings = 0  # fill_lemmas: the model's lemmas with a subexpression as filler, not made before

    def __getattr__(self, name: str) -> Any:
        """Everything else (counters, device, ...) is the learned policy's."""
        if name in ("model", "baseline"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        learned = self.model.propose_backward(queries, k)
        unifying = self.baseline.propose_backward(queries, k)
        filled = [self._fillings(q, first) for q, first in zip(queries, learned)]
        return [self._merge(*lists) for lists in zip(learned, filled, unifying)]

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        return self.model.propose_forward(queries, k, temperature)

    def _merge(
        self, learned: Sequence[Proposal], filled: Sequence[Proposal], unifying: Sequence[Proposal]
    ) -> list[Proposal]:
        seen = {tactic_key(p.tactic) for p in learned}
        merged = list(learned)
        for source in (filled, unifying):
            before = len(merged)
            for proposal in source:
                key = tactic_key(proposal.tactic)
                if key not in seen:
                    seen.add(key)
                    merged.append(proposal)
            if source is filled:
                self.from_fillings += len(merged) - before
            else:
                self.from_baseline += len(merged) - before
        self.from_model += len(learned)
        return merged

    def _fillings(self, query: BackwardQuery, learned: Sequence[Proposal]) -> list[Proposal]:
        """The model's lemmas with one free variable, filled by every subexpression of the goal, the theorem and
        its hypotheses, scored as the module docstring says."""
        if self.filler is None:
            return []
        env, mass = query.env, _lemma_mass(learned)
        theorem = env.theorem
        statements = [query.goal, theorem.statement, *(h.statement for h in theorem.essential)]
        pool: dict[str, list[tuple[str, ...]]] | None = None
        proposals: list[Proposal] = []
        for label, logprob in mass.items():
            assertion = env.db.labels.get(label)
            if not isinstance(assertion, Assertion):
                continue
            free = env.free_variables(assertion)
            typecode = _typecode(assertion, free[0]) if len(free) == 1 else None
            if typecode is None:
                continue
            pool = self.filler.subexpressions(env, statements) if pool is None else pool
            fillings = pool.get(typecode, [])
            score = logprob - math.log(max(len(fillings), 1))
            proposals.extend(Proposal(Tactic(label, {free[0]: filling}), score) for filling in fillings)
        return proposals


def _lemma_mass(proposals: Sequence[Proposal]) -> dict[str, float]:
    """Label -> the log of the summed probabilities of ``proposals`` with that label, in first-seen order."""
    by_label: dict[str, list[float]] = {}
    for proposal in proposals:
        by_label.setdefault(proposal.tactic.label, []).append(proposal.logprob)
    return {label: _logsumexp(logprobs) for label, logprobs in by_label.items()}


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _typecode(assertion: Assertion, variable: str) -> str | None:
    """The typecode of ``variable`` in ``assertion``'s frame (its floating hypothesis), if it has one."""
    return next((h.typecode for h in assertion.floating if h.variable == variable), None)


def with_baseline(
    policy: Policy,
    db: Database,
    grammar: Grammar,
    *,
    prover: str,
    merge: bool,
    rank: bool = False,
    pool: int = RANK_POOL,
    fill_lemmas: bool = False,
) -> Policy:
    """``policy`` with the baseline's candidates when the prover searches backward (``backward``, ``htps``) and
    the policy is learned (not already wrapped): ranked by its model (:class:`~core.search.ranked.RankedPolicy`,
    the first ``pool`` of them) when ``rank`` and it is a model policy, else merged after its proposals when
    ``merge`` (with the model's lemmas filled from the goal's subexpressions too when ``fill_lemmas``);
    otherwise ``policy`` itself."""
    if (
        not (merge or rank)
        or prover not in ("backward", "htps")
        or not getattr(policy, "learned", False)
        or isinstance(policy, (MergedPolicy, RankedPolicy))
    ):
        return policy
    if rank and isinstance(policy, ModelPolicy):
        return RankedPolicy(policy, baseline_for(db, grammar), pool=pool)
    if not merge:
        return policy
    return MergedPolicy(policy, baseline_for(db, grammar), fill_lemmas=fill_lemmas)


def baseline_for(db: Database, grammar: Grammar) -> BaselinePolicy:
    """The baseline policy (seed 0) of ``db``, built once per database (least recently used ones dropped)."""
    cached = _baselines.get(id(db))
    if cached is not None and cached[0] is db:
        _baselines.move_to_end(id(db))
        return cached[1]
    baseline = BaselinePolicy(db, grammar=grammar)
    _baselines[id(db)] = (db, baseline)  # the db reference keeps id(db) unique while cached
    while len(_baselines) > BASELINE_CACHE:
        _baselines.popitem(last=False)
    return baseline
