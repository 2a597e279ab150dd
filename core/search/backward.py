"""Backward best-first proof search over an AND-OR graph (GPT-f / HTPS style).

The graph has *goal* nodes (OR: a goal is solved by any one of its tactics) and *tactic* nodes (AND: a
tactic solves its goal when all its open subgoals are solved). Subgoals equal to a hypothesis of the
theorem are closed by the environment and never become nodes.

**Priority.** Every goal carries ``value``: the largest, over the paths from the root to it, of the sum
of the log-probabilities of the tactics along the path (the root has 0). Each round the search expands
the open goal of highest value (ties: the goal created first); it asks the policy for ``k`` proposals,
applies each with :meth:`BackwardEnv.apply` and links the resulting tactic nodes. A goal reached by a
better path later has its value raised, and so have its descendants.

**Bookkeeping.**
- Duplicate goals share one node (same statement, same node), so a subproof is found once.
- Cycles are avoided: a tactic one of whose subgoals is the goal itself or one of its ancestors is
  dropped (``pruned["cycle"]``); so is a tactic whose subgoals repeat an earlier tactic's of the same
  goal (``pruned["duplicate tactic"]``) or include a goal already known to fail (``pruned["failed
  subgoal"]``). The graph therefore stays acyclic.
- A goal is *solved* by a tactic whose open subgoals are all solved; solutions propagate upwards. A goal
  *fails* when it was expanded and all its tactics failed (none valid included); a tactic fails when one
  of its subgoals fails. Failures propagate upwards too. A goal is only expanded while it can still help
  the root (some path of unfailed tactics leads from it to the root through unsolved goals).
- Goals deeper than ``max_depth`` (root = 0) are never expanded.

**Critic.** With a critic (:class:`core.search.htps.Critic`, e.g. :class:`core.models.critic.GoalCritic`),
a goal's priority is its ``value`` plus the log of the critic's estimate that it is provable (floored at
``1e-6``), so among goals the policy likes equally, those the critic rates provable come first. Without
one (the default), the priority is ``value`` alone.

The search stops when the root is solved (the proof tree is rebuilt with :meth:`BackwardEnv.build_tree`
and checked by the kernel before it counts), when nothing is left to expand, or when a budget runs out.
Limitation: a goal that fails only because its tactics formed cycles *on one path* is marked failed for
every path that shares it (rare, and it only loses completeness, never soundness).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence

from core.metamath.database import Statement
from core.metamath.environment import BackwardEnv, Expansion
from core.search import hypergraph
from core.search.htps import Critic
from core.search.hypergraph import Goal, HypergraphSearch, Tactic
from core.search.policy import BackwardQuery, Proposal
from core.search.runner import Query, SearchSettings


class GoalNode(Goal["TacticNode"]):
    """An OR node: a statement to prove, with its best path value and the critic's bonus."""

    __slots__ = ("bonus", "value")

    def __init__(self, statement: Statement, index: int, depth: int, value: float) -> None:
        super().__init__(statement, index, depth)
        self.value = value
        self.bonus = 0.0  # log of the critic's value (0 without a critic)


class TacticNode(Tactic[GoalNode]):
    """An AND node: a valid tactic applied to ``goal``; ``subgoals[i]`` is ``None`` for closed subgoals."""

    __slots__ = ()
    expansion: Expansion


class BackwardSearch(HypergraphSearch[GoalNode]):
    """Best-first search of one theorem in a :class:`BackwardEnv` (see the module docstring)."""

    prover = "backward"

    def __init__(
        self,
        env: BackwardEnv,
        settings: SearchSettings,
        critic: Critic | None = None,
        max_solved_subgoals: int = 0,
        max_critic_examples: int = 0,
    ) -> None:
        super().__init__(env, settings, max_solved_subgoals, max_critic_examples)
        self.critic = critic
        self._heap: list[tuple[float, int, GoalNode]] = []
        self._tie = itertools.count()
        self._expanding: GoalNode | None = None
        self.root = self._goal(env.theorem.statement, 0, 0.0)

    # --- the protocol ----------------------------------------------------------------------------

    def _queries(self) -> list[Query]:
        if self._root_is_hypothesis():
            return []
        while self._heap:
            _, _, goal = heapq.heappop(self._heap)
            if not goal.expanded and goal.depth < self.settings.max_depth and self._useful(goal):
                self._expanding = goal
                return [BackwardQuery(self.env, goal.statement)]
        return []

    def _absorb(self, proposals: Sequence[Sequence[Proposal]]) -> None:
        goal, self._expanding = self._expanding, None
        if goal is None:
            return
        goal.expanded = True
        above = hypergraph.ancestors(goal)
        seen = {hypergraph.subgoal_key(t.expansion) for t in goal.tactics}
        for expansion, logprob in hypergraph.applied(self.env, goal, proposals[0], self.invalid):
            self._link(goal, expansion, logprob, above, seen)
        if not goal.solved and all(t.failed for t in goal.tactics):
            hypergraph.mark_failed(goal)
        self._end_round()

    # --- growing the graph -----------------------------------------------------------------------

    def _goal(self, statement: Statement, depth: int, value: float) -> GoalNode:
        goal = GoalNode(statement, len(self.goals), depth, value)
        if self.critic is not None:
            goal.bonus = math.log(max(self.critic.values([statement])[0], 1e-6))
        self.goals[statement] = goal
        self._push(goal)
        return goal

    def _push(self, goal: GoalNode) -> None:
        if not goal.expanded and goal.depth < self.settings.max_depth:
            heapq.heappush(self._heap, (-(goal.value + goal.bonus), next(self._tie), goal))

    def _link(
        self,
        goal: GoalNode,
        expansion: Expansion,
        logprob: float,
        above: set[int],
        seen: set[tuple[Statement, ...]],
    ) -> None:
        reason = hypergraph.rejection(goal, expansion, self.goals, above, seen)
        if reason is not None:
            self.pruned[reason] += 1
            return
        depth, value = goal.depth + 1, goal.value + logprob
        subgoals: list[GoalNode | None] = []
        for subgoal in expansion.subgoals:
            if subgoal.closed_by is not None:
                subgoals.append(None)
                continue
            node = self.goals.get(subgoal.statement)
            if node is None:
                node = self._goal(subgoal.statement, depth, value)
            else:
                self._raise(node, depth, value)
            subgoals.append(node)
        tactic = TacticNode(goal, expansion, logprob, subgoals)
        self.tactic_count += 1
        goal.add_tactic(tactic)
        hypergraph.mark_solved(tactic)

    def _raise(self, node: GoalNode, depth: int, value: float) -> None:
        """Lower ``node``'s depth / raise its value if a new path is better, and its descendants'."""
        stack = [(node, depth, value)]
        while stack:
            goal, depth, value = stack.pop()
            if depth >= goal.depth and value <= goal.value:
                continue
            goal.depth, goal.value = min(goal.depth, depth), max(goal.value, value)
            if not goal.expanded:
                self._push(goal)
                continue
            for tactic in goal.tactics:
                for child in tactic.open():
                    stack.append((child, goal.depth + 1, goal.value + tactic.logprob))

    # --- propagation -----------------------------------------------------------------------------

    def _useful(self, goal: GoalNode) -> bool:
        """Whether some path of unfailed tactics through unsolved goals leads from ``goal`` to the root."""
        if goal.solved or goal.failed:
            return False
        stack, seen = [goal], {goal.index}
        while stack:
            node = stack.pop()
            if node is self.root:
                return True
            for tactic in node.parents:
                parent = tactic.goal
                if not tactic.failed and not parent.solved and not parent.failed and parent.index not in seen:
                    seen.add(parent.index)
                    stack.append(parent)
        return False
