"""Proof environments: the moves a prover or a generator makes, checked, with typed errors.

A *tactic* is an assertion label plus a substitution for some of its variables. Both environments work
in the context of one theorem (an :class:`~core.metamath.database.Assertion` from the database, or one
built by :func:`~core.metamath.prooftree.make_theorem`): its hypotheses, the variables it may use, its
disjoint-variable conditions, and the assertions that precede it (minus any forbidden label).

- :class:`BackwardEnv`: a goal and a tactic give subgoals. Unification of the assertion's conclusion
  with the goal (on syntax trees) fixes some variables; the tactic supplies the others. A subgoal equal
  to a hypothesis of the theorem is closed.
- :class:`ForwardEnv`: a graph of proven statements, starting from the theorem's hypotheses; a tactic
  with a full substitution whose hypotheses are all nodes adds its conclusion as a new node.

Bad moves are not exceptions: :meth:`apply` returns an :class:`EnvError` with an :class:`EnvErrorKind`.
Both environments record enough to rebuild the :class:`~core.metamath.prooftree.ProofTree` of any node
or solved goal.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import GrammarError
from core.metamath.database import Assertion, Database, DisjointPair, Hypothesis, Statement, disjoint_pair
from core.metamath.index import match_tree
from core.metamath.proof import ProofStep
from core.metamath.prooftree import ProofTree, hypothesis_leaf
from core.metamath.syntax import CONTEXT_TREES_LIMIT, Grammar, floating_context
from core.metamath.verifier import Kernel, show, substitute

Expression = tuple[str, ...]  # symbols without the typecode


class EnvErrorKind(enum.Enum):
    UNKNOWN_LABEL = "unknown label"
    FORBIDDEN_LABEL = "forbidden label"
    NO_UNIFICATION = "no unification"
    MISSING_SUBSTITUTION = "missing substitution"
    INVALID_SUBSTITUTION = "invalid substitution"
    ILL_FORMED_SUBSTITUTION = "ill-formed substitution"
    DISJOINT_VIOLATION = "disjoint-variable violation"
    MISSING_HYPOTHESIS = "missing hypothesis"
    DUPLICATE_NODE = "duplicate node"


@dataclass(frozen=True, slots=True)
class EnvError:
    """Why a tactic cannot be applied."""

    kind: EnvErrorKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class Tactic:
    """An assertion label and a substitution (variable -> symbols) for some or all of its variables."""

    label: str
    substitution: Mapping[str, Expression] = field(default_factory=dict)


def tactic_key(tactic: Tactic) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    """What makes two tactics the same: the label and the substitution (as sorted pairs)."""
    return tactic.label, tuple(sorted((v, tuple(e)) for v, e in tactic.substitution.items()))


class Context:
    """What a proof of ``theorem`` may use: citable assertions, variables, ``$d`` pairs, hypotheses.

    Shared by both environments, and by the model-free baseline (it exposes the unification).
    """

    def __init__(
        self,
        db: Database,
        theorem: Assertion,
        *,
        grammar: Grammar | None = None,
        kernel: Kernel | None = None,
        forbidden: Collection[str] = (),
    ) -> None:
        self.db = db
        self.theorem = theorem
        self.grammar = grammar or Grammar(db)
        self.kernel = kernel or Kernel(db)
        self.forbidden = frozenset(forbidden) | {theorem.label}
        self.floating = floating_context(theorem.context_floating or theorem.hypotheses)
        self.hypotheses: dict[Statement, Hypothesis] = {h.statement: h for h in theorem.essential}
        self._trees = self.grammar.context_trees(self.floating)  # shared with same-context environments
        self._patterns: dict[tuple[str, Statement], tuple[ProofStep, dict[str, str]]] = {}

    # --- labels ----------------------------------------------------------------------------------

    def check_label(self, label: str) -> Assertion | EnvError:
        """The assertion ``label`` names, if a proof of the theorem may cite it."""
        target = self.db.labels.get(label)
        if not isinstance(target, Assertion):
            what = "a hypothesis" if target is not None else "not in the database"
            return EnvError(EnvErrorKind.UNKNOWN_LABEL, f"{label!r} is {what}, not an assertion")
        if label in self.forbidden:
            return EnvError(EnvErrorKind.FORBIDDEN_LABEL, f"{label!r} is forbidden for {self.theorem.label}")
        if target.number >= self.theorem.number:
            return EnvError(EnvErrorKind.FORBIDDEN_LABEL, f"{label!r} comes after {self.theorem.label}")
        if target.typecode != self.db.provable_typecode:
            return EnvError(EnvErrorKind.FORBIDDEN_LABEL, f"{label!r} is a syntax assertion, not a tactic")
        return target

    def allowed_labels(self) -> list[str]:
        """Every assertion a tactic may name here, in database order."""
        return [
            a.label
            for a in self.db.assertions[: self.theorem.number]
            if a.typecode == self.db.provable_typecode and a.label not in self.forbidden
        ]

    # --- syntax and unification ------------------------------------------------------------------

    def tree(self, statement: Statement) -> ProofStep | None:
        """The syntax tree of a statement in this context (``None`` if it does not parse)."""
        trees = self._trees
        if statement in trees:
            return trees[statement]
        try:
            tree: ProofStep | None = self.grammar.parse(statement[0], statement[1:], self.floating)
        except GrammarError:
            tree = None
        if len(trees) >= CONTEXT_TREES_LIMIT:
            trees.clear()
        trees[statement] = tree
        return tree

    def well_formed(self, typecode: str, expression: Expression) -> bool:
        return self.tree((typecode, *expression)) is not None

    def pattern(self, assertion: Assertion, statement: Statement) -> tuple[ProofStep, dict[str, str]]:
        """The syntax tree of one of ``assertion``'s statements, and its leaf label -> variable map.

        Raises :class:`~core.errors.GrammarError` if the statement does not parse.
        """
        key = (assertion.label, statement)
        found = self._patterns.get(key)
        if found is None:
            tree = self.grammar.frame_tree(assertion, statement)
            found = self._patterns[key] = (tree, {h.label: h.variable for h in assertion.floating})
        return found

    def unify(self, assertion: Assertion, pattern: Statement, statement: Statement) -> dict[str, Expression] | None:
        """The substitution of ``assertion``'s variables making ``pattern`` equal ``statement``, if any."""
        if pattern[0] != statement[0]:
            return None
        target = self.tree(statement)
        if target is None:
            return None
        try:
            tree, leaf_variables = self.pattern(assertion, pattern)
        except GrammarError:
            return None  # an assertion whose own statement does not parse unifies with nothing
        bound: dict[str, ProofStep] = {}
        if not match_tree(tree, target, leaf_variables, bound):
            return None
        return {v: self.grammar.expression(t) for v, t in bound.items()}

    # --- substitutions ---------------------------------------------------------------------------

    def check_substitution(
        self, assertion: Assertion, substitution: Mapping[str, Expression], fixed: Mapping[str, Expression]
    ) -> dict[str, Expression] | EnvError:
        """Merge a tactic's substitution with the unification's; check names, coverage and syntax."""
        types = {h.variable: h.typecode for h in assertion.floating}
        full = dict(fixed)
        for variable, expression in substitution.items():
            if variable not in types:
                return EnvError(
                    EnvErrorKind.INVALID_SUBSTITUTION, f"{variable!r} is not a variable of {assertion.label}"
                )
            expression = tuple(expression)
            if variable in fixed:
                if fixed[variable] != expression:
                    return EnvError(
                        EnvErrorKind.INVALID_SUBSTITUTION,
                        f"{variable!r} is fixed to {show(fixed[variable])!r} by unification, not {show(expression)!r}",
                    )
                continue
            if not self.well_formed(types[variable], expression):
                return EnvError(
                    EnvErrorKind.ILL_FORMED_SUBSTITUTION,
                    f"{show((types[variable], *expression))!r} is not well formed here",
                )
            full[variable] = expression
        missing = [v for v in types if v not in full]
        if missing:
            return EnvError(
                EnvErrorKind.MISSING_SUBSTITUTION, f"{assertion.label} needs a substitution for {', '.join(missing)}"
            )
        return full

    def disjoint_requirements(
        self, assertion: Assertion, substitution: Mapping[str, Expression]
    ) -> set[DisjointPair] | EnvError:
        """The variable pairs that ``assertion``'s ``$d`` conditions require under ``substitution``."""
        variables = self.db.variables
        required: set[DisjointPair] = set()
        for x, y in assertion.disjoint:
            left = {s for s in substitution[x] if s in variables}
            right = {s for s in substitution[y] if s in variables}
            for a in left:
                for b in right:
                    if a == b:
                        return EnvError(
                            EnvErrorKind.DISJOINT_VIOLATION, f"$d {x} {y} of {assertion.label}: both contain {a!r}"
                        )
                    required.add(disjoint_pair(a, b))
        return required

    def check_disjoint(self, assertion: Assertion, substitution: Mapping[str, Expression]) -> EnvError | None:
        """An error unless the theorem's ``$d`` conditions cover what ``assertion`` requires."""
        required = self.disjoint_requirements(assertion, substitution)
        if isinstance(required, EnvError):
            return required
        missing = sorted(required - self.theorem.context_disjoint)
        if missing:
            pairs = ", ".join(f"$d {a} {b}" for a, b in missing)
            return EnvError(EnvErrorKind.DISJOINT_VIOLATION, f"{assertion.label} needs {pairs}, not in effect")
        return None

    def hypotheses_under(self, assertion: Assertion, substitution: Mapping[str, Expression]) -> list[Statement]:
        """The essential hypotheses of ``assertion`` with ``substitution`` applied, in frame order."""
        compiled = self.kernel.compiled(assertion)
        return [substitute(template, substitution) for _, template, _ in compiled.essential]

    def conclusion_under(self, assertion: Assertion, substitution: Mapping[str, Expression]) -> Statement:
        return substitute(self.kernel.compiled(assertion).conclusion, substitution)


# --- Backward -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subgoal:
    """A hypothesis of the applied assertion, instantiated; ``closed_by`` names the theorem's hypothesis
    that closes it, if it equals one."""

    statement: Statement
    closed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Expansion:
    """The result of a backward tactic: the full substitution and the subgoals, in frame order."""

    assertion: Assertion
    substitution: Mapping[str, Expression]
    goal: Statement
    subgoals: tuple[Subgoal, ...]

    @property
    def open_subgoals(self) -> list[Statement]:
        return [s.statement for s in self.subgoals if s.closed_by is None]


class BackwardEnv(Context):
    """Goal + tactic -> subgoals, in the context of one theorem."""

    def apply(self, goal: Statement, tactic: Tactic) -> Expansion | EnvError:
        assertion = self.check_label(tactic.label)
        if isinstance(assertion, EnvError):
            return assertion
        fixed = self.unify(assertion, assertion.statement, goal)
        if fixed is None:
            return EnvError(
                EnvErrorKind.NO_UNIFICATION,
                f"{assertion.label} concludes {show(assertion.statement)!r}, which does not unify with {show(goal)!r}",
            )
        full = self.check_substitution(assertion, tactic.substitution, fixed)
        if isinstance(full, EnvError):
            return full
        problem = self.check_disjoint(assertion, full)
        if problem is not None:
            return problem
        subgoals = []
        for statement in self.hypotheses_under(assertion, full):
            closing = self.hypotheses.get(statement)
            subgoals.append(Subgoal(statement, closing.label if closing else None))
        return Expansion(assertion, full, goal, tuple(subgoals))

    def _own_hypothesis(self, label: str) -> Hypothesis:
        """The theorem's essential hypothesis ``label`` (a made theorem's are not in the database)."""
        return next(h for h in self.theorem.essential if h.label == label)

    def free_variables(self, assertion: Assertion) -> list[str]:
        """The variables of ``assertion`` that unification with a conclusion never fixes."""
        in_conclusion = set(assertion.statement)
        return [v for v in assertion.variables if v not in in_conclusion]

    def build_tree(self, expansion: Expansion, children: Sequence[ProofTree | None]) -> ProofTree:
        """The proof tree of a solved goal: ``children[i]`` proves open subgoal i (``None`` if closed)."""
        proofs = []
        for subgoal, child in zip(expansion.subgoals, children):
            if subgoal.closed_by is not None:
                proofs.append(hypothesis_leaf(self._own_hypothesis(subgoal.closed_by)))
            elif child is None:
                raise ValueError(f"open subgoal {show(subgoal.statement)!r} has no proof")
            else:
                proofs.append(child)
        return ProofTree(expansion.assertion.label, dict(expansion.substitution), tuple(proofs), expansion.goal)


# --- Forward --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """A proven statement of a forward graph, with its proof tree and the ``$d`` pairs it relies on."""

    index: int
    statement: Statement
    tree: ProofTree
    children: tuple[int, ...]
    disjoint: frozenset[DisjointPair]


class ForwardEnv(Context):
    """A graph of proven statements, grown one checked tactic at a time.

    The graph starts from the theorem's essential hypotheses. With ``collect_disjoint=True`` (the
    generator's mode) the ``$d`` pairs a step needs are collected into its node instead of being checked
    against the theorem's: a generated theorem then declares exactly the conditions its proof uses.
    """

    def __init__(self, db: Database, theorem: Assertion, *, collect_disjoint: bool = False, **kwargs: Any) -> None:
        super().__init__(db, theorem, **kwargs)  # kwargs: Context's keyword arguments
        self.collect_disjoint = collect_disjoint
        self.nodes: list[Node] = []
        self.by_statement: dict[Statement, Node] = {}
        for hypothesis in theorem.essential:
            if hypothesis.statement not in self.by_statement:
                self._add(hypothesis.statement, hypothesis_leaf(hypothesis), (), frozenset())

    def _add(
        self, statement: Statement, tree: ProofTree, children: tuple[int, ...], disjoint: frozenset[DisjointPair]
    ) -> Node:
        node = Node(len(self.nodes), statement, tree, children, disjoint)
        self.nodes.append(node)
        self.by_statement[statement] = node
        return node

    def apply(self, tactic: Tactic) -> Node | EnvError:
        assertion = self.check_label(tactic.label)
        if isinstance(assertion, EnvError):
            return assertion
        full = self.check_substitution(assertion, tactic.substitution, {})
        if isinstance(full, EnvError):
            return full
        required = self.disjoint_requirements(assertion, full)
        if isinstance(required, EnvError):
            return required
        if not self.collect_disjoint:
            problem = self.check_disjoint(assertion, full)
            if problem is not None:
                return problem
        children = []
        for statement in self.hypotheses_under(assertion, full):
            node = self.by_statement.get(statement)
            if node is None:
                return EnvError(
                    EnvErrorKind.MISSING_HYPOTHESIS, f"{assertion.label} needs {show(statement)!r}, which is not a node"
                )
            children.append(node)
        conclusion = self.conclusion_under(assertion, full)
        if conclusion in self.by_statement:
            return EnvError(
                EnvErrorKind.DUPLICATE_NODE,
                f"{show(conclusion)!r} is already node {self.by_statement[conclusion].index}",
            )
        tree = ProofTree(assertion.label, full, tuple(c.tree for c in children), conclusion)
        disjoint = frozenset(required).union(*(c.disjoint for c in children))
        return self._add(conclusion, tree, tuple(c.index for c in children), disjoint)

    def retract(self, node: Node) -> None:
        """Remove ``node``, which must be the newest node and used by none (a step taken back)."""
        if not self.nodes or self.nodes[-1] is not node:
            raise ValueError(f"only the newest node can be retracted, not node {node.index}")
        self.nodes.pop()
        del self.by_statement[node.statement]

    def used_hypotheses(self, node: Node) -> list[Hypothesis]:
        """The theorem's hypotheses that ``node``'s proof uses, in frame order."""
        used = {n.label for n in node.tree.nodes() if not n.children}
        return [h for h in self.theorem.essential if h.label in used]

    def is_goal(self, node: Node) -> bool:
        return node.statement == self.theorem.statement
