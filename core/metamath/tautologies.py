"""Seeded sets of random propositional tautologies, as ``$p ... $= ? $.`` theorems after a database.

An evaluation set of our own, from outside any database's theorem list: ``python -m core.metamath
tautologies --database prop.mm --count 30 --seed 0 --out T.mm`` writes the database (or its excerpt up to
``--stop-at``, e.g. set.mm's propositional part) followed by ``count`` theorems ``taut.1``, ``taut.2``, ...
each ``$p |- FORMULA $= ? $.``, ready for ``python -m jobs.prove T.mm --out FILLED.mm``.

**Formulas** use set.mm's notation: the wff variables ``ph ps ch th ta`` (the first ``variables`` of them,
each must be declared as a wff variable at the database's outermost scope), ``-.`` and ``->``, and
``<->``, ``/\\``, ``\\/`` where the database defines them (a syntax axiom ``wff ( ph <-> ps )`` etc.).
A formula of depth ``d`` (a variable has depth 0) is drawn by a seeded ``random.Random``: a connective,
then subformulas, one of which has depth exactly ``d - 1``. It is kept only if its truth table is all
true (every assignment of its variables), it is new (no earlier formula of the set, no assertion of the
database has the same statement), so the set is deterministic for a seed and the database.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from core.errors import ConfigError, MetamathError
from core.metamath.database import Database, Statement

WFF_VARIABLES = ("ph", "ps", "ch", "th", "ta")

# connective name -> (arity, its syntax axiom's statement with ``ph``/``ps`` as the subformulas)
CONNECTIVES: dict[str, tuple[int, tuple[str, ...]]] = {
    "not": (1, ("wff", "-.", "ph")),
    "imp": (2, ("wff", "(", "ph", "->", "ps", ")")),
    "bi": (2, ("wff", "(", "ph", "<->", "ps", ")")),
    "and": (2, ("wff", "(", "ph", "/\\", "ps", ")")),
    "or": (2, ("wff", "(", "ph", "\\/", "ps", ")")),
}
WEIGHTS = {"imp": 4, "not": 2, "bi": 1, "and": 1, "or": 1}  # implication-heavy, as Hilbert-style theorems are
REQUIRED = ("imp", "not")
PREFIX = "taut."


@dataclass(frozen=True)
class Formula:
    """A propositional formula: a variable (``operator == ""``) or a connective applied to subformulas."""

    operator: str
    variable: str = ""
    arguments: tuple[Formula, ...] = ()

    @property
    def depth(self) -> int:
        return 1 + max(a.depth for a in self.arguments) if self.arguments else 0

    def variables(self) -> set[str]:
        if not self.operator:
            return {self.variable}
        return set().union(*(a.variables() for a in self.arguments))

    def symbols(self) -> tuple[str, ...]:
        """The formula in set.mm's notation: ``( ph -> -. ps )``."""
        if not self.operator:
            return (self.variable,)
        if self.operator == "not":
            return ("-.", *self.arguments[0].symbols())
        middle = CONNECTIVES[self.operator][1][3]
        return ("(", *self.arguments[0].symbols(), middle, *self.arguments[1].symbols(), ")")

    def value(self, assignment: dict[str, bool]) -> bool:
        if not self.operator:
            return assignment[self.variable]
        values = [a.value(assignment) for a in self.arguments]
        if self.operator == "not":
            return not values[0]
        left, right = values
        return {"imp": (not left) or right, "bi": left == right, "and": left and right, "or": left or right}[
            self.operator
        ]


def is_tautology(formula: Formula) -> bool:
    """Whether ``formula`` is true under every assignment of its variables (a truth table)."""
    return entails((), formula)


def entails(hypotheses: Sequence[Formula], goal: Formula) -> bool:
    """Whether every assignment that makes all ``hypotheses`` true makes ``goal`` true (a truth table): what
    a sound propositional calculus can prove from them at most."""
    names = sorted(goal.variables().union(*(h.variables() for h in hypotheses)))
    for row in itertools.product((False, True), repeat=len(names)):
        assignment = dict(zip(names, row))
        if all(h.value(assignment) for h in hypotheses) and not goal.value(assignment):
            return False
    return True


_INFIX = {CONNECTIVES[name][1][3]: name for name in ("imp", "bi", "and", "or")}


def parse_formula(symbols: Sequence[str], variables: Collection[str]) -> Formula | None:
    """The formula that ``symbols`` writes in set.mm's notation (``( ph -> -. ps )``; ``variables``: the wff
    variables), or ``None`` when they use anything else (another connective, a class, a typecode).
    set.mm's triple conjunction and disjunction ``( ph /\\ ps /\\ ch )`` read as ``( ( ph /\\ ps ) /\\ ch )``."""
    try:
        formula, end = _parse(symbols, 0, variables)
    except (LookupError, ValueError):  # ran off the end, an unknown infix, a stray symbol
        return None
    return formula if end == len(symbols) else None


def _parse(symbols: Sequence[str], at: int, variables: Collection[str]) -> tuple[Formula, int]:
    """The formula starting at ``symbols[at]`` and the index after it; LookupError or ValueError if none."""
    symbol = symbols[at]
    if symbol in variables:
        return Formula("", symbol), at + 1
    if symbol == "-.":
        argument, end = _parse(symbols, at + 1, variables)
        return Formula("not", arguments=(argument,)), end
    if symbol != "(":
        raise ValueError(symbol)
    left, at = _parse(symbols, at + 1, variables)
    infix = symbols[at]
    operator = _INFIX[infix]
    right, at = _parse(symbols, at + 1, variables)
    formula = Formula(operator, arguments=(left, right))
    if operator in ("and", "or") and symbols[at] == infix:
        third, at = _parse(symbols, at + 1, variables)
        formula = Formula(operator, arguments=(formula, third))
    if symbols[at] != ")":
        raise ValueError(symbols[at])
    return formula, at + 1


@dataclass(frozen=True)
class TautologySettings:
    """How a set is drawn: ``count`` formulas of depth ``min_depth``..``max_depth`` over ``variables``
    wff variables, with ``connectives`` (default: every one the database defines), from ``seed``."""

    count: int = 30
    seed: int = 0
    min_depth: int = 2
    max_depth: int = 4
    variables: int = 3
    connectives: tuple[str, ...] = ()
    attempts_per_formula: int = 5000  # draws in a row without a new tautology before giving up

    def __post_init__(self) -> None:
        for name in ("count", "min_depth", "attempts_per_formula"):
            if getattr(self, name) < 1:
                raise ConfigError(f"tautologies {name} must be >= 1, got {getattr(self, name)}")
        if self.max_depth < self.min_depth:
            raise ConfigError(f"tautologies max_depth ({self.max_depth}) must be >= min_depth ({self.min_depth})")
        if not 1 <= self.variables <= len(WFF_VARIABLES):
            raise ConfigError(f"tautologies variables must be 1..{len(WFF_VARIABLES)}, got {self.variables}")
        unknown = [c for c in self.connectives if c not in CONNECTIVES]
        if unknown:
            raise ConfigError(f"tautologies connectives: unknown {', '.join(unknown)}; known: {', '.join(CONNECTIVES)}")


def wff_variables(db: Database) -> frozenset[str]:
    """The variables ``db`` declares as wffs at its outermost scope: what a truth table reads as variables."""
    return frozenset(v for v, typecode in db.variable_typecodes().items() if typecode == "wff")


def available_connectives(db: Database) -> tuple[str, ...]:
    """The connectives whose syntax axiom ``db`` has (``wff ( V1 -> V2 )`` with any wff variables)."""
    found = []
    wff = wff_variables(db)
    for name, (_, pattern) in CONNECTIVES.items():
        for assertion in db.assertions:
            if db.is_syntax_axiom(assertion) and _same_shape(assertion.statement, pattern, wff):
                found.append(name)
                break
    return tuple(found)


def _same_shape(statement: Statement, pattern: Statement, wff: Collection[str]) -> bool:
    if len(statement) != len(pattern):
        return False
    places = [(s, p) for s, p in zip(statement, pattern) if p in ("ph", "ps")]
    constants_agree = all(s == p for s, p in zip(statement, pattern) if p not in ("ph", "ps"))
    return constants_agree and all(s in wff for s, _ in places) and len({s for s, _ in places}) == len(places)


def check_context(db: Database, settings: TautologySettings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The variables and connectives a set in ``db`` uses; a :class:`MetamathError` if ``db`` lacks some."""
    typecodes = db.variable_typecodes()
    variables = WFF_VARIABLES[: settings.variables]
    missing = [v for v in variables if typecodes.get(v) != "wff"]
    if missing:
        raise MetamathError(
            f"the database does not declare {', '.join(missing)} as wff variables at its "
            "outermost scope; use fewer --variables or another database",
            file=db.path,
        )
    defined = available_connectives(db)
    absent = [c for c in REQUIRED if c not in defined]
    if absent:
        raise MetamathError(
            f"the database has no syntax axiom for {', '.join(absent)} (-. and -> are needed)", file=db.path
        )
    chosen = settings.connectives or defined
    undefined = [c for c in chosen if c not in defined]
    if undefined:
        raise MetamathError(f"the database does not define the connective(s) {', '.join(undefined)}", file=db.path)
    return variables, tuple(chosen)


def random_formula(rng: random.Random, depth: int, variables: Sequence[str], connectives: Sequence[str]) -> Formula:
    """A formula of exactly ``depth``: one argument of each connective has depth ``depth - 1``."""
    if depth == 0:
        return Formula("", rng.choice(variables))
    operator = rng.choices(connectives, [WEIGHTS[c] for c in connectives])[0]
    arity = CONNECTIVES[operator][0]
    deep = rng.randrange(arity)
    arguments = tuple(
        random_formula(rng, depth - 1 if i == deep else rng.randrange(depth), variables, connectives)
        for i in range(arity)
    )
    return Formula(operator, arguments=arguments)


def tautologies(db: Database, settings: TautologySettings) -> list[Statement]:
    """``settings.count`` distinct tautologies (``|-`` statements) new to ``db``, deterministic for the seed.

    Raises :class:`MetamathError` when ``attempts_per_formula`` draws in a row bring no new one.
    """
    variables, connectives = check_context(db, settings)
    rng = random.Random(settings.seed)
    known = {a.statement for a in db.assertions}
    found: dict[Statement, None] = {}
    misses = 0
    while len(found) < settings.count:
        depth = rng.randint(settings.min_depth, settings.max_depth)
        formula = random_formula(rng, depth, variables, connectives)
        statement = (db.provable_typecode, *formula.symbols())
        if statement not in found and statement not in known and is_tautology(formula):
            found[statement] = None
            misses = 0
        else:
            misses += 1
            if misses >= settings.attempts_per_formula:
                raise MetamathError(
                    f"only {len(found)} of {settings.count} distinct tautologies found "
                    f"({misses} draws in a row brought no new one); allow deeper formulas, more "
                    "variables or fewer theorems",
                    file=db.path,
                )
    return list(found)


def labels(db: Database, count: int, prefix: str = PREFIX) -> list[str]:
    """``prefix1``..``prefixN``; a :class:`MetamathError` if one is already a label or symbol of ``db``."""
    names = [f"{prefix}{i}" for i in range(1, count + 1)]
    taken = [n for n in names if n in db.labels or n in db.constants or n in db.variables]
    if taken:
        raise MetamathError(f"label {taken[0]} is already used by the database; choose another --prefix", file=db.path)
    return names


def theorem_block(names: Sequence[str], statements: Sequence[Statement], settings: TautologySettings) -> str:
    """The text appended after the database: a comment, then one ``$p ... $= ? $.`` per statement."""
    header = (
        f"$( {len(statements)} random tautologies (seed {settings.seed}, depth {settings.min_depth}.."
        f"{settings.max_depth}, {settings.variables} variables), written by python -m core.metamath "
        "tautologies. $)\n"
    )
    return "\n" + header + "".join(f"  {n} $p {' '.join(s)} $= ? $.\n" for n, s in zip(names, statements))


def iter_statements(text: str) -> Iterator[tuple[str, Statement]]:
    """(label, statement) of the ``$p`` lines of a block written by :func:`theorem_block` (for tests, tools)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == "$p" and parts[-3:] == ["$=", "?", "$."]:
            yield parts[0], tuple(parts[2:-3])
