"""The model-free baseline's candidates inside every learned backward search: :class:`MergedPolicy`.

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

:func:`with_baseline` is how searches get it by default (``SearchSettings.merge_baseline``), or the
:class:`~core.search.ranked.RankedPolicy` instead (``SearchSettings.rank_baseline``): it wraps a learned
policy (one whose ``learned`` attribute is true, as :class:`~core.search.model_policy.ModelPolicy`'s is) for
backward search, with a baseline cached per database, and leaves any other policy as it is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from core.metamath.database import Database
from core.metamath.environment import tactic_key
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

    def __init__(self, model: Policy, baseline: Policy) -> None:
        self.model = model
        self.baseline = baseline
        self.from_baseline = 0  # proposals only the baseline made, over all queries
        self.from_model = 0

    def __getattr__(self, name: str) -> Any:
        """Everything else (counters, device, ...) is the learned policy's."""
        if name in ("model", "baseline"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        learned = self.model.propose_backward(queries, k)
        unifying = self.baseline.propose_backward(queries, k)
        return [self._merge(first, second) for first, second in zip(learned, unifying)]

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        return self.model.propose_forward(queries, k, temperature)

    def _merge(self, learned: Sequence[Proposal], unifying: Sequence[Proposal]) -> list[Proposal]:
        seen = {tactic_key(p.tactic) for p in learned}
        merged = list(learned)
        for proposal in unifying:
            key = tactic_key(proposal.tactic)
            if key not in seen:
                seen.add(key)
                merged.append(proposal)
        self.from_model += len(learned)
        self.from_baseline += len(merged) - len(learned)
        return merged


def with_baseline(
    policy: Policy,
    db: Database,
    grammar: Grammar,
    *,
    prover: str,
    merge: bool,
    rank: bool = False,
    pool: int = RANK_POOL,
) -> Policy:
    """``policy`` with the baseline's candidates when the prover searches backward (``backward``, ``htps``) and
    the policy is learned (not already wrapped): ranked by its model (:class:`~core.search.ranked.RankedPolicy`,
    the first ``pool`` of them) when ``rank`` and it is a model policy, else merged after its proposals when
    ``merge``; otherwise ``policy`` itself."""
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
    return MergedPolicy(policy, baseline_for(db, grammar))


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
