"""A goal critic from truth tables: goals that the theorem's hypotheses do not entail go last.

A backward search applies lemmas with fillers it guesses, and a wrong filler leaves subgoals that no
proof reaches: on prop.mm, more than 40 % of the goals a learned best-first search creates are false. A
proof of a theorem derives every subgoal from the theorem's essential hypotheses, so a subgoal that is
false under some assignment of truth values that makes every hypothesis true is unprovable in any
calculus sound for truth tables (classical propositional logic and everything weaker, intuitionistic
logic included). Its wff variables are schematic: a proof of the goal would prove each instance of it,
including those that substitute truth values, so the table over its variables decides.

:class:`TruthTableCritic` is a critic (:class:`core.search.htps.Critic`) for one theorem: a goal it reads
that the hypotheses do not entail is worth ``false_value`` (default ``1e-6``: a best-first goal's
priority drops by 13.8 nats, below nearly every true goal of a search; an HTPS goal is worth almost
nothing), every other goal ``1``. It reads only set.mm's propositional notation
(:func:`core.metamath.tautologies.parse_formula`: wff variables, ``-.``, ``->``, ``<->``, ``/\\``, ``\\/``): a
goal or a hypothesis written with anything else (a class, a quantifier) is not judged, and with such a
hypothesis no goal is. It never prunes, so a database whose symbols mean something else is searched in a
worse order, never wrongly. :class:`ProductCritic` combines it with a learned critic.

Searches get it through ``SearchSettings.truth_table`` (:func:`core.search.evaluation.make_search`).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.metamath.database import Assertion, Database, Statement
from core.metamath.tautologies import Formula, entails, parse_formula, wff_variables
from core.search.htps import Critic

FALSE_VALUE = 1e-6


class TruthTableCritic:
    """``false_value`` for a goal that ``theorem``'s essential hypotheses do not entail, else 1."""

    def __init__(self, db: Database, theorem: Assertion, false_value: float = FALSE_VALUE) -> None:
        self.typecode = db.provable_typecode
        self.variables = wff_variables(db)
        self.false_value = false_value
        parsed = [self._formula(h.statement) for h in theorem.essential]
        self.hypotheses: list[Formula] | None = None if None in parsed else [f for f in parsed if f is not None]
        self.judged = 0  # goals the truth table read
        self.refuted = 0  # of which it found false

    def values(self, goals: Sequence[Statement]) -> list[float]:
        return [self._value(goal) for goal in goals]

    def _value(self, goal: Statement) -> float:
        formula = self._formula(goal)
        if formula is None or self.hypotheses is None:
            return 1.0
        self.judged += 1
        if entails(self.hypotheses, formula):
            return 1.0
        self.refuted += 1
        return self.false_value

    def _formula(self, statement: Statement) -> Formula | None:
        if not statement or statement[0] != self.typecode:
            return None
        return parse_formula(statement[1:], self.variables)


class ProductCritic:
    """Each goal's value is the product of the ``critics``' values (the truth table's and a learned one's)."""

    def __init__(self, *critics: Critic) -> None:
        self.critics = critics

    def values(self, goals: Sequence[Statement]) -> list[float]:
        values = [1.0] * len(goals)
        for critic in self.critics:
            values = [v * w for v, w in zip(values, critic.values(goals))]
        return values
