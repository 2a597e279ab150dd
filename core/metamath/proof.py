"""Proof formats: decoding normal and compressed proofs, and writing proofs back out.

A proof is decoded into a :class:`ProofProgram`, a program for the Metamath stack machine:
a table of labels and a list of operations (push or apply ``labels[i]``, save the top of the stack,
reuse a saved step). Normal and compressed proofs decode to the same kind of program, so the verifier
has one loop for both.

For writing, a proof is a :class:`ProofStep` tree (every step, syntax steps included). Normal form is
its post-order; compressed form (Metamath book, appendix B) shares identical subtrees with ``Z`` marks.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from core.errors import MMVerificationError
from core.metamath.database import Assertion, Database, Hypothesis
from core.metamath.writer import proof_lines

_LABEL_OF = operator.attrgetter("label")
_NUMBER_OF = operator.attrgetter("number")
SAVE = -1  # operation: save the top of the stack (a ``Z`` in a compressed proof)
UNKNOWN = "?"


class ProofProgram(NamedTuple):
    """A decoded proof: ``0 <= op < len(labels)`` applies ``labels[op]``, ``SAVE`` saves the top of the stack,
    ``op >= len(labels)`` pushes saved step ``op - len(labels)`` again.

    (So a machine that appends each saved step to its table of labels finds it at its op, as it finds a
    hypothesis: the compressed format's own numbering. A named tuple: immutable and quick to build, one
    per proof checked.)
    """

    labels: tuple[str, ...]
    ops: tuple[int, ...]

    @property
    def is_incomplete(self) -> bool:
        return UNKNOWN in self.labels

    def reuse(self, index: int) -> int:
        """The operation that pushes saved step ``index`` again."""
        return len(self.labels) + index


def _fail(assertion: Assertion, reason: str) -> MMVerificationError:
    return MMVerificationError(reason, file=assertion.file, line=assertion.line, label=assertion.label)


def proof_hypotheses(assertion: Assertion) -> dict[str, Hypothesis]:
    """The hypotheses a proof of ``assertion`` may cite: its frame plus every active floating one."""
    usable = {h.label: h for h in assertion.context_floating}
    usable.update((h.label, h) for h in assertion.hypotheses)
    return usable


def check_citable(db: Database, assertion: Assertion, label: str, hypotheses: Mapping[str, Hypothesis]) -> None:
    """Raise unless ``label`` may appear in the proof of ``assertion``.

    ``hypotheses`` holds hypotheses known to be citable (the frame, or all of :func:`proof_hypotheses`);
    a floating hypothesis not in it is still citable when it was active at ``assertion``.
    """
    if label == UNKNOWN or label in hypotheses:
        return
    target = db.labels.get(label)
    if target is None:
        raise _fail(assertion, f"proof cites {label!r}, which is not a label of the database")
    if isinstance(target, Hypothesis):
        if target.kind == "f" and any(h is target for h in assertion.context_floating):
            return
        raise _fail(assertion, f"proof cites hypothesis {label!r}, which is not active for this theorem")
    if target.number >= assertion.number:
        what = "the theorem itself" if target is assertion else "an assertion declared later"
        raise _fail(assertion, f"proof cites {label!r}, {what}")


def decode_proof(db: Database, assertion: Assertion) -> ProofProgram:
    """Decode the normal or compressed proof of a ``$p`` (without checking that it proves anything)."""
    proof = assertion.proof
    if not proof:
        raise _fail(assertion, "has no proof to decode")
    if proof[0] == "(":
        return _decode_compressed(db, assertion, proof)
    hypotheses = {h.label: h for h in assertion.hypotheses}
    labels: dict[str, int] = {}
    ops = []
    for label in proof:
        index = labels.get(label)
        if index is None:
            check_citable(db, assertion, label, hypotheses)
            index = labels[label] = len(labels)
        ops.append(index)
    return ProofProgram(tuple(labels), tuple(ops))


def _decode_compressed(db: Database, assertion: Assertion, proof: tuple[str, ...]) -> ProofProgram:
    labels, letters, mandatory, dummies = compressed_parts(db, assertion, proof)
    ops = _decode_letters(assertion, letters, len(labels), mandatory, dummies)
    return ProofProgram((*labels, UNKNOWN) if UNKNOWN in letters else labels, ops)


def compressed_parts(
    db: Database, assertion: Assertion, proof: tuple[str, ...]
) -> tuple[tuple[str, ...], str, int, frozenset[int]]:
    """A compressed proof's labels (mandatory hypotheses, then those listed), letters, number of mandatory
    hypotheses and indices of listed hypotheses; raises unless every listed label may be cited."""
    try:
        closing = proof.index(")")
    except ValueError:
        raise _fail(assertion, "compressed proof: the label list `( ...` is never closed by `)`") from None
    listed = proof[1:closing]
    mandatory = tuple(map(_LABEL_OF, assertion.hypotheses))
    dummies: frozenset[int] = _NO_DUMMIES  # indices of listed labels that are hypotheses (of dummy variables)
    try:  # the common case, checked in C: every listed label is an earlier assertion
        listed_checked = max(map(_NUMBER_OF, map(db.labels.get, listed)), default=-1) < assertion.number
    except AttributeError:  # a hypothesis, an unknown label or `?` (they have no number): one by one below
        listed_checked = False
    for index, label in enumerate(() if listed_checked else listed, len(mandatory)):
        target = db.labels.get(label)
        if target.__class__ is Assertion and target.number < assertion.number:
            continue
        frame = {h.label: h for h in assertion.hypotheses}
        if label in frame:
            raise _fail(assertion, f"compressed proof lists mandatory hypothesis {label!r} (it is implicit)")
        if label == UNKNOWN:
            raise _fail(assertion, "compressed proof lists `?` among its labels (`?` belongs in the letters)")
        check_citable(db, assertion, label, frame)
        dummies = dummies | {index}
    if len(listed) > 1 and len(set(listed)) != len(listed):
        raise _fail(assertion, "compressed proof lists a label twice")
    return mandatory + listed, "".join(proof[closing + 1 :]), len(mandatory), dummies


# A compressed proof's letters: steps `[U-Y]*[A-T]` (a number in base 20/5) or `?`, each maybe followed by `Z`.
# The pattern never backtracks (a run of U..Y not ended by A..T is taken whole, as a step that _UNFINISHED_RE
# then finds): `[U-Y]*[A-T]` alone would scan such a run again from each of its letters, quadratic in its length.
_STEP_RE = re.compile(r"[U-Y]+[A-T]?|[A-T]|[Z?]")
_UNFINISHED_RE = re.compile(r"[U-Y](?![A-Y])")  # a number's higher digit with no last digit after it
_UNKNOWN_OP = -2  # what _STEP_OPS gives `?` (see _decode_letters)
_NO_DUMMIES: frozenset[int] = frozenset()


_CACHED_STEP_LETTERS = 6  # step texts up to this long are remembered (at most 20 * 5**5 of them)
MAX_STEP_LETTERS = 14
"""Longest step number decoded: 14 letters name steps from 20 * 5**12 on (about 4.9e9), more than any
proof's labels and saved steps can reach, so a longer number is that proof's error, found in constant time."""
TOO_LARGE = 1 << 62
"""The operation of a step number longer than :data:`MAX_STEP_LETTERS`: beyond every label and saved step."""


class _StepOps(dict[str, int]):
    """Step text -> its operation: its number minus one (``Z`` -> ``SAVE``), computed once per distinct text.

    Step ``n`` of a compressed proof is label ``n - 1`` up to the label count and saved step ``n - 1 -
    label count`` beyond it, so its number minus one is the operation of a :class:`ProofProgram`. Short
    texts are remembered (a bounded table); a text longer than :data:`MAX_STEP_LETTERS` is
    :data:`TOO_LARGE`, so decoding stays linear in the letters however long a number is.
    """

    def __missing__(self, text: str) -> int:
        if len(text) > MAX_STEP_LETTERS:
            return TOO_LARGE
        value = 0
        for letter in text[:-1]:
            value = value * 5 + ord(letter) - 84  # U..Y: 1..5
        op = value * 20 + ord(text[-1]) - 65  # A..T: 1..20, minus one
        if len(text) <= _CACHED_STEP_LETTERS:
            self[text] = op
        return op


_STEP_OPS = _StepOps({"Z": SAVE, "?": _UNKNOWN_OP})
_ONE_LETTER_STEPS = frozenset("ABCDEFGHIJKLMNOPQRSTZ")


def _decode_letters(
    assertion: Assertion, letters: str, label_count: int, mandatory: int, dummies: frozenset[int]
) -> tuple[int, ...]:
    """Operations from a compressed proof's letter string (``label_count`` labels, ``?`` not counted).

    The labels below index ``mandatory``, and those in ``dummies``, are hypotheses: a `Z` may not follow
    them, nor a reused step. The Metamath book only says `Z` tags a step for reuse; the reference
    verifier ``metamath`` accepts it only after an ``$a``/``$p`` step (or `?`), and so does this kernel,
    so that every proof it accepts is accepted there too. The letters are turned into operations by C
    code (one dict lookup per step); only the steps around a `Z` or a reuse are checked one by one.
    """
    if _ONE_LETTER_STEPS.issuperset(letters):
        steps: Iterable[str] = letters  # every letter is a step: no regex needed
        well_formed = True
    else:  # some step needs more than one letter, or is `?`, or a letter is bad
        steps = _STEP_RE.findall(letters)
        # findall skipped nothing (no bad letter), and no number is left unfinished
        well_formed = "".join(steps) == letters and _UNFINISHED_RE.search(letters) is None
    if not well_formed or letters.startswith("Z") or "ZZ" in letters:  # and every `Z` follows a step
        _raise_letter_error(assertion, letters)
    ops: list[int] = []
    append = ops.append
    saved = 0
    for op in map(_STEP_OPS.__getitem__, steps):
        if op >= label_count:
            if op - label_count >= saved:
                raise _fail(assertion, _unsaved_step_reason(len(ops) + 1, op, label_count, saved))
        elif op == SAVE:
            previous = ops[-1]  # there is one: the letters do not start with `Z`
            if (previous < mandatory and previous != _UNKNOWN_OP) or previous in dummies or previous >= label_count:
                raise _fail(
                    assertion,
                    f"compressed proof: `Z` at step {len(ops) + 1} follows a hypothesis or a "
                    "reused step; only assertion steps may be saved",
                )
            saved += 1
        append(op)
    if _UNKNOWN_OP in ops:  # `?` is the label after the others: saved steps come one later
        return tuple(label_count if op == _UNKNOWN_OP else op + 1 if op >= label_count else op for op in ops)
    return tuple(ops)


def _unsaved_step_reason(step: int, op: int, label_count: int, saved: int) -> str:
    """Why step ``step`` (operation ``op``, beyond the ``label_count`` labels) is not a saved step."""
    if op == TOO_LARGE:
        return (
            f"compressed proof step {step} is a number of more than {MAX_STEP_LETTERS} letters, larger "
            "than any step of a proof"
        )
    return f"compressed proof step {step} refers to saved step {op - label_count + 1}, but only {saved} are saved"


def lazy_operations(letters: str) -> Iterator[int] | None:
    """The operations of a compressed proof's letters, computed as they are taken; ``None`` unless the
    letters are well formed and hold no ``?``.

    Unlike :func:`decode_proof`, nothing checks that a `Z` follows an assertion step or that a reused
    step was saved: a machine running these must check both (:meth:`core.metamath.verifier.Kernel.verify`
    does), or decode the proof.
    """
    if _ONE_LETTER_STEPS.issuperset(letters):
        steps: Iterable[str] = letters
    else:
        steps = _STEP_RE.findall(letters)
        if "".join(steps) != letters or UNKNOWN in letters or _UNFINISHED_RE.search(letters) is not None:
            return None
    if letters.startswith("Z") or "ZZ" in letters:
        return None
    return map(_STEP_OPS.__getitem__, steps)


def _raise_letter_error(assertion: Assertion, letters: str) -> None:
    """Raise an error naming the first letter that breaks the compressed-proof grammar."""
    in_number = False  # after a U..Y digit: the number's last letter (A..T) must follow
    can_save = False
    for position, letter in enumerate(letters):
        code = ord(letter)
        if 65 <= code <= 84:  # A..T: last digit of a number
            in_number = False
            can_save = True
        elif 85 <= code <= 89:  # U..Y: higher digits
            in_number = True
            can_save = False
        elif letter == "Z":
            if not can_save or in_number:
                raise _fail(assertion, f"compressed proof: misplaced `Z` at letter {position + 1}")
            can_save = False
        elif letter == UNKNOWN:
            if in_number:
                raise _fail(assertion, f"compressed proof: `?` inside a number at letter {position + 1}")
            can_save = True
        else:
            raise _fail(assertion, f"compressed proof: invalid character {letter!r} at letter {position + 1}")
    if in_number:
        raise _fail(assertion, "compressed proof ends in the middle of a number")
    raise _fail(assertion, "compressed proof: malformed letters")  # unreachable: the grammar above is complete


# --- Writing proofs -------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class ProofStep:
    """One step of a complete proof: a label applied to the proofs of its hypotheses (in frame order)."""

    label: str
    children: tuple[ProofStep, ...] = ()


def normal_proof(root: ProofStep) -> list[str]:
    """The proof's labels in post-order: Metamath's normal (uncompressed) form."""
    out: list[str] = []
    stack: list[tuple[ProofStep, bool]] = [(root, False)]
    while stack:
        step, expanded = stack.pop()
        if expanded or not step.children:
            out.append(step.label)
            continue
        stack.append((step, True))
        stack.extend((child, False) for child in reversed(step.children))
    return out


def compressed_proof(assertion: Assertion, root: ProofStep) -> list[str]:
    """The proof in compressed form: ``( labels ) LETTERS`` as tokens, identical subproofs shared."""
    keys: dict[tuple, int] = {}
    ids: dict[int, int] = {}  # id(step) -> structural key number
    counts: dict[int, int] = {}
    order: list[ProofStep] = []

    def key_of(step: ProofStep) -> int:
        return ids[id(step)]

    for step in _post_order(root):
        key = (step.label, tuple(key_of(c) for c in step.children))
        number = keys.setdefault(key, len(keys))
        ids[id(step)] = number
        counts[number] = counts.get(number, 0) + 1
        order.append(step)
    mandatory = [h.label for h in assertion.hypotheses]
    listed: list[str] = []
    for step in order:
        if step.label not in mandatory and step.label not in listed and step.label != UNKNOWN:
            listed.append(step.label)
    numbers = {label: i + 1 for i, label in enumerate(mandatory + listed)}
    letters = _letters(root, numbers, key_of, counts, len(numbers))
    return ["(", *listed, ")", *_wrap(letters, 70)]


def _post_order(root: ProofStep) -> Iterator[ProofStep]:
    stack: list[tuple[ProofStep, bool]] = [(root, False)]
    while stack:
        step, expanded = stack.pop()
        if expanded or not step.children:
            yield step
            continue
        stack.append((step, True))
        stack.extend((child, False) for child in reversed(step.children))


def _letters(
    root: ProofStep,
    numbers: dict[str, int],
    key_of: Callable[[ProofStep], int],
    counts: dict[int, int],
    label_count: int,
) -> str:
    saved: dict[int, int] = {}  # structural key -> saved index
    out: list[str] = []
    stack: list[tuple[ProofStep, bool]] = [(root, False)]
    while stack:
        step, expanded = stack.pop()
        key = key_of(step)
        if not expanded and key in saved:
            out.append(encode_number(label_count + saved[key] + 1))
            continue
        if not expanded and step.children:
            stack.append((step, True))
            stack.extend((child, False) for child in reversed(step.children))
            continue
        out.append("?" if step.label == UNKNOWN else encode_number(numbers[step.label]))
        if step.children and counts[key] > 1:
            saved[key] = len(saved)
            out.append("Z")
    return "".join(out)


def encode_number(number: int) -> str:
    """A positive step number in compressed-proof letters (``1`` -> ``A``, ``21`` -> ``UA``)."""
    number -= 1
    digits = [chr(65 + number % 20)]
    number //= 20
    while number > 0:
        number -= 1
        digits.append(chr(85 + number % 5))
        number //= 5
    return "".join(reversed(digits))


def _wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def format_proof(tokens: Sequence[str], indent: int = 6, width: int = 79) -> str:
    """Proof tokens laid out as :func:`core.metamath.writer.proof_lines` does, without the closing ``$.``."""
    lines = proof_lines(tokens, indent, width)
    last = lines[-1][: -len("$.")].rstrip()
    return "\n".join(lines[:-1] + ([last] if last else []))
