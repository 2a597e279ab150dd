"""Where advprover's embedded Metamath database lives.

``core/metamath/databases/hilbert.mm`` is Hilbert-style classical propositional calculus in set.mm's
notation and labels (98 theorems with proofs checked by the kernel and by ``metamath``). It ships
with the package (``package-data`` in pyproject.toml), so everything runs on a machine with no other
database: it is the default for tests, tiny presets and ``./launch.sh``.
"""

from __future__ import annotations

import pathlib

from core.errors import MetamathError

EMBEDDED_DATABASE = "hilbert.mm"


def embedded_database_path() -> pathlib.Path:
    """The path of the embedded database ``hilbert.mm``; a :class:`MetamathError` if it is missing."""
    path = pathlib.Path(__file__).resolve().with_name("databases") / EMBEDDED_DATABASE
    if not path.is_file():
        raise MetamathError(
            "the embedded database is missing from the installed package: reinstall advprover "
            "(pyproject.toml ships core/metamath/databases/*.mm as package data)",
            file=str(path),
        )
    return path
