"""HyperTree Proof Search (HTPS, Lample et al. 2022) over an AND/OR hypergraph of Metamath goals.

The graph is the one of :mod:`core.search.backward`, built with the same :mod:`core.search.hypergraph`:
*goal* nodes (OR: solved by any one of their tactics) and *tactic* nodes (AND: solved when all their open
subgoals are); subgoals equal to a hypothesis of the theorem are closed by the environment and never become
nodes; equal goals share one node; a tactic that would close a cycle, repeat an earlier tactic's subgoals or
lead to a failed goal is dropped (counted in ``pruned``), so the graph stays acyclic. What differs is the
order in which goals are expanded.

**Values.** Every goal has ``value``, an estimate of the probability that it is provable within the
budget: 1 when solved, 0 when failed, the critic's value when not yet expanded (:class:`ConstantCritic`
``critic_value`` without a trained critic), and otherwise the *max over its tactics* (OR) of the tactic
values, a tactic's value being the *product over its open subgoals* (AND) of their values.
:func:`refresh_values` recomputes these upwards when a leaf changes.

**One step** (one round of the runner) selects up to ``succ_expansions`` partial proof trees
(*hypertrees*) and expands their leaves together, in ONE policy call:

- *Selection* starts at the root; at an expanded goal it picks the unfailed tactic maximising PUCT
  ``Q(t) + exploration * P(t) * sqrt(sum_t' N(t')) / (1 + N(t))``, then descends into *every* unsolved
  open subgoal of that tactic (a hypertree, not a path); unexpanded goals reached are its leaves. ``P`` is
  the policy's probability of the tactic, renormalised over the goal's valid tactics; ``N`` counts visits
  plus virtual visits; ``Q = W / N`` (``W``: summed backed-up values; a virtual visit adds 0 to ``W``),
  and for a tactic never visited, its current value. Each selected tactic receives ``virtual_loss``
  virtual visits until the step is backed up, which steers the next selections of the same step elsewhere.
- *Expansion* asks the policy for ``num_tactics`` proposals per leaf (all leaves of the step in one
  call), applies them, links the new tactic nodes, and asks the critic for the values of all new goals
  at once. A leaf deeper than ``depth_limit`` (root = 0) is never expanded: it fails when selected.
- *Back-propagation*: solved/failed states propagate upwards (as in the best-first search), values are
  refreshed, then every tactic a selection went through has its virtual visits removed, one real visit
  added and its current value added to ``W``.

The search stops when the root is solved (its proof tree is checked by the kernel before it counts), when
the root fails (``exhausted``), after ``num_expansions`` expansions (leaves expanded), after ``timeout_s``
charged seconds, or when the graph holds ``size_limit`` goals (``size_limit``).

:func:`critic_examples` turns a finished search into training targets for the critic: solved goals 1,
failed goals 0, and other goals visited at least ``count_threshold`` times the soft target ``sum W / sum N``
of their tactics (Evariste's soft critic targets).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, Protocol

from core.errors import ConfigError
from core.metamath.database import Statement
from core.metamath.environment import BackwardEnv, Expansion
from core.search.hypergraph import (
    Goal,
    HypergraphSearch,
    Tactic,
    ancestors,
    applied,
    mark_failed,
    mark_solved,
    rejection,
)
from core.search.policy import BackwardQuery, Proposal
from core.search.runner import Query, SearchSettings
from core.search.settings import HtpsParameters

# --- Settings -------------------------------------------------------------------------------------


_CONFIGURED = HtpsParameters()  # the configuration's defaults, also these settings' defaults


@dataclass(frozen=True)
class HtpsSettings:
    """HTPS parameters, with Evariste's names where it has one: what one search runs with.

    - ``exploration``: the PUCT exploration constant;
    - ``num_expansions``: goal expansions (policy queries) per theorem;
    - ``succ_expansions``: leaves selected and expanded per step (one batched policy call);
    - ``virtual_loss``: virtual visits a pending selection adds to each tactic it went through;
    - ``num_tactics``: proposals asked of the policy per expansion (the tactic count);
    - ``depth_limit``: goals this deep (the root is 0) are never expanded;
    - ``size_limit``: the search stops when the graph holds this many goals;
    - ``critic_value``: the value of an unexpanded goal when no critic is given (Evariste's ``no_critic``);
    - ``count_threshold``: fewest visits of an unsolved, unfailed goal for :func:`critic_examples`;
    - ``timeout_s``: charged seconds per theorem (see :mod:`core.search.runner`).

    The experiment configuration holds them as the search settings' ``htps`` group
    (:class:`core.search.settings.HtpsParameters`) and its budgets; :meth:`from_search` combines the two.
    """

    exploration: float = _CONFIGURED.exploration
    num_expansions: int = 64
    succ_expansions: int = _CONFIGURED.succ_expansions
    virtual_loss: int = _CONFIGURED.virtual_loss
    num_tactics: int = 8
    depth_limit: int = 24
    size_limit: int = _CONFIGURED.size_limit
    critic_value: float = _CONFIGURED.critic_value
    count_threshold: int = _CONFIGURED.count_threshold
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("num_expansions", "succ_expansions", "num_tactics", "depth_limit", "size_limit"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("virtual_loss", "count_threshold"):
            _check_int(name, getattr(self, name), minimum=0)
        _check_number("exploration", self.exploration, low=0.0)
        _check_number("critic_value", self.critic_value, low=0.0, high=1.0)
        _check_number("timeout_s", self.timeout_s, low=0.0)
        if self.timeout_s <= 0:
            raise ConfigError(f"htps timeout_s must be > 0, got {self.timeout_s!r}", field="timeout_s")

    @classmethod
    def from_search(cls, settings: SearchSettings, **overrides: Any) -> HtpsSettings:
        """The HTPS settings of search settings: their ``htps`` group (the configured parameters), with
        ``expansions`` -> ``num_expansions``, ``timeout_s``, and ``candidates`` -> ``num_tactics`` and
        ``max_depth`` -> ``depth_limit`` unless the group sets them; ``overrides`` replace any of these."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown htps setting(s) {', '.join(unknown)}")
        group = settings.htps
        base = {
            "exploration": group.exploration,
            "succ_expansions": group.succ_expansions,
            "virtual_loss": group.virtual_loss,
            "size_limit": group.size_limit,
            "critic_value": group.critic_value,
            "count_threshold": group.count_threshold,
            "num_expansions": settings.expansions,
            "num_tactics": settings.candidates if group.num_tactics is None else group.num_tactics,
            "depth_limit": settings.max_depth if group.depth_limit is None else group.depth_limit,
            "timeout_s": settings.timeout_s,
        }
        return cls(**{**base, **overrides})

    def search_settings(self) -> SearchSettings:
        """The runner's view of these settings (budget, proposals per query)."""
        return SearchSettings(
            prover="htps",
            expansions=self.num_expansions,
            timeout_s=self.timeout_s,
            candidates=self.num_tactics,
            max_depth=self.depth_limit,
            htps=self.parameters(),
        )

    def parameters(self) -> HtpsParameters:
        """These settings as the search settings' ``htps`` group (the budgets are the search's own)."""
        return HtpsParameters(
            exploration=self.exploration,
            succ_expansions=self.succ_expansions,
            virtual_loss=self.virtual_loss,
            num_tactics=self.num_tactics,
            depth_limit=self.depth_limit,
            size_limit=self.size_limit,
            critic_value=self.critic_value,
            count_threshold=self.count_threshold,
        )


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"htps {name} must be an integer >= {minimum}, got {value!r}", field=name)


def _check_number(name: str, value: object, *, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"htps {name} must be a finite number, got {value!r}", field=name)
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"htps {name} must be {bounds}, got {value!r}", field=name)


# --- The critic -----------------------------------------------------------------------------------


class Critic(Protocol):
    """Estimates, for a batch of goals, the probability that each is provable within the budget."""

    def values(self, goals: Sequence[Statement]) -> list[float]:
        """One value in [0, 1] per goal."""
        ...


class ConstantCritic:
    """The critic of a search without a trained one: every goal is worth ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def values(self, goals: Sequence[Statement]) -> list[float]:
        return [self.value] * len(goals)


class CriticExample(NamedTuple):
    """A critic training target: ``goal`` is provable with probability ``target``; ``visits`` it had."""

    goal: Statement
    target: float
    visits: int


# --- The hypergraph -------------------------------------------------------------------------------


class HGoal(Goal["HTactic"]):
    """An OR node: a statement to prove, with its value estimate (see the module docstring)."""

    __slots__ = ("prior", "value")

    def __init__(self, statement: Statement, index: int, depth: int, prior: float) -> None:
        super().__init__(statement, index, depth)
        self.prior = prior  # the critic's value (used while unexpanded)
        self.value = prior

    @property
    def visits(self) -> int:
        return sum(t.visits for t in self.tactics)


class HTactic(Tactic[HGoal]):
    """An AND node: a tactic applied to ``goal``; ``subgoals[i]`` is ``None`` for closed subgoals."""

    __slots__ = ("prior", "total", "virtual", "visits")

    def __init__(
        self, goal: HGoal, expansion: Expansion | None, logprob: float, subgoals: Sequence[HGoal | None]
    ) -> None:
        super().__init__(goal, expansion, logprob, subgoals)
        self.prior = 1.0  # the policy's probability, renormalised over the goal's tactics
        self.visits = 0
        self.virtual = 0
        self.total = 0.0  # W: summed backed-up values


def tactic_value(tactic: HTactic) -> float:
    """AND: 1 if solved, 0 if failed, else the product of its open subgoals' values."""
    if tactic.solved:
        return 1.0
    if tactic.failed:
        return 0.0
    return math.prod(s.value for s in tactic.open())


def goal_value(goal: HGoal) -> float:
    """OR: 1 if solved, 0 if failed, the critic's prior if unexpanded, else the best tactic's value."""
    if goal.solved:
        return 1.0
    if goal.failed:
        return 0.0
    if not goal.expanded:
        return goal.prior
    return max((tactic_value(t) for t in goal.tactics), default=0.0)


def refresh_values(changed: Iterable[HGoal]) -> None:
    """Recompute the values of ``changed`` goals and, where a value moved, of their ancestors."""
    stack = list(changed)
    forced = {id(g) for g in stack}
    while stack:
        goal = stack.pop()
        value = goal_value(goal)
        if value == goal.value and id(goal) not in forced:
            continue
        forced.discard(id(goal))
        goal.value = value
        stack.extend(t.goal for t in goal.parents)


def set_priors(goal: HGoal) -> None:
    """The policy's probabilities of ``goal``'s tactics, renormalised over them (softmax of log-probs)."""
    if not goal.tactics:
        return
    top = max(t.logprob for t in goal.tactics)
    weights = [math.exp(t.logprob - top) for t in goal.tactics]
    total = sum(weights)
    for tactic, weight in zip(goal.tactics, weights):
        tactic.prior = weight / total


def puct_choice(goal: HGoal, exploration: float) -> HTactic | None:
    """The unfailed tactic of ``goal`` with the highest PUCT score (ties: the first); ``None`` if none."""
    alive = [t for t in goal.tactics if not t.failed]
    if not alive:
        return None
    parent_visits = sum(t.visits + t.virtual for t in alive)
    scale = exploration * math.sqrt(max(parent_visits, 1))
    best, best_score = None, -math.inf
    for tactic in alive:
        count = tactic.visits + tactic.virtual
        q = tactic.total / count if count else tactic_value(tactic)
        score = q + scale * tactic.prior / (1 + count)
        if score > best_score:
            best, best_score = tactic, score
    return best


class Selection(NamedTuple):
    """One selected hypertree: the (goal, tactic) edges it went through and its unexpanded leaves."""

    edges: list[tuple[HGoal, HTactic]]
    leaves: list[HGoal]


# --- The search -----------------------------------------------------------------------------------


class HtpsSearch(HypergraphSearch[HGoal]):
    """HyperTree Proof Search of one theorem in a :class:`BackwardEnv` (see the module docstring)."""

    prover = "htps"

    def __init__(
        self,
        env: BackwardEnv,
        settings: HtpsSettings,
        critic: Critic | None = None,
        max_solved_subgoals: int = 0,
        max_critic_examples: int = 0,
    ) -> None:
        super().__init__(env, settings.search_settings(), max_solved_subgoals, max_critic_examples)
        self.htps = settings
        self.critic: Critic = critic if critic is not None else ConstantCritic(settings.critic_value)
        self.root = self._new_goals([(env.theorem.statement, 0)])[0]
        self._evaluate([self.root])
        self._selections: list[Selection] = []
        self._leaves: list[HGoal] = []

    # --- the protocol ----------------------------------------------------------------------------

    def _queries(self) -> list[Query]:
        if self._root_is_hypothesis():
            return []
        if len(self.goals) >= self.htps.size_limit:
            self._stop("size_limit")
            return []
        wanted = min(self.htps.succ_expansions, self.settings.expansions - self.expansions)
        self._select_leaves(wanted)
        if self.root.failed:
            self._stop("exhausted")
        return [BackwardQuery(self.env, leaf.statement) for leaf in self._leaves]

    def _absorb(self, proposals: Sequence[Sequence[Proposal]]) -> None:
        leaves, self._leaves = self._leaves, []
        expanded = list(zip(leaves, proposals))  # leaves beyond the answers stay unexpanded
        created: list[HGoal] = []
        for leaf, answer in expanded:
            created.extend(self._expand(leaf, answer))
        self._evaluate(created)
        for leaf, _ in expanded:
            set_priors(leaf)
            if not leaf.solved and all(t.failed for t in leaf.tactics):
                mark_failed(leaf)
        refresh_values([leaf for leaf, _ in expanded])
        self._back_up()
        self._end_round()

    def critic_targets(self) -> list[tuple[Statement, float, int]]:
        """The soft critic targets of :func:`critic_examples` (reported when ``max_critic_examples`` > 0)."""
        return [tuple(example) for example in critic_examples(self)]  # type: ignore[misc]  # a CriticExample is one

    # --- selection -------------------------------------------------------------------------------

    def _select_leaves(self, wanted: int) -> None:
        """Select hypertrees until ``wanted`` distinct leaves are pending (or selection stops helping)."""
        pending: dict[int, HGoal] = {}
        idle = 0
        while len(pending) < wanted and idle < wanted and not self.root.solved and not self.root.failed:
            selection = self._select()
            if selection is None:
                continue  # a too-deep leaf failed; select again in the changed graph
            self._selections.append(selection)
            fresh = [leaf for leaf in selection.leaves if leaf.index not in pending]
            idle = 0 if fresh else idle + 1
            for leaf in fresh[: wanted - len(pending)]:
                pending[leaf.index] = leaf
        self._leaves = list(pending.values())

    def _select(self) -> Selection | None:
        """One hypertree from the root, virtual loss applied; ``None`` if it reached a too-deep leaf (which
        is failed, and the virtual loss undone)."""
        edges: list[tuple[HGoal, HTactic]] = []
        leaves: list[HGoal] = []
        stack, seen = [self.root], set()
        while stack:
            goal = stack.pop()
            if goal.index in seen or goal.solved:
                continue
            seen.add(goal.index)
            if not goal.expanded:
                leaves.append(goal)
                continue
            tactic = puct_choice(goal, self.htps.exploration)
            if tactic is None:  # cannot happen while failures propagate; kept safe
                refresh_values(mark_failed(goal))
                continue
            tactic.virtual += self.htps.virtual_loss
            edges.append((goal, tactic))
            stack.extend(reversed([s for s in tactic.open() if not s.solved]))
        too_deep = [leaf for leaf in leaves if leaf.depth >= self.htps.depth_limit]
        if too_deep:
            for _, tactic in edges:
                tactic.virtual -= self.htps.virtual_loss
            for leaf in too_deep:
                self.pruned["depth limit"] += 1
                refresh_values(mark_failed(leaf))
            return None
        return Selection(edges, leaves)

    def _back_up(self) -> None:
        """Every selection of the step: virtual visits removed, one visit and the tactic's value added."""
        for selection in self._selections:
            for _, tactic in selection.edges:
                tactic.virtual -= self.htps.virtual_loss
                tactic.visits += 1
                tactic.total += tactic_value(tactic)
        self._selections = []

    # --- expansion -------------------------------------------------------------------------------

    def _expand(self, leaf: HGoal, proposals: Sequence[Proposal]) -> list[HGoal]:
        """Apply the proposals to ``leaf`` and link the valid tactics; returns the goals created."""
        leaf.expanded = True
        created: list[HGoal] = []
        if leaf.solved or leaf.failed:
            return created
        above = ancestors(leaf)
        seen: set[tuple[Statement, ...]] = set()
        for expansion, logprob in applied(self.env, leaf, proposals, self.invalid):
            created.extend(self._link(leaf, expansion, logprob, above, seen))
        return created

    def _link(
        self, goal: HGoal, expansion: Expansion, logprob: float, above: set[int], seen: set[tuple[Statement, ...]]
    ) -> list[HGoal]:
        reason = rejection(goal, expansion, self.goals, above, seen)
        if reason is not None:
            self.pruned[reason] += 1
            return []
        missing = [
            (s.statement, goal.depth + 1)
            for s in expansion.subgoals
            if s.closed_by is None and s.statement not in self.goals
        ]
        created = self._new_goals(list(dict.fromkeys(missing)))
        subgoals: list[HGoal | None] = []
        for subgoal in expansion.subgoals:
            node = None if subgoal.closed_by is not None else self.goals[subgoal.statement]
            if node is not None:
                node.depth = min(node.depth, goal.depth + 1)
            subgoals.append(node)
        tactic = HTactic(goal, expansion, logprob, subgoals)
        self.tactic_count += 1
        goal.add_tactic(tactic)
        mark_solved(tactic)
        return created

    def _new_goals(self, entries: Sequence[tuple[Statement, int]]) -> list[HGoal]:
        goals = []
        for statement, depth in entries:
            goal = HGoal(statement, len(self.goals), depth, self.htps.critic_value)
            self.goals[statement] = goal
            goals.append(goal)
        return goals

    def _evaluate(self, goals: Sequence[HGoal]) -> None:
        """The critic's values of new goals, in one call."""
        fresh = [g for g in goals if not g.expanded]
        if not fresh:
            return
        for goal, value in zip(fresh, self.critic.values([g.statement for g in fresh])):
            goal.prior = goal.value = min(1.0, max(0.0, float(value)))


# --- Critic training targets ----------------------------------------------------------------------


def critic_examples(search: HtpsSearch, count_threshold: int | None = None) -> list[CriticExample]:
    """Critic targets from a finished search: solved goals 1, failed goals 0, other goals with at least
    ``count_threshold`` visits (default: the search's) the soft target ``sum W / sum N`` of their tactics.
    Goals neither decided nor visited enough say nothing and are left out."""
    threshold = search.htps.count_threshold if count_threshold is None else count_threshold
    examples = []
    for goal in search.goals.values():
        visits = goal.visits
        if goal.solved:
            examples.append(CriticExample(goal.statement, 1.0, visits))
        elif goal.failed:
            examples.append(CriticExample(goal.statement, 0.0, visits))
        elif goal.expanded and visits >= max(threshold, 1):
            soft = sum(t.total for t in goal.tactics) / visits
            examples.append(CriticExample(goal.statement, min(1.0, max(0.0, soft)), visits))
    return examples
