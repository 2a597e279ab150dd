"""The Metamath proof checker: the stack machine of the Metamath book, ``$d`` conditions included.

:meth:`Kernel._machine` holds the one inference rule of Metamath: given an assertion and the statements
proved for its mandatory hypotheses, it finds the substitution fixed by the floating hypotheses, checks
the essential hypotheses and the disjoint-variable conditions, and yields the substituted conclusion.
:meth:`Kernel.run` runs whole proofs on it; :meth:`Kernel.apply`, used by proof trees and environments,
runs it on a one-step program: one implementation of the rule.

Assertions are compiled once into substitution templates (leading constants, then (variable, constants)
pairs), which makes checking set.mm practical in pure Python.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from core.errors import MetamathError, MMVerificationError
from core.metamath.database import Assertion, Database, DisjointPair, Hypothesis, Statement
from core.metamath.proof import ProofProgram, compressed_parts, decode_proof, lazy_operations
from core.metamath.reader import collector_paused

logger = logging.getLogger(__name__)

Substitution = dict[str, Statement]
Template = tuple[Statement, tuple[tuple[str, Statement], ...]]  # see compile_template


def show(statement: Statement, limit: int = 160) -> str:
    """A statement as text for an error message, shortened in the middle when long."""
    text = " ".join(statement)
    return text if len(text) <= limit else f"{text[: limit // 2]} ... {text[-limit // 2 :]}"


class RuleError(Exception):
    """An application of an assertion does not fit (raised by :meth:`Kernel.apply`, no location)."""


class _StepError(Exception):
    """A proof step breaks the rules (inside the stack machine, which fills in ``step``; turned into a
    located error)."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


class CompiledAssertion(NamedTuple):
    """An assertion prepared for fast application (a named tuple: immutable and quick to build)."""

    assertion: Assertion
    floating: tuple[tuple[int, str, str], ...]  # (position among hypotheses, typecode, variable)
    essential: tuple[tuple[int, Template, Hypothesis], ...]
    conclusion: Template
    disjoint: tuple[DisjointPair, ...]
    arity: int


def compile_template(statement: Statement, variables: set[str]) -> Template:
    """A statement as its leading constants and the (variable, constants that follow it) pairs.

    ``|- ( ph -> ps )`` becomes ``(("|-", "("), (("ph", ("->",)), ("ps", (")",))))``.
    """
    head: tuple[str, ...] = ()
    pairs: list[tuple[str, tuple[str, ...]]] = []
    variable: str | None = None
    run: list[str] = []
    for symbol in statement:
        if symbol in variables:
            if variable is None:
                head = tuple(run)
            else:
                pairs.append((variable, tuple(run)))
            variable, run = symbol, []
        else:
            run.append(symbol)
    if variable is None:
        head = tuple(run)
    else:
        pairs.append((variable, tuple(run)))
    return head, tuple(pairs)


def substitute(template: Template, substitution: Mapping[str, Statement]) -> Statement:
    """Apply a substitution to a compiled template."""
    out, pairs = template
    for variable, constants in pairs:
        out += substitution[variable]
        out += constants
    return out


def compile_assertion(assertion: Assertion, variables: set[str]) -> CompiledAssertion:
    floating, essential = [], []
    for position, hypothesis in enumerate(assertion.hypotheses):
        statement = hypothesis.statement
        if hypothesis.kind == "f":
            floating.append((position, statement[0], statement[1]))  # typecode, variable
        else:
            essential.append((position, compile_template(statement, variables), hypothesis))
    return CompiledAssertion(
        assertion,
        tuple(floating),
        tuple(essential),
        compile_template(assertion.statement, variables),
        tuple(sorted(assertion.disjoint)) if assertion.disjoint else (),
        len(assertion.hypotheses),
    )


class Kernel:
    """Applies and checks assertions of one database; caches compiled assertions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._compiled: dict[str, CompiledAssertion] = {}
        self._targets = _Targets(db, self._compiled)

    def compiled(self, assertion: Assertion) -> CompiledAssertion:
        compiled = self._compiled.get(assertion.label)
        if compiled is None:
            compiled = self._compiled[assertion.label] = compile_assertion(assertion, self.db.variables)
        return compiled

    def apply(
        self,
        assertion: Assertion,
        arguments: Sequence[Statement],
        context_disjoint: frozenset[DisjointPair],
    ) -> tuple[Statement, Substitution]:
        """Apply ``assertion`` to the statements proved for its mandatory hypotheses (in frame order).

        Returns the substituted conclusion and the substitution; raises :class:`RuleError` saying what
        does not fit. ``context_disjoint`` holds the disjoint pairs the proof may rely on. This is the
        stack machine of :meth:`run` on a one-step program, so the rule has one implementation.
        """
        compiled = self.compiled(assertion)
        if len(arguments) != compiled.arity:
            raise RuleError(
                f"{assertion.label} has {compiled.arity} mandatory hypotheses, got {len(arguments)} statements"
            )
        try:
            (conclusion,) = self._machine([compiled], (0,), context_disjoint, list(arguments))
        except _StepError as error:
            raise RuleError(error.reason) from None
        substitution = {variable: arguments[position][1:] for position, _, variable in compiled.floating}
        return conclusion, substitution

    def check_disjoint(
        self,
        assertion: Assertion,
        pairs: Sequence[DisjointPair],
        substitution: Substitution,
        context_disjoint: frozenset[DisjointPair],
    ) -> None:
        """Raise :class:`RuleError` unless the substitution honours the assertion's ``$d`` pairs."""
        variables = self.db.variables
        for x, y in pairs:
            left = {s for s in substitution[x] if s in variables}
            right = {s for s in substitution[y] if s in variables}
            for a in left:
                for b in right:
                    if a == b:
                        raise RuleError(
                            f"$d {x} {y} of {assertion.label} is violated: both are substituted with "
                            f"expressions containing {a!r}"
                        )
                    if (a, b) not in context_disjoint and (b, a) not in context_disjoint:
                        raise RuleError(f"$d {x} {y} of {assertion.label} needs $d {a} {b}, which is not in effect")

    def run(self, theorem: Assertion) -> Statement:
        """Execute the proof of ``theorem`` and return what it proves (raises on any error)."""
        return self._execute(theorem, decode_proof(self.db, theorem))

    def _execute(self, theorem: Assertion, program: ProofProgram) -> Statement:
        """Run ``decode_proof(db, theorem)`` on the stack machine and return what it proves.

        Private: the program must come from decoding this very theorem's proof, which is where its
        citations were checked (active hypotheses, earlier assertions).
        """
        if program.is_incomplete:
            raise MMVerificationError(
                "proof is incomplete (contains `?`)", file=theorem.file, line=theorem.line, label=theorem.label
            )
        # Each label as what the machine needs: a hypothesis's statement, or a compiled assertion. A theorem
        # that is not the database's own (a goal, a generated theorem) has hypotheses of its own, which the
        # database does not know and which take precedence over any database label they may shadow.
        if self.db.labels.get(theorem.label) is theorem:
            targets = list(map(self._targets.__getitem__, program.labels))
        else:
            own = {h.label: h.statement for h in theorem.hypotheses}
            targets = [own[label] if label in own else self._targets[label] for label in program.labels]
        try:
            stack = self._machine(targets, program.ops, theorem.context_disjoint, [])
        except _StepError as error:
            raise self._error(theorem, error.step, error.reason) from None
        if len(stack) != 1:
            raise self._error(theorem, len(program.ops), f"proof ends with {len(stack)} statements on the stack, not 1")
        return stack[0]

    def _machine(
        self,
        targets: list[Statement | CompiledAssertion],
        ops: Iterable[int],
        context_disjoint: frozenset[DisjointPair],
        stack: list[Statement],
    ) -> list[Statement]:
        """The Metamath stack machine, and in it the one inference rule; returns the final stack.

        ``0 <= op < len(targets)`` pushes ``targets[op]`` (a hypothesis's statement, or a saved step) or
        applies it (a compiled assertion) to the top of the stack: the floating hypotheses fix the
        substitution, the essential hypotheses must then match exactly and the ``$d`` conditions hold; the
        substituted conclusion replaces the arguments. ``SAVE`` appends the top of the stack to ``targets``
        (a list the machine may extend: see :class:`ProofProgram` for why a reuse is then a push). Raises
        :class:`_StepError` naming the step (counted from what is left of the steps, which spares a counter
        in the loop). The hottest code of the kernel, hence inlined.
        """
        push = stack.append
        steps = iter(ops)
        applied = -2  # where the stack's top was left by the last assertion applied (a `Z` must follow one)
        try:
            for op in steps:
                if op >= 0:
                    target = targets[op]
                    # The class test is the kernel's fast isinstance, on which mypy does not narrow: a plain
                    # tuple is a statement, anything else a compiled assertion (a named tuple).
                    if target.__class__ is tuple:
                        push(target)  # type: ignore[arg-type]  # a statement: see the class test above
                        continue
                    compiled: CompiledAssertion = target  # type: ignore[assignment]  # see the class test above
                    assertion, floating, essential, (conclusion, pairs), disjoint, arity = compiled
                    base = len(stack) - arity
                    if base < 0:
                        raise _StepError(0, f"{assertion.label} needs {arity} hypotheses, the stack holds {len(stack)}")
                    substitution: Substitution = {}
                    for position, typecode, variable in floating:
                        argument = stack[base + position]
                        if argument[0] != typecode:
                            raise _StepError(
                                0,
                                f"hypothesis {assertion.hypotheses[position].label} of "
                                f"{assertion.label} needs a {typecode!r} expression, "
                                f"got {show(argument)!r}",
                            )
                        substitution[variable] = argument[1:]
                    for position, (expected, expected_pairs), hypothesis in essential:
                        for variable, constants in expected_pairs:
                            expected += substitution[variable]
                            expected += constants
                        if expected != stack[base + position]:
                            raise _StepError(
                                0,
                                f"hypothesis {hypothesis.label} of {assertion.label} needs "
                                f"{show(expected)!r}, got {show(stack[base + position])!r}",
                            )
                    if disjoint:
                        try:
                            self.check_disjoint(assertion, disjoint, substitution, context_disjoint)
                        except RuleError as error:
                            raise _StepError(0, str(error)) from None
                    for variable, constants in pairs:
                        conclusion += substitution[variable]
                        conclusion += constants
                    del stack[base:]
                    push(conclusion)
                    applied = base
                else:  # SAVE
                    if len(stack) != applied + 1:  # something was pushed since, or nothing applied yet
                        raise _StepError(0, "`Z` does not follow an assertion step")
                    targets.append(stack[-1])
        except _StepError as error:
            if isinstance(ops, tuple):  # the failing step is the last one taken
                error.step = len(ops) - operator.length_hint(steps)
            raise
        return stack

    def _verified_quickly(self, theorem: Assertion) -> bool:
        """Whether a database theorem's compressed proof verifies, run straight from its letters.

        The fast path of :func:`verify_database`: it spares building the decoded program, the checks that
        decoding makes of the letters being done by the machine (a reused step must have been saved: else
        ``targets[op]`` is out of range; a `Z` must follow an assertion step). False when it cannot tell
        (a normal or incomplete proof, malformed letters, any error in the proof): the caller then decodes
        the proof and runs it, which says what is wrong. Raises, as decoding does, on a listed label that
        may not be cited.
        """
        proof = theorem.proof
        if not proof or proof[0] != "(" or self.db.labels.get(theorem.label) is not theorem:
            return False
        labels, letters, _, _ = compressed_parts(self.db, theorem, proof)
        ops = lazy_operations(letters)
        if ops is None:
            return False
        targets = list(map(self._targets.__getitem__, labels))
        try:
            stack = self._machine(targets, ops, theorem.context_disjoint, [])
        except (_StepError, IndexError):
            return False
        return len(stack) == 1 and stack[0] == theorem.statement

    def verify(self, theorem: Assertion) -> None:
        """Raise :class:`MMVerificationError` unless the proof of ``theorem`` proves its statement."""
        self.check(theorem, self.run(theorem))

    @staticmethod
    def check(theorem: Assertion, proved: Statement) -> None:
        """Raise :class:`MMVerificationError` unless ``proved`` is the statement of ``theorem``."""
        if proved != theorem.statement:
            raise MMVerificationError(
                f"proof proves {show(proved)!r}, not the statement",
                file=theorem.file,
                line=theorem.line,
                label=theorem.label,
            )

    @staticmethod
    def _error(theorem: Assertion, step: int, reason: str) -> MMVerificationError:
        return MMVerificationError(
            f"proof step {step}: {reason}", file=theorem.file, line=theorem.line, label=theorem.label
        )


class _Targets(dict[str, "Statement | CompiledAssertion"]):
    """Label -> what the stack machine needs of it: a hypothesis's statement or a compiled assertion."""

    def __init__(self, db: Database, compiled: dict[str, CompiledAssertion]) -> None:
        super().__init__()
        self.db = db
        self.compiled = compiled  # the kernel's cache, shared

    def __missing__(self, label: str) -> Statement | CompiledAssertion:
        target = self.db.labels[label]
        if isinstance(target, Hypothesis):
            value: Statement | CompiledAssertion = target.statement
        else:
            value = self.compiled.get(label) or compile_assertion(target, self.db.variables)
            self.compiled[label] = value
        self[label] = value
        return value


@dataclass
class VerificationReport:
    """The outcome of verifying a database: counts, failures (in order) and time."""

    verified: int = 0
    incomplete: list[str] = field(default_factory=list)
    failures: list[MetamathError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def verify_database(
    db: Database,
    *,
    labels: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerificationReport:
    """Verify every complete proof of ``db`` (or only ``labels``); incomplete proofs are counted.

    Each theorem is checked on its own: whatever is wrong with one proof (even an unexpected error in the
    kernel) is that theorem's failure in the report, and the others are still verified.
    """
    kernel = Kernel(db)
    theorems = db.theorems() if labels is None else [db.assertion(label) for label in labels]
    report = VerificationReport()
    start = time.perf_counter()
    with collector_paused():
        for done, theorem in enumerate(theorems, 1):
            try:
                _verify_into(report, kernel, theorem)
            except MetamathError as error:
                report.failures.append(error)
            except Exception as error:
                logger.debug("checking %s failed unexpectedly", theorem.label, exc_info=True)
                report.failures.append(
                    MMVerificationError(
                        f"the kernel failed on this proof ({type(error).__name__}: {str(error)[:200]}); "
                        "please report it",
                        file=theorem.file,
                        line=theorem.line,
                        label=theorem.label,
                    )
                )
            if progress is not None:
                progress(done, len(theorems))
    report.seconds = time.perf_counter() - start
    return report


def _verify_into(report: VerificationReport, kernel: Kernel, theorem: Assertion) -> None:
    """Verify one theorem into ``report``: the fast path first, else the proof decoded (which says what
    is wrong, and finds an incomplete proof, which must still cite valid labels)."""
    if kernel._verified_quickly(theorem):
        report.verified += 1
        return
    program = decode_proof(kernel.db, theorem)
    if program.is_incomplete:
        report.incomplete.append(theorem.label)
        return
    kernel.check(theorem, kernel._execute(theorem, program))
    report.verified += 1
