"""Deterministic train/valid/test splits of a database's theorems.

A theorem's split depends only on a hash of its label (and an optional salt), never on the order or the
size of the database, so the split is the same on every machine, for every role, in every run. Only
theorems of the provable typecode with complete proofs are split (syntax theorems and ``?`` proofs
are not training or evaluation material).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.errors import ConfigError
from core.metamath.database import Assertion, Database

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True, slots=True)
class SplitRatios:
    """Fractions of theorems in train, valid and test (they must sum to 1)."""

    train: float = 0.8
    valid: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for name in SPLITS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ConfigError(f"split ratio {name!r} must be a number in [0, 1], got {value!r}")
        if abs(self.train + self.valid + self.test - 1) > 1e-9:
            raise ConfigError(f"split ratios must sum to 1, got {self.train} + {self.valid} + {self.test}")

    @staticmethod
    def parse(text: str) -> SplitRatios:
        """``"80/10/10"`` or ``"0.8,0.1,0.1"`` -> ratios."""
        parts = text.replace("/", ",").split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"split ratios {text!r} must be three numbers like 80/10/10") from None
        if len(values) != 3:
            raise ConfigError(f"split ratios {text!r} must be three numbers like 80/10/10")
        total = sum(values)
        if total <= 0:
            raise ConfigError(f"split ratios {text!r} must not all be zero")
        return SplitRatios(*(v / total for v in values))


def split_of(label: str, ratios: SplitRatios = SplitRatios(), salt: str = "") -> str:
    """The split (``train``, ``valid`` or ``test``) of the theorem labelled ``label``."""
    digest = hashlib.sha256(f"{salt}{label}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < ratios.train:
        return "train"
    if position < ratios.train + ratios.valid:
        return "valid"
    return "test"


def splittable(db: Database) -> list[Assertion]:
    """The theorems that belong to a split: complete ``$p`` proofs of the provable typecode."""
    return [a for a in db.assertions if a.kind == "p" and a.typecode == db.provable_typecode and not a.is_incomplete]


def split_theorems(db: Database, ratios: SplitRatios = SplitRatios(), salt: str = "") -> dict[str, list[Assertion]]:
    """Each split's theorems, in database order."""
    splits: dict[str, list[Assertion]] = {name: [] for name in SPLITS}
    for theorem in splittable(db):
        splits[split_of(theorem.label, ratios, salt)].append(theorem)
    return splits
