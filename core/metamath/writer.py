"""Write proofs into a copy of a ``.mm`` file, leaving every other character untouched.

Used by ``reprove`` (every proof re-exported through proof trees) and by the prover's command line
(found proofs replace the ``?`` proofs). The file is scanned token by token, comments skipped, to find
where each ``$p``'s proof text lies between ``$=`` and ``$.``; only those spans are replaced.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

from core.errors import MetamathError
from core.metamath.proof import format_proof

_TOKEN_RE = re.compile(r"\S+")


def proof_spans(text: str, path: str = "<text>") -> dict[str, tuple[int, int]]:
    """Label -> (start, end) character offsets of each ``$p``'s proof text (after ``$=``, before ``$.``)."""
    spans: dict[str, tuple[int, int]] = {}
    previous = ""
    label: str | None = None
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
                raise MetamathError("`$p` without `$=`", file=path, label=label)
            spans[label] = (start, match.start())
            label, start = None, -1
        previous = token
    return spans


def rewrite_proofs(path: str | os.PathLike[str], proofs: Mapping[str, Sequence[str]], out: str | os.PathLike[str]) -> int:
    """Copy ``path`` to ``out`` with the proofs of ``proofs`` (label -> proof tokens) replaced.

    Returns the number of proofs replaced; raises :class:`MetamathError` naming any label whose proof
    is not in this file (for example a theorem that lives in an included file).
    """
    path, out = os.fspath(path), os.fspath(out)
    with open(path, encoding="latin-1", newline="") as handle:
        text = handle.read()
    spans = proof_spans(text, path)
    missing = [label for label in proofs if label not in spans]
    if missing:
        raise MetamathError(f"no `$p ... $=` proof text for {', '.join(missing[:5])} in this file "
                            "(theorems from included files cannot be rewritten)", file=path)
    pieces: list[str] = []
    cursor = 0
    for label, (start, end) in sorted(((l, spans[l]) for l in proofs), key=lambda item: item[1][0]):
        pieces.append(text[cursor:start])
        pieces.append("\n" + format_proof(list(proofs[label])) + "\n      ")
        cursor = end
    pieces.append(text[cursor:])
    tmp = f"{out}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="latin-1", newline="") as handle:
        handle.write("".join(pieces))
    os.replace(tmp, out)
    return len(proofs)
