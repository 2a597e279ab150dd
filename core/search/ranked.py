"""The model-free baseline's candidates ranked by a learned model, without decoding: :class:`RankedPolicy`.

Decoding ``k`` tactics by beam search costs one decoder call per output token; on a CPU that is most of a
learned search's time. Scoring given tactics costs one teacher-forced call for all of them. So
:class:`RankedPolicy` answers a backward query with the model-free baseline's candidates
(:mod:`core.search.baseline`: the lemmas whose conclusion unifies with the goal, free variables filled from
the goal's subterms), the first ``pool`` of them in the baseline's order, each re-scored by the model's
log-probability of its tactic (the same value the model's beam search would give it: same source, same
first-token mask), best first, and returns the best ``k``. A candidate the model cannot encode (a label or
symbol outside its vocabulary, a target too long) keeps the baseline's log-probability and comes after the
scored ones.

What it gives up: a substitution the baseline never proposes (an expression that is not a subterm of the
goal or the theorem) is out of its reach; :class:`~core.search.merged.MergedPolicy` keeps those.
Forward queries go to the learned policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from core.errors import ConfigError
from core.models.decoding import score_shared
from core.search.model_policy import ModelPolicy
from core.search.policy import BackwardQuery, ForwardQuery, Policy, Proposal
from core.search.settings import RANK_POOL


class RankedPolicy:
    """The baseline's backward candidates, the first ``pool`` per query, ranked by ``model`` (see above)."""

    learned = True

    def __init__(self, model: ModelPolicy, baseline: Policy, *, pool: int = RANK_POOL) -> None:
        if type(pool) is not int or pool < 1:
            raise ConfigError(f"RankedPolicy pool must be an integer >= 1 (got {pool!r})")
        self.model = model
        self.baseline = baseline
        self.pool = pool
        self.scored = 0  # candidates the model scored, over all queries
        self.unscored = 0  # candidates it could not encode

    def __getattr__(self, name: str) -> Any:
        """Everything else (counters, device, ...) is the learned policy's."""
        if name in ("model", "baseline"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        if k < 1:
            raise ConfigError(f"RankedPolicy: k must be >= 1 (got {k})")
        candidates = self.baseline.propose_backward(queries, self.pool)
        sources: list[list[int]] = []  # one per query with candidates to score
        targets: list[list[int]] = []  # one per scored candidate
        source_of: list[int] = []
        masks: list[torch.Tensor] = []
        where: list[tuple[int, int]] = []  # (query, candidate) of each scored row
        for i, (query, proposals) in enumerate(zip(queries, candidates)):
            prepared = self.model.backward_input(query) if proposals else None
            if prepared is None:
                continue
            source, mask = prepared
            sources.append(source)  # encoded once for all its candidates
            for j, proposal in enumerate(proposals):
                assertion = query.env.db.assertion(proposal.tactic.label)
                target = self.model.codec.backward_target(proposal.tactic, assertion)
                if target is None or not bool(mask[target[0]]):
                    continue
                targets.append(target)
                source_of.append(len(sources) - 1)
                masks.append(mask)
                where.append((i, j))
        logprobs = self._score(sources, targets, source_of, masks)
        rescored: list[dict[int, float]] = [{} for _ in queries]
        for (i, j), logprob in zip(where, logprobs):
            rescored[i][j] = logprob
        return [self._ranked(proposals, scores, k) for proposals, scores in zip(candidates, rescored)]

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        return self.model.propose_forward(queries, k, temperature)

    def _score(
        self, sources: list[list[int]], targets: list[list[int]], source_of: list[int], masks: list[torch.Tensor]
    ) -> list[float]:
        """The model's log-probability of each target given its source, in chunks of ``max_batch`` targets."""
        model = self.model.model
        values: list[float] = []
        for start in range(0, len(targets), self.model.max_batch):
            rows = range(start, min(start + self.model.max_batch, len(targets)))
            first = source_of[rows[0]]
            values += score_shared(
                model,
                sources[first : source_of[rows[-1]] + 1],
                targets[rows.start : rows.stop],
                [source_of[r] - first for r in rows],
                allowed_first=torch.stack(masks[rows.start : rows.stop]),
            )
            self.model.model_calls += 1
        return values

    def _ranked(self, proposals: Sequence[Proposal], scores: dict[int, float], k: int) -> list[Proposal]:
        self.scored += len(scores)
        self.unscored += len(proposals) - len(scores)
        ranked = sorted(scores, key=lambda j: -scores[j])
        ranked_proposals = [Proposal(proposals[j].tactic, scores[j], proposals[j].text) for j in ranked]
        rest = [p for j, p in enumerate(proposals) if j not in scores]
        return (ranked_proposals + rest)[:k]
