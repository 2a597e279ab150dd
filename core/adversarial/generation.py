"""Generating theorems: forward rollouts of a generator policy, node selection, filters, checked records.

A rollout starts a forward graph from the hypotheses of a random *train* theorem (or from nothing) and
asks the policy, step after step, for a tactic with a full substitution, or ``STOP`` (masked until the
rollout has made ``min_steps`` steps; a STOP before anything was made is never taken). Many rollouts run
in lockstep so that their policy calls are batched. When a rollout ends, one of its new nodes becomes
the generated theorem: the last node (Evariste's choice, the rollout ending with STOP), or the best by a
heuristic or a weighted combination of heuristics (:mod:`core.adversarial.rewards`). Its hypotheses
are those its proof uses, its ``$d`` conditions those its proof needs. Filters drop (and count) nodes that restate a
hypothesis or a database statement, that were generated recently, or that are too long for the prover.
Every theorem is checked by the kernel before it becomes a record (built by
:meth:`core.adversarial.records.GenerationRecord.of_generated`).

With ``compose`` (our addition; Evariste has none), every step after a rollout's first must use a node the
rollout made as a hypothesis: the policy is asked only for assertions with essential hypotheses
(``ForwardQuery.inference_only``), a valid step that builds on nothing new is taken back and completed so
that it does, largest proofs first. Steps then chain into deeper proofs instead of adding independent
one-step lemma instances, which is what an undertrained generator does otherwise.

A proposal whose substitution is incomplete (or whose hypotheses are not nodes as given) is completed
by unifying the assertion's hypotheses with graph nodes (:func:`complete_tactic`): the model chooses
the assertion, the graph supplies what it determines. The completed tactic is what the rollout records,
so the generator learns to write complete substitutions.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from core.adversarial.rewards import NodeFeatures, combined_score, parse_heuristic
from core.adversarial.settings import GenerationSettings
from core.adversarial.workspace import Workspace
from core.errors import MetamathError
from core.metamath.database import Assertion, Statement
from core.metamath.environment import EnvError, EnvErrorKind, ForwardEnv, Node, Tactic
from core.metamath.prooftree import ProofTree, check_tree, make_theorem, tree_from_proof
from core.search.policy import ForwardQuery, Policy, Proposal

logger = logging.getLogger(__name__)

GENERATED_PREFIX = "advgen"


@dataclass
class Step:
    """One applied action of a rollout: the tactic, what it added (None for STOP), its log-probability."""

    tactic: Tactic
    added: Statement | None
    logprob: float


@dataclass
class Rollout:
    env: ForwardEnv
    source_label: str | None  # the train theorem whose hypotheses started the graph
    steps: list[Step] = field(default_factory=list)
    done: bool = False
    end: str = ""  # why it ended: stop, max_steps, no_valid_proposal
    first_made: int = 0  # index of the first node the rollout made (the nodes before are its hypotheses)

    def __post_init__(self) -> None:
        self.first_made = len(self.env.nodes)

    @property
    def hypotheses(self) -> list[Statement]:
        return [h.statement for h in self.env.theorem.essential]

    def new_nodes(self) -> list[Node]:
        own = {h.statement for h in self.env.theorem.essential}
        return [n for n in self.env.nodes if n.statement not in own]


@dataclass
class Generated:
    """A selected, checked theorem with its proof and the rollout that produced it."""

    theorem: Assertion
    proof: ProofTree
    rollout: Rollout
    heuristic: float
    duplicate: bool


class TheoremGenerator:
    """Runs rollouts of ``policy`` on a workspace and turns them into checked theorems.

    Beyond its ``settings``: a theorem longer than ``max_statement_tokens`` (its statement and hypotheses)
    is dropped; a duplicate is kept, flagged, when ``keep_duplicates`` (else dropped).
    """

    def __init__(
        self,
        workspace: Workspace,
        policy: Policy,
        settings: GenerationSettings,
        seed: int = 0,
        *,
        max_statement_tokens: int = 256,
        keep_duplicates: bool = False,
    ) -> None:
        self.ws = workspace
        self.policy = policy
        self.settings = settings
        self.max_statement_tokens = max_statement_tokens
        self.keep_duplicates = keep_duplicates
        self.rng = random.Random(seed)
        self.counters: Counter[str] = Counter()
        self._recent: deque[tuple] = deque()
        self._recent_set: set[tuple] = set()
        self._goal_pool = [t for t in workspace.train_theorems() if t.essential] or workspace.train_theorems()

    # --- rollouts ---------------------------------------------------------------------------------

    def new_rollout(self) -> Rollout:
        source = None
        hypotheses: list[Statement] = []
        statement: Statement = ()
        if self.settings.goal_source == "train-hypotheses" and self._goal_pool:
            source = self.rng.choice(self._goal_pool)
            hypotheses = [h.statement for h in source.essential]
            statement = source.statement
        if not statement:
            statement = self._any_statement()
        labels = [f"{GENERATED_PREFIX}.h{i + 1}" for i in range(len(hypotheses))]
        theorem = make_theorem(self.ws.db, f"{GENERATED_PREFIX}.goal", statement, hypotheses, hypothesis_labels=labels)
        env = ForwardEnv(
            self.ws.db,
            theorem,
            grammar=self.ws.grammar,
            kernel=self.ws.kernel,
            forbidden=self.ws.generator_forbidden,
            collect_disjoint=True,
        )
        return Rollout(env, source.label if source else None)

    def _any_statement(self) -> Statement:
        """A placeholder statement (the generator's context needs one; it is never a target)."""
        for theorem in self.ws.train_theorems():
            if not theorem.essential:
                return theorem.statement
        return self.ws.db.assertions[-1].statement

    def run(self, count: int) -> list[Rollout]:
        """``count`` rollouts in lockstep, their policy calls batched; all finished on return."""
        rollouts = [self.new_rollout() for _ in range(count)]
        for _ in range(self.settings.max_steps):
            active = [r for r in rollouts if not r.done]
            if not active:
                break
            queries = [
                ForwardQuery(r.env, None, may_stop=self.may_stop(r), inference_only=bool(self.must_use(r)))
                for r in active
            ]
            answers = self.policy.propose_forward(queries, self.settings.attempts_per_step, self.settings.temperature)
            for rollout, proposals in zip(active, answers):
                self._advance(rollout, proposals)
        for rollout in rollouts:
            if not rollout.done:
                rollout.done, rollout.end = True, "max_steps"
            self.counters[f"rollout_end_{rollout.end}"] += 1
        return rollouts

    def may_stop(self, rollout: Rollout) -> bool:
        """Whether ``rollout`` may end now: it made something, and at least ``min_steps`` steps."""
        return bool(rollout.steps) and len(rollout.steps) >= self.settings.min_steps

    def _advance(self, rollout: Rollout, proposals: Sequence[Proposal]) -> None:
        for proposal in proposals:
            if proposal.is_stop:
                if not self.may_stop(rollout):  # too early (a policy that ignores the mask): not taken
                    self.counters["early_stop_skipped"] += 1
                    continue
                rollout.steps.append(Step(proposal.tactic, None, proposal.logprob))
                rollout.done, rollout.end = True, "stop"
                return
            tactic = proposal.tactic
            must_use = self.must_use(rollout)
            outcome = rollout.env.apply(tactic)
            if isinstance(outcome, Node) and must_use and not must_use.intersection(outcome.children):
                rollout.env.retract(outcome)  # valid, but it does not build on the rollout: complete it so it does
                outcome = EnvError(EnvErrorKind.MISSING_HYPOTHESIS, "the step uses no node the rollout made")
                self.counters["not_composed"] += 1
            if isinstance(outcome, EnvError) and outcome.kind not in _NOT_COMPLETABLE:
                completed = complete_tactic(rollout.env, tactic, self.rng, must_use=must_use)
                if completed is not None:
                    self.counters["completed_substitution"] += 1
                    tactic, outcome = completed
            if isinstance(outcome, EnvError):
                self.counters[f"invalid_{outcome.kind.name.lower()}"] += 1
                continue
            rollout.steps.append(Step(tactic, outcome.statement, proposal.logprob))
            return
        rollout.done, rollout.end = True, "no_valid_proposal"

    def must_use(self, rollout: Rollout) -> frozenset[int]:
        """The nodes one of which the next step must use as a hypothesis (none unless ``compose``)."""
        if not self.settings.compose or not rollout.steps:
            return frozenset()
        return frozenset(range(rollout.first_made, len(rollout.env.nodes)))

    # --- selection --------------------------------------------------------------------------------

    @cached_property
    def _heuristic(self) -> dict[str, float]:
        return parse_heuristic(self.settings.heuristic)

    @cached_property
    def _token_frequency(self) -> dict[str, float]:
        return token_frequencies(self.ws)

    def features(self, node: Node) -> NodeFeatures:
        """What the heuristics see of ``node`` (token frequencies over its statement, typecode excluded)."""
        frequencies = [self._token_frequency.get(token, 0.0) for token in node.statement[1:]] or [0.0]
        return NodeFeatures(
            node.tree.size, node.tree.depth, len(node.statement), sum(frequencies) / len(frequencies), max(frequencies)
        )

    def score(self, node: Node) -> float:
        """The node's heuristic score (``settings.heuristic``: one heuristic or a weighted combination)."""
        return combined_score(self._heuristic, self.features(node))

    def select(self, rollout: Rollout) -> Generated | None:
        """The rollout's theorem (checked by the kernel), or None (the reason is counted)."""
        nodes = rollout.new_nodes()
        if not nodes:
            self.counters["filtered_no_new_node"] += 1
            return None
        if self.settings.selection == "last":
            candidates = [nodes[-1]]
        else:
            candidates = sorted(nodes, key=lambda n: (-self.score(n), n.index))
        reason = ""
        for node in candidates:
            reason, duplicate = self._filter(rollout, node)
            if not reason:
                return self._checked(rollout, node, duplicate)
        self.counters[f"filtered_{reason}"] += 1
        return None

    def _filter(self, rollout: Rollout, node: Node) -> tuple[str, bool]:
        """Why ``node`` cannot be sent ('' if it can), and whether it is a recent duplicate."""
        hypotheses = [h.statement for h in rollout.env.used_hypotheses(node)]
        if node.statement in hypotheses:
            return "equals_hypothesis", False
        if self.ws.is_known_statement(node.statement):
            return "in_database", False
        if len(node.statement) + sum(len(h) for h in hypotheses) > self.max_statement_tokens:
            return "too_long", False
        key = (node.statement, tuple(sorted(hypotheses)))
        duplicate = key in self._recent_set
        if duplicate and not self.keep_duplicates:
            return "duplicate", True
        return "", duplicate

    def _remember(self, key: tuple) -> None:
        if self.settings.dedup_window <= 0 or key in self._recent_set:
            return
        self._recent.append(key)
        self._recent_set.add(key)
        while len(self._recent) > self.settings.dedup_window:
            self._recent_set.discard(self._recent.popleft())

    def _checked(self, rollout: Rollout, node: Node, duplicate: bool) -> Generated | None:
        used = rollout.env.used_hypotheses(node)
        label = f"{GENERATED_PREFIX}.{uuid.uuid4().hex[:12]}"
        theorem = make_theorem(
            self.ws.db,
            label,
            node.statement,
            [h.statement for h in used],
            sorted(node.disjoint),
            hypothesis_labels=[h.label for h in used],
        )
        try:
            check_tree(self.ws.db, self.ws.grammar, theorem, node.tree, self.ws.kernel)
        except MetamathError as error:
            self.counters["kernel_rejected"] += 1
            logger.error("BUG: a generated theorem failed the kernel check and was dropped: %s", error)
            return None
        self._remember((node.statement, tuple(sorted(h.statement for h in used))))
        self.counters["generated"] += 1
        return Generated(theorem, node.tree, rollout, self.score(node), duplicate)

    # --- dataset theorems (the mix) -----------------------------------------------------------------

    def dataset_theorem(self) -> tuple[Assertion, ProofTree]:
        """A random train theorem and its database proof tree."""
        theorem = self.rng.choice(self.ws.train_theorems())
        return theorem, tree_from_proof(self.ws.db, theorem, self.ws.kernel)


def token_frequencies(workspace: Workspace) -> dict[str, float]:
    """Each token's share of all the tokens of the database's statements (typecodes excluded)."""
    counts: Counter[str] = Counter()
    for assertion in workspace.db.assertions:
        counts.update(assertion.statement[1:])
    total = sum(counts.values()) or 1
    return {token: count / total for token, count in counts.items()}


# --- substitution completion ---------------------------------------------------------------------

_NOT_COMPLETABLE = (EnvErrorKind.UNKNOWN_LABEL, EnvErrorKind.FORBIDDEN_LABEL)
_Match = tuple[Node, dict[str, tuple[str, ...]]]  # a graph node and how a hypothesis unifies with it
MAX_COMPLETIONS = 64  # completions applied (each a full check by the environment)
MAX_EXAMINED = 4096  # combinations of hypothesis matches looked at


def complete_tactic(
    env: ForwardEnv, tactic: Tactic, rng: random.Random, *, must_use: frozenset[int] = frozenset()
) -> tuple[Tactic, Node] | None:
    """Complete a proposed tactic's substitution by unifying its hypotheses with graph nodes.

    The model names an assertion and some of its variables; the variables its essential hypotheses
    fix are taken from nodes they unify with (consistently with what the model gave, or, when that
    gives nothing, ignoring the model's values altogether); variables no hypothesis fixes and
    the model did not give are drawn from the graph's subexpressions of their type (or the context's
    variables). The first completion (in a random order, at most ``MAX_COMPLETIONS`` tried) that adds a
    new node is applied. Returns the tactic and the new node.

    ``must_use`` (node indexes, for :attr:`GenerationSettings.compose`): when given, only completions
    that use one of these nodes as a hypothesis count, and the largest proofs are tried first.
    """
    assertion = env.check_label(tactic.label)
    if isinstance(assertion, EnvError):
        return None
    given = {v: tuple(e) for v, e in tactic.substitution.items()}
    completed = _complete(env, assertion, tactic.label, given, rng, must_use)
    if completed is None and given:  # the model's values do not fit: keep only its choice of assertion
        completed = _complete(env, assertion, tactic.label, {}, rng, must_use)
    return completed


def _complete(
    env: ForwardEnv,
    assertion: Assertion,
    label: str,
    given: dict[str, tuple[str, ...]],
    rng: random.Random,
    must_use: frozenset[int],
) -> tuple[Tactic, Node] | None:
    if must_use and not assertion.essential:
        return None
    choices: list[list[_Match]] = []
    for hypothesis in assertion.essential:
        matches = [
            (node, m)
            for node in env.nodes
            if (m := env.unify(assertion, hypothesis.statement, node.statement)) is not None
            and all(given.get(v, e) == e for v, e in m.items())
        ]
        if not matches:
            return None
        rng.shuffle(matches)
        if must_use:  # build on the largest proofs first
            matches.sort(key=lambda match: -match[0].tree.size)
        choices.append(matches)
    pool: dict[str, list[tuple[str, ...]]] | None = None
    tried = 0
    for examined, combination in enumerate(_building_on(choices, must_use) if must_use else _combinations(choices)):
        if examined >= MAX_EXAMINED:  # the product of the matches can be huge: give up, another proposal may do
            break
        merged = dict(given)
        if any(merged.setdefault(v, e) != e for _, part in combination for v, e in part.items()):
            continue
        free = [h for h in assertion.floating if h.variable not in merged]
        if free:  # variables no hypothesis fixes: subexpressions of the graph (or variables) of their type
            pool = pool if pool is not None else subexpressions(env)
            if any(not pool.get(h.typecode) for h in free):
                return None
            merged.update((h.variable, rng.choice(pool[h.typecode])) for h in free)
        tried += 1
        candidate = Tactic(label, merged)
        outcome = env.apply(candidate)
        if not isinstance(outcome, EnvError):
            return candidate, outcome
        if tried >= MAX_COMPLETIONS:
            break
    return None


def subexpressions(env: ForwardEnv) -> dict[str, list[tuple[str, ...]]]:
    """Typecode -> the distinct subexpressions of the graph's statements, and the context's variables."""
    pool: dict[str, dict[tuple[str, ...], None]] = {}
    for hypothesis in env.floating.values():
        pool.setdefault(hypothesis.typecode, {})[(hypothesis.variable,)] = None
    rules = env.grammar.rules
    for node in env.nodes:
        tree = env.tree(node.statement)
        stack = list(tree.children) if tree is not None else []
        while stack:
            subtree = stack.pop()
            stack.extend(subtree.children)
            rule = rules.get(subtree.label)
            if rule is not None:
                pool.setdefault(rule.typecode, {})[env.grammar.expression(subtree)] = None
    return {typecode: list(expressions) for typecode, expressions in pool.items()}


def _building_on(choices: list[list[_Match]], must_use: frozenset[int]) -> Iterator[tuple[_Match, ...]]:
    """The combinations of ``choices`` that use a node of ``must_use``: each such match of each hypothesis in
    turn, the other hypotheses free (a combination with several may come more than once)."""
    for position, matches in enumerate(choices):
        for anchor in (match for match in matches if match[0].index in must_use):
            yield from _combinations([[anchor] if i == position else c for i, c in enumerate(choices)])


def _combinations(choices: list[list[_Match]]) -> Iterator[tuple[_Match, ...]]:
    if not choices:
        yield ()
        return
    for first in choices[0]:
        for rest in _combinations(choices[1:]):
            yield (first, *rest)
