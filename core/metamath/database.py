"""The in-memory model of a Metamath database: symbols, hypotheses, assertions and their frames.

A statement is a tuple of math symbols whose first symbol is its typecode, exactly as written in the
``.mm`` file: ``("|-", "(", "ph", "->", "ph", ")")``. Symbols are interned strings, so comparisons are
cheap. Every assertion carries its *frame*: the mandatory hypotheses (in database order, which is the
order a proof supplies them) and the mandatory disjoint-variable pairs. A ``$p`` also carries its
*context*, what its proof may use beyond the frame: every active floating hypothesis (those of dummy
variables included) and every active disjoint-variable pair. Context tuples are shared between
assertions declared in the same scope state, so they cost little memory even for set.mm.

The database is built by :mod:`core.metamath.reader`; this module only describes and queries it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from core.errors import MetamathError

Statement = tuple[str, ...]
DisjointPair = tuple[str, str]


def disjoint_pair(x: str, y: str) -> DisjointPair:
    """The canonical (sorted) form of an unordered disjoint-variable pair."""
    return (x, y) if x < y else (y, x)


class Hypothesis(NamedTuple):
    """A ``$f`` (floating: typecode + variable) or ``$e`` (essential) hypothesis.

    A named tuple: immutable, and several times cheaper to build than a frozen dataclass (a database
    has two hypotheses per assertion; set.mm has over 100,000).
    """

    label: str
    kind: Literal["f", "e"]
    statement: Statement
    file: str
    line: int

    @property
    def typecode(self) -> str:
        return self.statement[0]

    @property
    def variable(self) -> str:
        """The variable a floating hypothesis types (only meaningful for ``$f``)."""
        return self.statement[1]


class Assertion(NamedTuple):
    """An axiom or definition (``$a``) or a theorem (``$p``) with its mandatory frame.

    A named tuple, like :class:`Hypothesis`: immutable and cheap to build. ``with_proof`` (or
    ``_replace``) makes a copy with other fields.
    """

    label: str
    kind: Literal["a", "p"]
    statement: Statement
    hypotheses: tuple[Hypothesis, ...]
    disjoint: frozenset[DisjointPair]
    number: int
    file: str
    line: int
    proof: tuple[str, ...] | None = None
    context_floating: tuple[Hypothesis, ...] = ()
    context_disjoint: frozenset[DisjointPair] = frozenset()

    def with_proof(self, proof: Sequence[str]) -> Assertion:
        """The same assertion with another proof (to check a rebuilt or candidate proof)."""
        return self._replace(proof=tuple(proof))

    @property
    def typecode(self) -> str:
        return self.statement[0]

    @property
    def floating(self) -> tuple[Hypothesis, ...]:
        return tuple(h for h in self.hypotheses if h.kind == "f")

    @property
    def essential(self) -> tuple[Hypothesis, ...]:
        return tuple(h for h in self.hypotheses if h.kind == "e")

    @property
    def variables(self) -> tuple[str, ...]:
        """The mandatory variables, in the order of their floating hypotheses."""
        return tuple(h.variable for h in self.hypotheses if h.kind == "f")

    @property
    def is_theorem(self) -> bool:
        return self.kind == "p"

    @property
    def is_incomplete(self) -> bool:
        """A ``$p`` whose proof contains ``?``: a theorem still to be proved, not an error."""
        return self.proof is not None and "?" in _proof_symbols(self.proof)


def _proof_symbols(proof: tuple[str, ...]) -> Iterator[str]:
    """The proof's labels, and for a compressed proof the letters of its step string, one by one."""
    if proof and proof[0] == "(":
        closing = proof.index(")") if ")" in proof else len(proof)
        yield from proof[1:closing]
        for chunk in proof[closing + 1 :]:
            yield from chunk
    else:
        yield from proof


@dataclass(slots=True)
class Database:
    """A read Metamath database.

    ``labels`` maps every label ever declared (hypotheses included, even out of scope) to its statement;
    ``assertions`` lists the ``$a`` and ``$p`` statements in file order. ``global_floating`` holds the
    floating hypotheses active at the outermost scope when reading ended: the variables a generated
    theorem may use. ``stopped_at`` is the label reading stopped before, if any.
    """

    path: str
    constants: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)
    labels: dict[str, Hypothesis | Assertion] = field(default_factory=dict)
    assertions: list[Assertion] = field(default_factory=list)
    global_floating: tuple[Hypothesis, ...] = ()
    global_disjoint: frozenset[DisjointPair] = field(default_factory=frozenset)
    files: list[str] = field(default_factory=list)
    stopped_at: str | None = None
    provable_typecode: str = "|-"
    _floating_by_variable: dict[str, Hypothesis] = field(default_factory=dict, repr=False, compare=False)

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def __len__(self) -> int:
        return len(self.assertions)

    def assertion(self, label: str) -> Assertion:
        """The ``$a``/``$p`` named ``label``; a :class:`MetamathError` naming it if there is none."""
        statement = self.labels.get(label)
        if not isinstance(statement, Assertion):
            what = "a hypothesis, not an assertion" if statement is not None else "not in the database"
            raise MetamathError(f"{label!r} is {what}", file=self.path, label=label)
        return statement

    def theorems(self) -> list[Assertion]:
        """Every ``$p``, in file order."""
        return [a for a in self.assertions if a.kind == "p"]

    def incomplete_theorems(self) -> list[Assertion]:
        """Every ``$p`` whose proof contains ``?``: the theorems a prover is asked to fill."""
        return [a for a in self.assertions if a.is_incomplete]

    def is_syntax_axiom(self, assertion: Assertion) -> bool:
        """An ``$a`` whose typecode is not the provable one (``wff``, ``class``, ``setvar``, ...)."""
        return assertion.kind == "a" and assertion.typecode != self.provable_typecode

    def preceding(self, label: str) -> list[Assertion]:
        """The assertions before ``label`` in file order: what a proof of ``label`` may use."""
        return self.assertions[: self.assertion(label).number]

    def floating_hypothesis(self, variable: str) -> Hypothesis | None:
        """A floating hypothesis typing ``variable``: the outermost one, else the first declared in a block.

        (Some databases type a variable only inside blocks, e.g. prop.mm's ``et``; a theorem made at the
        end of the database uses that hypothesis.)
        """
        if not self._floating_by_variable:
            for statement in self.labels.values():
                if isinstance(statement, Hypothesis) and statement.kind == "f":
                    self._floating_by_variable.setdefault(statement.variable, statement)
            self._floating_by_variable.update((h.variable, h) for h in self.global_floating)
        return self._floating_by_variable.get(variable)

    def variable_typecodes(self) -> dict[str, str]:
        """Each variable's typecode, from the floating hypotheses active at the outermost scope."""
        return {h.variable: h.typecode for h in self.global_floating}
