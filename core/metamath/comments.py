"""What the comments of a ``.mm`` file say about its statements: the ``(New usage is discouraged.)`` mark.

In set.mm and its relatives, a statement whose comment (the ``$( ... $)`` just before its label) holds
``(New usage is discouraged.)`` must not be cited by new proofs (metamath's ``verify markup`` and its
``discouraged`` file enforce it). The reader drops comments, so the mark is found here, in the text:
the mark is looked for (its words may be split over lines), and the label of the ``$a`` or ``$p``
statement that follows the comment holding it is taken.
"""

from __future__ import annotations

import os
import re

from core.metamath.database import Database

DISCOURAGED_MARK = "(New usage is discouraged.)"
_MARK_RE = re.compile(r"\(New\s+usage\s+is\s+discouraged\.\)")
_STATEMENT_AFTER_RE = re.compile(r"\s+([A-Za-z0-9._-]+)\s+\$[ap]\s")


def discouraged_labels(text: str) -> set[str]:
    """The labels of the ``$a``/``$p`` statements of ``text`` whose comment holds :data:`DISCOURAGED_MARK`."""
    labels: set[str] = set()
    for mark in _MARK_RE.finditer(text):
        opened, closed_before = text.rfind("$(", 0, mark.start()), text.rfind("$)", 0, mark.start())
        end = text.find("$)", mark.end())
        if opened <= closed_before or end < 0:  # not inside a comment
            continue
        statement = _STATEMENT_AFTER_RE.match(text, end + len("$)"))
        if statement is not None:
            labels.add(statement.group(1))
    return labels


def database_discouraged_labels(db: Database) -> set[str]:
    """The assertions of ``db`` (every file it includes) marked ``(New usage is discouraged.)``."""
    labels: set[str] = set()
    for path in db.files:
        with open(os.fspath(path), encoding="latin-1") as handle:
            labels |= discouraged_labels(handle.read())
    return {label for label in labels if label in db}
