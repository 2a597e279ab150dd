"""Training-data augmentation: substitution instances of proofs, each checked by the kernel.

A Metamath proof stays a proof when its variables are substituted: replace ``ph`` by ``ps`` and ``ps`` by
``( ch -> ph )`` in every statement and every step's substitution of a proof, and the result proves the
same instance of the theorem. :func:`instance` draws one such instance of a train theorem and its proof
tree: each variable of the tree is sent, with probability ``compound``, to a formula of one syntax axiom
of its typecode (``( ps -> ch )``, ``-. ph``) whose variables are drawn from the pool, else to a variable
of the pool, where the pool is the first ``len(variables) + extra`` variables that the database declares
for the typecode (``ph ps ch th ...``: the names its theorems use). A theorem with disjoint-variable
conditions is not augmented (a substitution could break them), and every instance is verified by the
kernel before it is used (:func:`~core.metamath.prooftree.check_tree`); one that fails is dropped and
counted.

Why: prop.mm's train split gives 2,548 backward examples, and a ``tiny`` prover sees each of them
hundreds of times in 10 CPU-minutes, so it learns the names as well as the steps. Instances teach the
same steps on other names and on larger formulas, like the subgoals a search meets.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.errors import ConfigError, MetamathError, MMVerificationError
from core.metamath.database import Assertion, Database, Statement
from core.metamath.prooftree import ProofTree, check_tree, make_theorem
from core.metamath.syntax import Grammar, Rule
from core.metamath.verifier import Kernel

Replacement = Mapping[str, tuple[str, ...]]  # variable -> the expression that replaces it
REJECTED = "augment_rejected"  # counter: an instance the kernel (or the frame builder) refused
SKIPPED_DISJOINT = "augment_skipped_disjoint"  # counter: a theorem not augmented for its $d conditions


@dataclass(frozen=True)
class Augmentation:
    """How many substitution instances of each train proof to add, and how they are drawn."""

    copies: int = 0  # instances drawn per theorem (repeats and the identity are dropped); 0: none
    compound: float = 0.25  # probability that a variable becomes a formula rather than a variable
    extra: int = 2  # the pool: the first len(variables) + extra variables of a typecode
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("copies", "extra", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"augmentation {name} must be an integer >= 0 (got {value!r})", field=name)
        if isinstance(self.compound, bool) or not isinstance(self.compound, (int, float)):
            raise ConfigError(f"augmentation compound must be a probability (got {self.compound!r})", field="compound")
        if not 0.0 <= self.compound <= 1.0:
            raise ConfigError(f"augmentation compound must be between 0 and 1 (got {self.compound})", field="compound")


@dataclass
class Drawn:
    """The instances drawn for one theorem: the distinct new ones, how many the kernel refused, and whether
    the theorem was skipped for its disjoint-variable conditions."""

    instances: list[tuple[Assertion, ProofTree]] = field(default_factory=list)
    rejected: int = 0
    skipped_disjoint: bool = False


def substitute(expression: Sequence[str], mapping: Replacement) -> tuple[str, ...]:
    """``expression`` with every symbol of ``mapping`` replaced by its expression."""
    return tuple(s for symbol in expression for s in mapping.get(symbol, (symbol,)))


def substitute_tree(tree: ProofTree, mapping: Replacement) -> ProofTree:
    """``tree`` with ``mapping`` applied to every statement and every step's substitution.

    A subtree shared in memory is rebuilt once and stays shared.
    """
    built: dict[int, ProofTree] = {}
    for node in tree.nodes():
        if id(node) in built:
            continue
        built[id(node)] = ProofTree(
            node.label,
            {v: substitute(e, mapping) for v, e in node.substitution.items()},
            tuple(built[id(child)] for child in node.children),
            substitute(node.statement, mapping),
        )
    return built[id(tree)]


def tree_variables(db: Database, theorem: Assertion, tree: ProofTree) -> list[str]:
    """The variables of ``theorem``'s hypotheses and of every statement and substitution of ``tree``."""
    seen: dict[str, None] = {}
    expressions: list[Sequence[str]] = [h.statement for h in theorem.essential]
    for node in tree.nodes():
        expressions.append(node.statement)
        expressions.extend(node.substitution.values())
    for expression in expressions:
        for symbol in expression:
            if symbol in db.variables:
                seen.setdefault(symbol, None)
    return list(seen)


class Augmenter:
    """Draws kernel-checked substitution instances of proofs of one database."""

    def __init__(self, db: Database, augmentation: Augmentation, *, kernel: Kernel | None = None) -> None:
        self.db = db
        self.augmentation = augmentation
        self.kernel = kernel or Kernel(db)
        self.grammar = Grammar(db)
        self.rng = random.Random(augmentation.seed)
        self.declared: dict[str, list[str]] = {}
        for hypothesis in db.global_floating:
            self.declared.setdefault(hypothesis.typecode, []).append(hypothesis.variable)
        self.rules: dict[str, list[Rule]] = {}
        for rule in self.grammar.rules.values():
            names = [v for v, _ in rule.variable_types]
            if len(names) == len(set(names)) and all(t in self.declared for _, t in rule.variable_types):
                self.rules.setdefault(rule.typecode, []).append(rule)

    def instances(self, theorem: Assertion, tree: ProofTree) -> Drawn:
        """Up to ``copies`` distinct instances of ``theorem`` proved by ``tree`` (neither repeats nor the
        theorem itself), each verified by the kernel."""
        drawn = Drawn()
        if self.augmentation.copies == 0:
            return drawn
        if theorem.disjoint:
            drawn.skipped_disjoint = True
            return drawn
        variables = tree_variables(self.db, theorem, tree)
        typecodes = {v: self._typecode(v) for v in variables}
        known = {v: t for v, t in typecodes.items() if t is not None and t in self.declared}
        if not variables or len(known) < len(variables):
            return drawn
        rules = self._rules_before(theorem)
        seen = {(theorem.statement, tuple(h.statement for h in theorem.essential))}
        for _ in range(self.augmentation.copies):
            result = self._instance(theorem, tree, self._draw(variables, known, rules))
            if result is None:
                drawn.rejected += 1
                continue
            key = (result[0].statement, tuple(h.statement for h in result[0].essential))
            if key not in seen:
                seen.add(key)
                drawn.instances.append(result)
        return drawn

    def _rules_before(self, theorem: Assertion) -> dict[str, list[Rule]]:
        """The usable syntax axioms declared before ``theorem``, by typecode (a proof may not cite a later one)."""
        number = theorem.number
        return {t: [r for r in rules if self.db.assertion(r.label).number < number] for t, rules in self.rules.items()}

    def _typecode(self, variable: str) -> str | None:
        hypothesis = self.db.floating_hypothesis(variable)
        return hypothesis.typecode if hypothesis is not None else None

    def _pool(self, typecode: str, count: int) -> list[str]:
        declared = self.declared[typecode]
        return declared[: min(len(declared), count + self.augmentation.extra)]

    def _draw(
        self, variables: list[str], typecodes: Mapping[str, str], rules: Mapping[str, list[Rule]]
    ) -> dict[str, tuple[str, ...]]:
        """A random substitution of ``variables``: for each, a variable or a formula of one of ``rules``."""
        counts: dict[str, int] = {}
        for variable in variables:
            counts[typecodes[variable]] = counts.get(typecodes[variable], 0) + 1
        pools = {t: self._pool(t, n) for t, n in counts.items()}
        shuffled = {t: self.rng.sample(pool, len(pool)) for t, pool in pools.items()}
        mapping: dict[str, tuple[str, ...]] = {}
        for variable in variables:
            typecode = typecodes[variable]
            usable = rules.get(typecode, [])
            if usable and self.rng.random() < self.augmentation.compound:
                mapping[variable] = self._formula(self.rng.choice(usable), pools)
            else:
                queue = shuffled[typecode]
                mapping[variable] = (queue.pop() if queue else self.rng.choice(pools[typecode]),)
        return mapping

    def _formula(self, rule: Rule, pools: Mapping[str, list[str]]) -> tuple[str, ...]:
        filler = {v: (self.rng.choice(pools.get(t) or self._pool(t, 1)),) for v, t in rule.variable_types}
        return substitute(rule.body, filler)

    def _instance(
        self, theorem: Assertion, tree: ProofTree, mapping: Replacement
    ) -> tuple[Assertion, ProofTree] | None:
        renamed = substitute_tree(tree, mapping)
        essential: list[Statement] = [substitute(h.statement, mapping) for h in theorem.essential]
        try:
            instance = make_theorem(self.db, theorem.label, substitute(theorem.statement, mapping), essential,
                                    hypothesis_labels=[h.label for h in theorem.essential], before=theorem)  # fmt: skip
            check_tree(self.db, self.grammar, instance, renamed, self.kernel)
        except (MetamathError, MMVerificationError):
            return None
        return instance, renamed
