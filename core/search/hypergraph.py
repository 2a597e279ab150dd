"""The AND/OR hypergraph of goals that both backward searches build.

Used by the best-first search (:mod:`core.search.backward`) and HTPS (:mod:`core.search.htps`).

*Goal* nodes are OR nodes (a goal is solved by any one of its tactics); *tactic* nodes are AND nodes (a
tactic solves its goal when all its open subgoals are solved; ``subgoals[i]`` is ``None`` for a subgoal the
environment closed). :class:`Goal` and :class:`Tactic` hold what both searches keep on a node; each search
subclasses them with its own scores. The functions here are the graph logic both searches share: linking a
tactic, solution and failure propagation, the ancestors of a goal, the checks that keep the graph acyclic,
and rebuilding the proof tree of a solved goal. :class:`HypergraphSearch` is the part of a search that is
the same in both: the goal table, the root closed by a hypothesis, the end of a round, and the goals a
failed search solved on the way (:func:`solved_subgoals`, reported when ``max_solved_subgoals`` > 0), and the
training targets of a goal critic (:meth:`HypergraphSearch.critic_targets`, reported when
``max_critic_examples`` > 0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from core.errors import ConfigError
from core.metamath.database import Statement
from core.metamath.environment import BackwardEnv, EnvError, Expansion
from core.metamath.prooftree import ProofTree, hypothesis_leaf
from core.search.policy import Proposal
from core.search.runner import Search, SearchResult, SearchSettings

GoalT = TypeVar("GoalT", bound="Goal[Any]")
TacticT = TypeVar("TacticT", bound="Tactic[Any]")


class Goal(Generic[TacticT]):
    """An OR node: a statement to prove, ``depth`` steps below the root (the shortest path known)."""

    __slots__ = ("depth", "expanded", "failed", "index", "parents", "solved_by", "statement", "tactics")

    def __init__(self, statement: Statement, index: int, depth: int) -> None:
        self.statement = statement
        self.index = index
        self.depth = depth
        self.parents: list[TacticT] = []
        self.tactics: list[TacticT] = []
        self.expanded = False
        self.failed = False
        self.solved_by: TacticT | None = None

    @property
    def solved(self) -> bool:
        return self.solved_by is not None

    def add_tactic(self, tactic: TacticT) -> None:
        """Link ``tactic`` (whose ``goal`` is this goal) below it and above its open subgoals."""
        self.tactics.append(tactic)
        for subgoal in tactic.open():
            subgoal.parents.append(tactic)


class Tactic(Generic[GoalT]):
    """An AND node: ``expansion`` applied to ``goal``; ``subgoals[i]`` is ``None`` for closed subgoals."""

    __slots__ = ("expansion", "failed", "goal", "logprob", "solved", "subgoals")

    def __init__(
        self, goal: GoalT, expansion: Expansion | None, logprob: float, subgoals: Sequence[GoalT | None]
    ) -> None:
        self.goal = goal
        self.expansion = expansion
        self.logprob = logprob
        self.subgoals = list(subgoals)
        self.solved = False
        self.failed = False

    def open(self) -> list[GoalT]:
        return [s for s in self.subgoals if s is not None]


def mark_solved(tactic: Tactic[Any]) -> None:
    """Solve ``tactic`` if all its open subgoals are solved, and propagate solutions upwards."""
    stack = [tactic]
    while stack:
        tactic = stack.pop()
        if tactic.solved or not all(s.solved for s in tactic.open()):
            continue
        tactic.solved = True
        goal = tactic.goal
        if goal.solved_by is None:
            goal.solved_by = tactic
            stack.extend(goal.parents)


def mark_failed(goal: GoalT) -> list[GoalT]:
    """Fail ``goal`` and propagate: a tactic fails with any subgoal, an expanded goal with all its tactics.
    Returns the goals that failed."""
    failed, stack = [], [goal]
    while stack:
        goal = stack.pop()
        if goal.failed or goal.solved:
            continue
        goal.failed = True
        failed.append(goal)
        for tactic in goal.parents:
            if tactic.failed:
                continue
            tactic.failed = True
            parent = tactic.goal
            if parent.expanded and not parent.solved and all(t.failed for t in parent.tactics):
                stack.append(parent)
    return failed


def ancestors(goal: Goal[Any]) -> set[int]:
    """Indices of every goal from which ``goal`` can be reached."""
    seen: set[int] = set()
    stack = [goal]
    while stack:
        for tactic in stack.pop().parents:
            parent = tactic.goal
            if parent.index not in seen:
                seen.add(parent.index)
                stack.append(parent)
    return seen


def subgoal_key(expansion: Expansion) -> tuple[Statement, ...]:
    """The open subgoals of ``expansion`` in a canonical order: two tactics with one key are duplicates."""
    return tuple(sorted(expansion.open_subgoals))


def rejection(
    goal: Goal[Any],
    expansion: Expansion,
    goals: Mapping[Statement, Goal[Any]],
    above: set[int],
    seen: set[tuple[Statement, ...]],
) -> str | None:
    """Why the tactic ``expansion`` of ``goal`` must not be linked (a ``pruned`` key), or ``None`` if it may.

    ``above``: the :func:`ancestors` of ``goal``; ``seen``: the :func:`subgoal_key` of the tactics already
    linked, to which an admitted tactic's key is added. Rejected: a repeat of an earlier tactic's subgoals
    (``duplicate tactic``), a subgoal that is ``goal`` or one of its ancestors (``cycle``), or a subgoal
    already known to fail (``failed subgoal``).
    """
    key = subgoal_key(expansion)
    if key in seen:
        return "duplicate tactic"
    existing = [goals.get(s) for s in key]
    if any(node is not None and (node is goal or node.index in above) for node in existing):
        return "cycle"
    if any(node is not None and node.failed for node in existing):
        return "failed subgoal"
    seen.add(key)
    return None


def proof_tree(env: BackwardEnv, goal: Goal[Any], built: dict[int, ProofTree]) -> ProofTree:
    """The proof tree of a solved goal (shared goals give shared subtrees); ``built`` caches by goal index."""
    tree = built.get(goal.index)
    if tree is None:
        tactic = goal.solved_by
        if tactic is None or tactic.expansion is None:
            raise ValueError(f"goal {' '.join(goal.statement)!r} is not solved")
        children = [None if s is None else proof_tree(env, s, built) for s in tactic.subgoals]
        tree = built[goal.index] = env.build_tree(tactic.expansion, children)
    return tree


def solved_subgoals(
    env: BackwardEnv, root: Goal[Any], goals: Mapping[Statement, Goal[Any]], limit: int
) -> list[tuple[Statement, ProofTree]]:
    """Up to ``limit`` goals other than ``root`` that are solved, are no hypothesis of the theorem and have
    proofs of at least 2 steps, with their proof trees: the largest proofs first (ties: created first)."""
    if limit <= 0:
        return []
    built: dict[int, ProofTree] = {}
    found = [
        (goal, proof_tree(env, goal, built))
        for goal in goals.values()
        if goal.solved and goal is not root and goal.statement not in env.hypotheses
    ]
    found = sorted((item for item in found if item[1].size >= 2), key=lambda item: (-item[1].size, item[0].index))
    return [(goal.statement, tree) for goal, tree in found[:limit]]


def pick_critic_targets(
    targets: Sequence[tuple[Statement, float, int]], root: Statement, limit: int
) -> list[tuple[Statement, float, int]]:
    """Up to ``limit`` of ``targets``: the root's first, then the most visited (ties: in order)."""
    order = sorted(range(len(targets)), key=lambda i: (targets[i][0] != root, -targets[i][2], i))
    return [targets[i] for i in order[:limit]]


def applied(
    env: BackwardEnv, goal: Goal[Any], proposals: Sequence[Proposal], invalid: Counter[str]
) -> Iterator[tuple[Expansion, float]]:
    """Each valid proposal applied to ``goal``, with its log-probability; refused ones are counted in
    ``invalid`` by kind. Stops once ``goal`` is solved (checked after the caller took each expansion)."""
    for proposal in proposals:
        result = env.apply(goal.statement, proposal.tactic)
        if isinstance(result, EnvError):
            invalid[result.kind.value] += 1
            continue
        yield result, proposal.logprob
        if goal.solved:
            return


class HypergraphSearch(Search, Generic[GoalT]):
    """A backward search of one theorem over a hypergraph of goals; subclasses create :attr:`root`."""

    kind = "backward"
    root: GoalT

    def __init__(
        self, env: BackwardEnv, settings: SearchSettings, max_solved_subgoals: int = 0, max_critic_examples: int = 0
    ) -> None:
        super().__init__(env.db, env.theorem, settings, grammar=env.grammar, kernel=env.kernel)
        for name, value in (("max_solved_subgoals", max_solved_subgoals), ("max_critic_examples", max_critic_examples)):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        self.env = env
        self.goals: dict[Statement, GoalT] = {}
        self.tactic_count = 0
        self.max_solved_subgoals = max_solved_subgoals
        self.max_critic_examples = max_critic_examples

    def result(self) -> SearchResult:
        """The search's result; a failed search adds up to ``max_solved_subgoals`` goals it solved; every
        search up to ``max_critic_examples`` critic targets (:meth:`critic_targets`)."""
        result = super().result()
        if not result.proved:
            result.solved_subgoals = solved_subgoals(self.env, self.root, self.goals, self.max_solved_subgoals)
        if self.max_critic_examples:
            result.critic_examples = pick_critic_targets(
                self.critic_targets(), self.root.statement, self.max_critic_examples
            )
        return result

    def critic_targets(self) -> list[tuple[Statement, float, int]]:
        """(goal, target, visits) for a goal critic, from the finished search: solved goals 1, failed goals 0
        (visits 1: best-first search visits a goal once, when it expands it), and the root of a search that
        ended unproved 0 with its expansions as visits (the critic estimates provability *within the budget*).
        HTPS overrides this with its soft targets (:func:`core.search.htps.critic_examples`)."""
        targets: list[tuple[Statement, float, int]] = []
        for goal in self.goals.values():
            if goal.solved or goal.failed:
                targets.append((goal.statement, 1.0 if goal.solved else 0.0, 1))
            elif goal is self.root and self.done and self.proof is None:
                targets.append((goal.statement, 0.0, self.expansions))
        return targets

    def node_count(self) -> int:
        return len(self.goals)

    def _root_is_hypothesis(self) -> bool:
        """Whether the root is one of the theorem's hypotheses, in which case it is solved at once."""
        hypothesis = self.env.hypotheses.get(self.root.statement)
        if hypothesis is not None:
            self._accept(hypothesis_leaf(hypothesis))
        return hypothesis is not None

    def _end_round(self) -> None:
        """Accept the proof once the root is solved; stop (``exhausted``) once it failed."""
        if self.root.solved:
            self._accept(proof_tree(self.env, self.root, {}))
        elif self.root.failed:
            self._stop("exhausted")
