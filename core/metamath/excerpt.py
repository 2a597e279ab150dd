"""The text of a ``.mm`` file up to a label: what ``read_database(path, stop_at=label)`` reads, as a file.

Used to write a database with statements appended after its last statement (``python -m jobs.export``):
the excerpt is the file's text before the statement labelled ``stop_at`` (the whole file without it),
with the ``${`` blocks still open there closed, so that what follows is at the outermost level (where
:func:`~core.metamath.prooftree.make_theorem` places a theorem: its hypotheses are the outermost ones, not
those of the block ``stop_at`` is in; set.mm's ``ax-gen`` is in a block with its hypothesis ``ax-g.1``).
Split-file markers left open (set.mm's ``$( Begin $[ set-pred.mm $] $)``) get their ``End`` comment.
Files with includes (``$[ ... $]``) are refused: their excerpt is not one file.
"""

from __future__ import annotations

import os
import re

from core.errors import MetamathError

_TOKEN_RE = re.compile(r"\S+")
_STATEMENT_KEYWORDS = frozenset({"$a", "$p", "$e", "$f"})


def database_excerpt(path: str | os.PathLike[str], stop_at: str | None = None) -> str:
    """The text of ``path`` before the statement labelled ``stop_at`` (all of it if ``stop_at`` is empty).

    Raises :class:`MetamathError` for a file with includes, or a ``stop_at`` that labels no statement.
    """
    path = os.fspath(path)
    with open(path, encoding="latin-1", newline="") as handle:
        text = handle.read()
    depth, previous, previous_start = 0, "", 0
    comment: list[str] | None = None  # the first tokens of the comment being read
    markers: list[str] = []  # the files of the ``$( Begin $[ FILE $] $)`` comments not yet ended
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if comment is not None:
            if token == "$)":
                follow_marker(comment, markers)
                comment = None
            elif len(comment) < 4:
                comment.append(token)
            continue
        if token == "$(":
            comment = []
        elif token == "$[":
            raise MetamathError(
                "the database includes other files ($[ ... $]): its excerpt would not be one "
                "file; give the experiment a database without includes",
                file=path,
            )
        elif token == "${":
            depth += 1
        elif token == "$}":
            depth -= 1
        elif token in _STATEMENT_KEYWORDS and stop_at and previous == stop_at:
            return close_blocks(text[:previous_start], depth, markers, stop_at)
        previous, previous_start = token, match.start()
    if stop_at:
        raise MetamathError(f"no statement labelled {stop_at!r} in this file", file=path)
    return text


def follow_marker(comment: list[str], markers: list[str]) -> None:
    """Note a ``$( Begin $[ FILE $] $)`` comment, forget the last one at its ``$( End $[ FILE $] $)``."""
    if len(comment) == 4 and comment[1] == "$[" and comment[3] == "$]":
        if comment[0] == "Begin":
            markers.append(comment[2])
        elif comment[0] == "End" and markers and markers[-1] == comment[2]:
            markers.pop()


def close_blocks(text: str, depth: int, markers: list[str], stop_at: str) -> str:
    """``text`` ending with a newline, a ``$}`` for each block open before ``stop_at``, and the ``End``
    comments of its ``Begin $[ FILE $]`` markers (``metamath`` reads a Begin marker without its End as an
    include of FILE)."""
    text = text if text.endswith("\n") else text + "\n"
    if depth or markers:
        text += f"$( The database is cut here, before {stop_at}. $)\n" + "$}\n" * depth
        text += "".join(f"$( End $[ {name} $] $)\n" for name in reversed(markers))
    return text
