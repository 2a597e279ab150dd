"""Write proofs into a copy of a ``.mm`` file, leaving every other character untouched.

Used by ``reprove``, ``holes`` and the prover's command line (found proofs replace the ``?`` proofs), and
by anything else that writes proofs into a database. The file is scanned token by token, comments
skipped, to find where each ``$p``'s proof lies between ``$=`` and ``$.``; only those spans are replaced.

Proofs are laid out as set.mm lays them out (:func:`proof_lines`): the proof starts on the line after
``$=``, indented two spaces more than the line of the theorem's label; lines hold at most 79 characters;
the labels of a compressed proof, ``( ... )``, are wrapped at spaces, and its letters follow the ``)``
as one block cut at the line width; ``$.`` ends the last line when it fits there, else it gets a line
of its own. The file's line endings are kept (a file whose first line ends in CRLF gets CRLF proofs).
The output is written through :func:`core.files.write_text` (an exclusive temporary, then a rename).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from core.errors import MetamathError
from core.files import write_text

PROOF_WIDTH = 79
PROOF_INDENT_STEP = 2
_TOKEN_RE = re.compile(r"\S+")


class ProofSite(NamedTuple):
    """Where a ``$p`` lies in a file's text: its label's offset, and its proof text's (after ``$=``, before ``$.``)."""

    label_start: int
    start: int
    end: int


def proof_sites(text: str, path: str = "<text>") -> dict[str, ProofSite]:
    """Label -> :class:`ProofSite` of each ``$p`` of ``text``."""
    sites: dict[str, ProofSite] = {}
    previous: re.Match[str] | None = None
    label: re.Match[str] | None = None
    start = -1
    in_comment = False
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if in_comment:
            in_comment = token != "$)"
            continue
        if token == "$(":
            in_comment = True
            continue
        if token == "$p":
            label = previous
        elif token == "$=" and label is not None:
            start = match.end()
        elif token == "$." and label is not None:
            if start < 0:
                raise MetamathError("`$p` without `$=`", file=path, label=label.group())
            sites[label.group()] = ProofSite(label.start(), start, match.start())
            label, start = None, -1
        previous = match
    return sites


def proof_spans(text: str, path: str = "<text>") -> dict[str, tuple[int, int]]:
    """Label -> (start, end) character offsets of each ``$p``'s proof text (after ``$=``, before ``$.``)."""
    return {label: (site.start, site.end) for label, site in proof_sites(text, path).items()}


def newline_of(text: str) -> str:
    """The line ending of ``text``: CRLF if its first line ends so, else LF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def proof_indent(text: str, label_start: int) -> int:
    """The indentation of a proof: that of the line holding the label at ``label_start``, plus two."""
    line_start = text.rfind("\n", 0, label_start) + 1
    line = text[line_start:label_start]
    return len(line) - len(line.lstrip(" \t")) + PROOF_INDENT_STEP


def proof_lines(tokens: Sequence[str], indent: int, width: int = PROOF_WIDTH) -> list[str]:
    """The lines of a proof laid out as set.mm does (see the module docstring), the last one ending in ``$.``."""
    pad = " " * indent
    tokens = list(tokens)
    if tokens and tokens[0] == "(" and ")" in tokens:
        close = tokens.index(")")
        words, letters = tokens[: close + 1], "".join(tokens[close + 1 :])
        if close == 1:
            words = ["(  )"]  # no labels: metamath writes two spaces between the parentheses
    else:
        words, letters = tokens, ""
    lines = _flow_words(words, pad, width)
    lines = _flow_letters(lines, letters, pad, width)
    return _close(lines, pad, width)


def layout_proof(tokens: Sequence[str], indent: int, newline: str = "\n", width: int = PROOF_WIDTH) -> str:
    """The text that follows ``$=``: a line break, then the proof's lines through ``$.``."""
    return newline + newline.join(proof_lines(tokens, indent, width))


def _flow_words(words: Sequence[str], pad: str, width: int) -> list[str]:
    lines: list[str] = []
    line = pad
    for word in words:
        if line != pad and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = pad
        line += (" " if line != pad else "") + word
    lines.append(line)
    return lines


def _flow_letters(lines: list[str], letters: str, pad: str, width: int) -> list[str]:
    lines = list(lines)
    line = lines.pop()
    while letters:
        separator = " " if line != pad else ""
        room = width - len(line) - len(separator)
        if room <= 0 and line != pad:
            lines.append(line)
            line = pad
            continue
        room = max(room, 1)
        line += separator + letters[:room]
        letters = letters[room:]
        if letters:
            lines.append(line)
            line = pad
    lines.append(line)
    return lines


def _close(lines: list[str], pad: str, width: int) -> list[str]:
    lines = list(lines)
    last = lines.pop()
    if last == pad:
        lines.append(pad + "$.")
    elif len(last) + 3 <= width:
        lines.append(last + " $.")
    else:
        lines.extend([last, pad + "$."])
    return lines


def rewritten_text(text: str, proofs: Mapping[str, Sequence[str]], path: str = "<text>") -> str:
    """``text`` with the proofs of ``proofs`` (label -> proof tokens) replaced and laid out.

    Raises :class:`MetamathError` naming any label whose proof is not in ``text``.
    """
    sites = proof_sites(text, path)
    missing = [label for label in proofs if label not in sites]
    if missing:
        raise MetamathError(
            f"no `$p ... $=` proof text for {', '.join(missing[:5])} in this file "
            "(theorems from included files cannot be rewritten)",
            file=path,
        )
    newline = newline_of(text)
    pieces: list[str] = []
    cursor = 0
    for label, site in sorted(((label, sites[label]) for label in proofs), key=lambda item: item[1].start):
        pieces.append(text[cursor : site.start])
        pieces.append(layout_proof(proofs[label], proof_indent(text, site.label_start), newline))
        cursor = site.end + len("$.")
    pieces.append(text[cursor:])
    return "".join(pieces)


def rewrite_proofs(
    path: str | os.PathLike[str],
    proofs: Mapping[str, Sequence[str]],
    out: str | os.PathLike[str],
    *,
    keep_links: bool = False,
) -> int:
    """Copy ``path`` to ``out`` with the proofs of ``proofs`` (label -> proof tokens) replaced.

    Returns the number of proofs replaced; raises :class:`MetamathError` naming any label whose proof
    is not in this file (for example a theorem that lives in an included file). ``keep_links`` is
    :func:`core.files.write_text`'s (for ``--in-place``: a hard-linked ``out`` is rewritten in place).
    """
    path, out = os.fspath(path), os.fspath(out)
    with open(path, encoding="latin-1", newline="") as handle:
        text = handle.read()
    write_text(out, rewritten_text(text, proofs, path), encoding="latin-1", keep_links=keep_links)
    return len(proofs)
