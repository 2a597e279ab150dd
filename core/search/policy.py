"""The interface between searches and whatever proposes tactics (a model, the model-free baseline, an oracle).

Searches never call a model directly: they hand *queries* to a :class:`Policy`, which answers a whole
batch at once with scored :class:`Proposal` lists. This is what lets many searches run together with
their model calls batched (:mod:`core.search.runner`).

- :class:`BackwardQuery`: a goal in a backward environment -> tactics whose conclusion should unify
  with the goal, each with the substitution of the variables unification leaves free.
- :class:`ForwardQuery`: a forward environment's graph (and, for provers, the goal) -> tactics with a full
  substitution. For the generator (``goal is None``) a proposal may be :data:`STOP`.

``logprob`` is the policy's log-probability of the proposal (uniform for the baseline); searches use
cumulative log-probabilities as priorities. Proposals may be invalid: the environment checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.metamath.database import Statement
from core.metamath.environment import BackwardEnv, ForwardEnv, Tactic

STOP = Tactic("<STOP>")  # the generator's "end the rollout here" action


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposed tactic and its log-probability; ``text`` is the raw output it was decoded from, if any."""

    tactic: Tactic
    logprob: float
    text: str = ""

    @property
    def is_stop(self) -> bool:
        return self.tactic.label == STOP.label


@dataclass(frozen=True, slots=True)
class BackwardQuery:
    env: BackwardEnv
    goal: Statement


@dataclass(frozen=True, slots=True)
class ForwardQuery:
    env: ForwardEnv
    goal: Statement | None  # None: the generator, which has no target and may STOP
    may_stop: bool = True  # False: the generator may not STOP yet (the STOP token is masked)
    inference_only: bool = False  # True: only assertions with essential hypotheses (steps that build on nodes)


class Policy(Protocol):
    """Proposes tactics for batches of queries."""

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        """Up to ``k`` proposals per query, best first."""
        ...

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        """Up to ``k`` proposals per query: the ``k`` best (``temperature=None``) or ``k`` samples."""
        ...
