"""Forward provers: greedy and sampling rollouts in a :class:`ForwardEnv` (cf. Evariste's forward_greedy /
forward_sampling).

Both grow a graph of proven statements from the theorem's hypotheses, one policy query per step; a step
tries the proposals in the order given and keeps the first that the environment accepts (a valid tactic
whose conclusion is not already a node). The theorem is proved when its statement appears as a node;
that node's proof tree is checked by the kernel before it counts.

- :class:`ForwardGreedySearch`: one rollout of the ``k`` best proposals per step (``temperature=None``),
  at most ``max_depth`` steps; it stops early when no proposal applies (``exhausted``).
- :class:`ForwardSamplingSearch`: rollouts of ``k`` samples per step at ``temperature``, each of at most
  ``max_depth`` steps and ending early when no sample applies; a new rollout starts from a fresh graph
  until the goal appears or a budget runs out. Every step of every rollout counts as one expansion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.metamath.environment import EnvError, ForwardEnv
from core.search.policy import ForwardQuery, Proposal
from core.search.runner import Query, Search, SearchSettings


class _ForwardSearch(Search):
    kind = "forward"

    def __init__(self, make_env: Callable[[], ForwardEnv], settings: SearchSettings) -> None:
        env = make_env()
        super().__init__(env.db, env.theorem, settings, grammar=env.grammar, kernel=env.kernel)
        self.make_env = make_env
        self.env = env
        self.steps = 0  # steps of the current rollout
        self.rollouts = 1
        self.nodes_added = 0

    def node_count(self) -> int:
        return self.nodes_added

    def _queries(self) -> list[Query]:
        goal = self.env.by_statement.get(self.theorem.statement)
        if goal is not None:  # the goal is one of the hypotheses
            self._accept(goal.tree)
            return []
        if self.steps >= self.settings.max_depth and not self._next_rollout():
            self._stop("max_depth")
            return []
        return [ForwardQuery(self.env, self.theorem.statement)]

    def _absorb(self, proposals: Sequence[Sequence[Proposal]]) -> None:
        self.steps += 1
        for proposal in proposals[0]:
            if proposal.is_stop:
                continue
            node = self.env.apply(proposal.tactic)
            if isinstance(node, EnvError):
                self.invalid[node.kind.value] += 1
                continue
            self.nodes_added += 1
            if self.env.is_goal(node):
                self._accept(node.tree)
            return
        if not self._next_rollout():  # no proposal applied: this rollout is stuck
            self._stop("exhausted")

    def _next_rollout(self) -> bool:
        """Start a fresh rollout if this prover does rollouts; False if it does not."""
        return False


class ForwardGreedySearch(_ForwardSearch):
    """One greedy rollout: at each step the first applicable of the policy's ``k`` best proposals."""

    prover = "forward-greedy"


class ForwardSamplingSearch(_ForwardSearch):
    """Repeated sampled rollouts from a fresh graph, until the goal appears or a budget runs out."""

    prover = "forward-sampling"

    @property
    def temperature(self) -> float | None:
        return self.settings.temperature

    def _next_rollout(self) -> bool:
        self.env = self.make_env()
        self.steps = 0
        self.rollouts += 1
        return True
