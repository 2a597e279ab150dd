"""A database read once and everything the roles derive from it: grammar, kernel, splits, label sets.

Test hygiene lives here: :attr:`Workspace.generator_forbidden` keeps the generator away from the
valid and test theorems, :meth:`Workspace.train_theorems` is the only source of training proofs and of
generator goals, and :meth:`Workspace.is_known_statement` lets the generator drop any theorem the
database already states (a test theorem included).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property

from core.metamath.database import Assertion, Database, Statement
from core.metamath.prooftree import tree_from_proof
from core.metamath.reader import read_database
from core.metamath.splits import SplitRatios, split_theorems
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel

logger = logging.getLogger(__name__)


@dataclass
class Workspace:
    """The database of an experiment with its grammar, kernel and theorem splits."""

    db: Database
    ratios: SplitRatios = field(default_factory=SplitRatios)
    split_salt: str = ""
    forbidden: frozenset[str] = frozenset()

    @staticmethod
    def load(
        path: str, *, stop_at: str = "", splits: str = "80/10/10", split_salt: str = "", forbidden: tuple[str, ...] = ()
    ) -> Workspace:
        start = time.perf_counter()
        db = read_database(path, stop_at=stop_at or None)
        logger.info("read %s: %d assertions in %.1f s", path, len(db.assertions), time.perf_counter() - start)
        return Workspace(db, SplitRatios.parse(splits), split_salt, frozenset(forbidden))

    @cached_property
    def grammar(self) -> Grammar:
        return Grammar(self.db)

    @cached_property
    def kernel(self) -> Kernel:
        return Kernel(self.db)

    @cached_property
    def splits(self) -> dict[str, list[Assertion]]:
        return split_theorems(self.db, self.ratios, self.split_salt)

    def train_theorems(self) -> list[Assertion]:
        return self.splits["train"]

    def split(self, name: str) -> list[Assertion]:
        return self.splits[name]

    @cached_property
    def held_out_labels(self) -> frozenset[str]:
        """The labels of the valid and test theorems."""
        return frozenset(a.label for name in ("valid", "test") for a in self.splits[name])

    @cached_property
    def held_out_statements(self) -> frozenset[Statement]:
        """The statements of the valid and test theorems (never a training target, under any hypotheses)."""
        return frozenset(a.statement for name in ("valid", "test") for a in self.splits[name])

    @cached_property
    def generator_forbidden(self) -> frozenset[str]:
        """Labels the generator may not apply: held-out theorems and the configured forbidden labels."""
        return self.held_out_labels | self.forbidden

    @cached_property
    def known_statements(self) -> frozenset[Statement]:
        """Every statement of an assertion of the provable typecode in the database."""
        typecode = self.db.provable_typecode
        return frozenset(a.statement for a in self.db.assertions if a.typecode == typecode)

    def is_known_statement(self, statement: Statement) -> bool:
        return statement in self.known_statements

    def proof_sizes(self, split: str = "train") -> list[int]:
        """The essential proof size of each theorem of ``split`` (its proof replayed by the kernel), the human
        proofs that generated theorems are compared with (``jobs.status``, ``benchmarks/generation.py``)."""
        return [tree_from_proof(self.db, theorem, self.kernel).size for theorem in self.split(split)]
