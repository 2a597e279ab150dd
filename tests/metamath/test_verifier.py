"""The verifier: good proofs verify (normal, compressed, Z reuse, dummy variables with $d), and every kind of
broken proof is rejected with a message naming the file, the line, the theorem, the proof step and the reason.

MINI is a small database whose proofs the reference verifier ``metamath`` accepts (checked in
``test_mini_database_is_accepted_by_the_reference_verifier``); each rejection test breaks one of its
proofs, so every rejection has its accepted twin.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from core.errors import MetamathError, MMVerificationError
from core.metamath import Kernel, read_database, verify_database
from core.metamath.proof import SAVE, decode_proof
from core.metamath.verifier import RuleError

MINI = """\
$c ( ) -> wff |- A. = set $.
$v ph ps ch x y z $.
wph $f wff ph $.
wps $f wff ps $.
wch $f wff ch $.
vx $f set x $.
vy $f set y $.
vz $f set z $.
wi $a wff ( ph -> ps ) $.
wal $a wff A. x ph $.
weq $a wff x = y $.
ax-1 $a |- ( ph -> ( ps -> ph ) ) $.
ax-2 $a |- ( ( ph -> ( ps -> ch ) ) -> ( ( ph -> ps ) -> ( ph -> ch ) ) ) $.
${
  min $e |- ph $.
  maj $e |- ( ph -> ps ) $.
  ax-mp $a |- ps $.
$}
${
  $d x y $.
  ax-dist $a |- A. x x = y $.
$}
${
  drop.1 $e |- A. x x = y $.
  ax-drop $a |- ( ph -> ph ) $.
$}
${
  a1i.1 $e |- ph $.
  a1i $p |- ( ps -> ph ) $= wph wps wph wi a1i.1 wph wps ax-1 ax-mp $.
$}
id $p |- ( ph -> ph ) $= wph wph wph wi wi wph wph wi wph wph ax-1 wph wph wph wi wph wi wi wph wph wph wi wi
  wph wph wi wi wph wph wph wi ax-1 wph wph wph wi wph ax-2 ax-mp ax-mp $.
${
  $d x z $.
  th-dummy $p |- ( ph -> ph ) $= wph vx vz vx vz ax-dist ax-drop $.
  th-dummy-c $p |- ( ph -> ph ) $= ( vx vz ax-dist ax-drop ) ABCBCDE $.
$}
id-c $p |- ( ph -> ph ) $= ( wi ax-1 ax-2 ax-mp ) AAABZBZFAACAFABBGFBAFCAFADEE $.
"""
GOOD = ["a1i", "id", "th-dummy", "th-dummy-c", "id-c"]


def write(tmp_path: Path, text: str, name: str = "mini.mm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def replace_proof(text: str, label: str, proof: str, statement: str | None = None) -> str:
    """``text`` with the proof (and optionally the statement) of theorem ``label`` replaced."""
    pattern = re.compile(rf"^(\s*{re.escape(label)} \$p )(.*?)( \$= )(.*?)( \$\.)", re.M | re.S)
    match = pattern.search(text)
    assert match, label
    new = f"{match.group(1)}{statement or match.group(2)}{match.group(3)}{proof}{match.group(5)}"
    return text[: match.start()] + new + text[match.end() :]


def failure_of(tmp_path: Path, text: str, label: str) -> MetamathError:
    """The one verification failure of ``text``, which must be on theorem ``label``."""
    report = verify_database(read_database(write(tmp_path, text)))
    assert len(report.failures) == 1, report.failures
    error = report.failures[0]
    assert error.label == label and error.file == str(tmp_path / "mini.mm")
    assert error.line == line_of(text, f"{label} $p")
    assert str(error).startswith(f"{tmp_path / 'mini.mm'}:{error.line}, label {label}: ")
    return error


# --- good proofs ------------------------------------------------------------------------------------


def test_good_proofs_verify(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    report = verify_database(db)
    assert report.ok, report.failures
    assert report.verified == len(GOOD) and report.incomplete == []
    kernel = Kernel(db)
    for label in GOOD:
        kernel.verify(db.assertion(label))
        assert kernel.run(db.assertion(label)) == db.assertion(label).statement


def test_mini_database_is_accepted_by_the_reference_verifier(tmp_path: Path, metamath_exe: str) -> None:
    path = write(tmp_path, MINI)
    done = subprocess.run(
        [metamath_exe, f'read "{path}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=60
    )
    assert "All proofs in the database were verified" in done.stdout, done.stdout


def test_compressed_proof_reuses_saved_steps(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    program = decode_proof(db, db.assertion("id-c"))
    assert program.labels == ("wph", "wi", "ax-1", "ax-2", "ax-mp")
    assert SAVE in program.ops and program.reuse(0) in program.ops and program.reuse(1) in program.ops
    normal = decode_proof(db, db.assertion("id"))
    expand = lambda p: _expand(p.labels, p.ops)  # noqa: E731
    assert expand(program) == expand(normal)  # the same proof, written twice


def _expand(labels: tuple[str, ...], ops: tuple[int, ...]) -> list[str]:
    """A decoded proof as the normal proof it stands for (saved steps written out again)."""
    arity = {"wph": 0, "wi": 2, "ax-1": 2, "ax-2": 3, "ax-mp": 4}
    stack: list[list[str]] = []
    saved: list[list[str]] = []
    for op in ops:
        if op >= len(labels):
            stack.append(saved[op - len(labels)])
        elif op >= 0:
            n = arity[labels[op]]
            args = [x for part in stack[len(stack) - n :] for x in part] if n else []
            del stack[len(stack) - n :]
            stack.append([*args, labels[op]])
        elif op == SAVE:
            saved.append(stack[-1])
    return stack[0]


def test_dummy_variable_needs_its_disjoint_condition_only_in_the_context(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    th = db.assertion("th-dummy")
    assert th.variables == ("ph",) and th.disjoint == frozenset()
    assert ("x", "z") in th.context_disjoint
    assert {"vx", "vz"} <= {h.label for h in th.context_floating}


# --- broken proofs: each names the step and the reason -----------------------------------------------

A1I = "wph wps wph wi a1i.1 wph wps ax-1 ax-mp"
DUMMY = "wph vx vz vx vz ax-dist ax-drop"

BROKEN = [
    # (id, theorem, new proof, new statement or None, expected words)
    (
        "wrong essential hypothesis",
        "a1i",
        "wps wps wph wi a1i.1 wph wps ax-1 ax-mp",
        None,
        "proof step 9: hypothesis min of ax-mp needs '|- ps', got '|- ph'",
    ),
    ("stack underflow", "a1i", "wph ax-mp", None, "proof step 2: ax-mp needs 4 hypotheses, the stack holds 1"),
    (
        "stack left with two entries",
        "a1i",
        A1I + " wph",
        None,
        "proof step 10: proof ends with 2 statements on the stack",
    ),
    ("empty stack at the end", "a1i", "( ) ", None, "proof ends with 0 statements on the stack"),
    (
        "typecode mismatch on a floating hypothesis",
        "a1i",
        "wph wps wph wi a1i.1 wph a1i.1 ax-1 ax-mp",
        None,
        "proof step 8: hypothesis wps of ax-1 needs a 'wff' expression, got '|- ph'",
    ),
    (
        "$d violated: the same variable on both sides",
        "th-dummy",
        "wph vx vx vx vx ax-dist ax-drop",
        None,
        "proof step 6: $d x y of ax-dist is violated: both are substituted with expressions containing 'x'",
    ),
    ("proof of another statement", "a1i", A1I, "|- ( ph -> ps )", "proof proves '|- ( ps -> ph )', not the statement"),
    (
        "compressed: last step replaced by a reuse",
        "id-c",
        "( wi ax-1 ax-2 ax-mp ) AAABZBZFAACAFABBGFBAFCAFADEF",
        None,
        "proof step 28: proof ends with 5 statements on the stack, not 1",
    ),
    (
        "compressed: ax-2 replaced by ax-1",
        "id-c",
        "( wi ax-1 ax-2 ax-mp ) AAABZBZFAACAFABBGFBAFCAFACEE",
        None,
        "proof step 27: hypothesis wps of ax-mp needs a 'wff' expression, got '|- ( ph -> ( ( ph -> ph ) -> ph ) )'",
    ),
    ("compressed: invalid letter", "id-c", "( wi ax-1 ax-2 ax-mp ) AAAB!", None, "invalid character '!' at letter 5"),
    ("compressed: lower-case letter", "id-c", "( wi ax-1 ax-2 ax-mp ) AAaB", None, "invalid character 'a' at letter 3"),
    ("compressed: Z first", "id-c", "( wi ax-1 ax-2 ax-mp ) ZAAB", None, "misplaced `Z` at letter 1"),
    ("compressed: Z twice", "id-c", "( wi ax-1 ax-2 ax-mp ) AAABZZ", None, "misplaced `Z` at letter 6"),
    ("compressed: Z inside a number", "id-c", "( wi ax-1 ax-2 ax-mp ) AAUZA", None, "misplaced `Z` at letter 4"),
    ("compressed: number not finished", "id-c", "( wi ax-1 ax-2 ax-mp ) AAABU", None, "ends in the middle of a number"),
    (
        "compressed: reuse before save",
        "id-c",
        "( wi ax-1 ax-2 ax-mp ) AAFBZ",
        None,
        "refers to saved step 1, but only 0",
    ),
    (
        "compressed: reuse of a step saved later",
        "id-c",
        "( wi ax-1 ax-2 ax-mp ) AAABZGAABZ",
        None,
        "step 6 refers to saved step 2, but only 1 are saved",
    ),
    (
        "compressed: Z after a hypothesis",
        "id-c",
        "( wi ax-1 ax-2 ax-mp ) AZAB",
        None,
        "`Z` at step 2 follows a hypothesis",
    ),
    (
        "compressed: Z after a reused step",
        "id-c",
        "( wi ax-1 ax-2 ax-mp ) AAABZFZ",
        None,
        "`Z` at step 7 follows a hypothesis or a reused step",
    ),
    ("compressed: label list not closed", "id-c", "( wi ax-1 ax-2 ax-mp AAAB", None, "never closed by `)`"),
    (
        "compressed: lists a mandatory hypothesis",
        "id-c",
        "( wph wi ax-1 ax-2 ax-mp ) AAABZ",
        None,
        "lists mandatory hypothesis 'wph'",
    ),
    ("compressed: lists a label twice", "id-c", "( wi wi ax-1 ax-2 ax-mp ) AAB", None, "lists a label twice"),
    ("compressed: lists `?`", "id-c", "( wi ? ax-2 ax-mp ) AAB", None, "lists `?` among its labels"),
    (
        "cites a later assertion",
        "a1i",
        "wph wps wph wi a1i.1 wph wps id ax-mp",
        None,
        "proof cites 'id', an assertion declared later",
    ),
    ("cites itself", "id", "wph wph wi id", None, "proof cites 'id', the theorem itself"),
    ("cites an inactive hypothesis", "id", "wph maj", None, "proof cites hypothesis 'maj', which is not active"),
    ("cites an unknown label", "id", "wph nosuch", None, "proof cites 'nosuch', which is not a label"),
    (
        "compressed: lists an inactive hypothesis",
        "id-c",
        "( wi min ) AAB",
        None,
        "proof cites hypothesis 'min', which is not active",
    ),
    ("compressed: lists a later assertion", "a1i", "( wi id ) AB", None, "'id', an assertion declared later"),
    ("compressed: lists an unknown label", "id-c", "( wi nosuch ) AAB", None, "'nosuch', which is not a label"),
]


@pytest.mark.parametrize("label, proof, statement, words", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_proof_is_rejected_naming_step_and_reason(
    tmp_path: Path, label: str, proof: str, statement: str | None, words: str
) -> None:
    error = failure_of(tmp_path, replace_proof(MINI, label, proof, statement), label)
    assert isinstance(error, MMVerificationError)
    assert words in error.reason, str(error)


def test_missing_disjoint_condition_in_the_theorem_context_is_rejected(tmp_path: Path) -> None:
    text = MINI.replace("  $d x z $.\n", "")
    report = verify_database(read_database(write(tmp_path, text)))
    assert [e.label for e in report.failures] == ["th-dummy", "th-dummy-c"]  # both proof formats
    for error in report.failures:
        assert error.reason == "proof step 6: $d x y of ax-dist needs $d x z, which is not in effect"
        assert error.line == line_of(text, f"{error.label} $p")
    assert report.verified == len(GOOD) - 2


def test_disjoint_condition_on_the_dummy_in_either_order(tmp_path: Path) -> None:
    assert verify_database(read_database(write(tmp_path, MINI.replace("$d x z $.", "$d z x $.")))).ok
    assert verify_database(read_database(write(tmp_path, MINI.replace("$d x z $.", "$d z y x $.")))).ok


# --- incomplete proofs --------------------------------------------------------------------------------


def test_incomplete_proofs_in_both_formats(tmp_path: Path) -> None:
    text = replace_proof(MINI, "a1i", "wph wps wph wi a1i.1 ? ax-mp")
    text = replace_proof(text, "id-c", "( wi ax-1 ax-2 ax-mp ) AAABZBZFAACAFABBGFBAFCAF?EE")
    db = read_database(write(tmp_path, text))
    report = verify_database(db)
    assert report.ok and report.incomplete == ["a1i", "id-c"] and report.verified == len(GOOD) - 2
    with pytest.raises(MMVerificationError, match="incomplete"):
        Kernel(db).verify(db.assertion("a1i"))
    assert decode_proof(db, db.assertion("id-c")).is_incomplete


# --- the rule, as used by proof trees and environments --------------------------------------------


def test_apply_returns_conclusion_and_substitution(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    kernel = Kernel(db)
    ph_to_ph = ("wff", "(", "ph", "->", "ph", ")")
    conclusion, substitution = kernel.apply(
        db.assertion("ax-mp"),
        [("wff", "ph"), ph_to_ph, ("|-", "ph"), ("|-", "(", "ph", "->", "(", "ph", "->", "ph", ")", ")")],
        frozenset(),
    )
    assert conclusion == ("|-", "(", "ph", "->", "ph", ")")
    assert substitution == {"ph": ("ph",), "ps": ("(", "ph", "->", "ph", ")")}


def test_apply_rejects_wrong_arguments(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    kernel = Kernel(db)
    with pytest.raises(RuleError, match="has 4 mandatory hypotheses, got 1"):
        kernel.apply(db.assertion("ax-mp"), [("wff", "ph")], frozenset())
    with pytest.raises(RuleError, match="needs '\\|- ph', got '\\|- ps'"):
        kernel.apply(db.assertion("ax-mp"), [("wff", "ph"), ("wff", "ps"), ("|-", "ps"), ("|-", "ps")], frozenset())
    with pytest.raises(RuleError, match="needs \\$d x y"):
        kernel.apply(db.assertion("ax-dist"), [("set", "x"), ("set", "y")], frozenset())
    conclusion, _ = kernel.apply(db.assertion("ax-dist"), [("set", "x"), ("set", "y")], frozenset({("x", "y")}))
    assert conclusion == ("|-", "A.", "x", "x", "=", "y")


def test_disjoint_check_looks_at_every_variable_of_the_substitutions(tmp_path: Path) -> None:
    # ax-dist with x := x and y := a wff-free expression holding z: needs $d x z, nothing about constants
    text = MINI.replace("weq $a wff x = y $.", "weq $a wff x = y $.\ntz $a set ( z -> y ) $.")
    db = read_database(write(tmp_path, text))
    kernel = Kernel(db)
    term = ("set", "(", "z", "->", "y", ")")
    with pytest.raises(RuleError, match="needs \\$d x z"):
        kernel.apply(db.assertion("ax-dist"), [("set", "x"), term], frozenset({("x", "y")}))
    with pytest.raises(RuleError, match="needs \\$d x y"):
        kernel.apply(db.assertion("ax-dist"), [("set", "x"), term], frozenset({("x", "z")}))
    kernel.apply(db.assertion("ax-dist"), [("set", "x"), term], frozenset({("x", "y"), ("x", "z")}))


# --- real databases -----------------------------------------------------------------------------------


def test_every_prop_mm_proof_verifies(prop_mm: Path) -> None:
    report = verify_database(read_database(prop_mm))
    assert report.ok, report.failures[:3]
    assert report.verified == 998 and report.incomplete == []


def test_verify_only_some_labels_with_progress(prop_mm: Path) -> None:
    db = read_database(prop_mm)
    seen: list[tuple[int, int]] = []
    report = verify_database(db, labels=["a1i", "id"], progress=lambda done, total: seen.append((done, total)))
    assert report.verified == 2 and seen == [(1, 2), (2, 2)]


def test_a_made_theorem_uses_its_own_hypotheses_even_when_their_labels_shadow_the_database() -> None:

    from core.metamath.embedded import embedded_database_path
    from core.metamath.prooftree import make_theorem
    from core.metamath.reader import read_database
    from core.metamath.verifier import Kernel

    db = read_database(embedded_database_path())
    kernel = Kernel(db)
    # `a1i.1` is `|- ph` in the database; here it names the made theorem's own hypothesis `|- ch`.
    shadowing = make_theorem(
        db, "made", ("|-", "(", "ps", "->", "ph", ")"), [("|-", "ch")], hypothesis_labels=["a1i.1"]
    )
    with pytest.raises(MMVerificationError, match="needs '|- ph', got '|- ch'"):
        kernel.verify(shadowing.with_proof(("wph", "wps", "a1i.1", "a1i")))
    own = make_theorem(db, "made2", ("|-", "(", "ps", "->", "ph", ")"), [("|-", "ph")], hypothesis_labels=["made2.1"])
    kernel.verify(own.with_proof(("wph", "wps", "made2.1", "a1i")))
