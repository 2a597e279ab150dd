"""Fuzzing the kernel with hypothesis: random and mutated ``.mm`` text through the reader, the verifier and the
grammar, and random compressed-proof letters through the decoder and both verification paths.

Whatever the input, the outcome is a result or a project error (:class:`~core.errors.AdvproverError`): never
another exception, never a hang (each example has a hypothesis deadline) and never a large allocation (each
example's peak of Python allocations, traced, stays under a bound). Examples are few and small enough for a
loaded 2-core machine (a few seconds per test); a failing example is printed by hypothesis and shrunk.
Each property is paired with its accepted twin: the unmutated database reads and verifies.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import AdvproverError
from core.metamath import Kernel, read_database, verify_database
from core.metamath.database import Database
from core.metamath.proof import decode_proof
from core.metamath.syntax import Grammar
from core.metamath.verifier import VerificationReport, _verify_into

from .test_verifier import GOOD, MINI

T = TypeVar("T")
PEAK_BYTES = 64 << 20  # far above what any example needs; a memory blow-up (a /dev/zero include) exceeds it
FUZZ = settings(
    max_examples=300,
    deadline=5000,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKENS = [
    "$c",
    "$v",
    "$f",
    "$e",
    "$a",
    "$p",
    "$=",
    "$.",
    "${",
    "$}",
    "$(",
    "$)",
    "$[",
    "$]",
    "$d",
    "?",
    "wff",
    "|-",
    "(",
    ")",
    "->",
    "ph",
    "ps",
    "x",
    "wph",
    "wps",
    "wi",
    "ax-1",
    "ax-mp",
    "id",
    "a1i.1",
    "mini.mm",
    "absent.mm",
    "folder",
    "AB",
    "UUUUUUA",
    "Z",
    "\t",
    "\f",
    "\x00",
    "\xe9",
    "$",
    "$$",
]


def bounded(function: Callable[[], T]) -> T | AdvproverError:
    """Run ``function``; its result, or the project error it raised (any other exception fails the test). Its
    peak of traced allocations must stay under :data:`PEAK_BYTES`."""
    tracemalloc.start()
    try:
        return function()
    except AdvproverError as error:
        return error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_BYTES, f"peak allocation {peak} bytes"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where fuzzed databases are written, next to what they may include: MINI, and a folder."""
    path = tmp_path_factory.mktemp("fuzz")
    (path / "mini.mm").write_text(MINI)
    (path / "folder").mkdir()
    return path


@pytest.fixture(scope="module")
def mini(folder: Path) -> tuple[Database, Kernel]:
    db = read_database(folder / "mini.mm")
    return db, Kernel(db)


def check_database_text(folder: Path, text: str) -> Database | AdvproverError:
    """Read ``text`` as a database; if it reads, verify it and parse its statements: all must end well."""
    path = folder / "fuzzed.mm"
    path.write_bytes(text.encode("latin-1", errors="replace"))
    db = bounded(lambda: read_database(path))
    if isinstance(db, Database):
        report = bounded(lambda: verify_database(db))
        assert isinstance(report, VerificationReport)
        assert all(isinstance(error, AdvproverError) for error in report.failures)
        grammar = bounded(lambda: Grammar(db))
        if isinstance(grammar, Grammar):
            for assertion in db.assertions:
                bounded(lambda assertion=assertion: grammar.parse(assertion.statement[0], assertion.statement[1:]))
    return db


def test_the_unmutated_database_reads_and_verifies(folder: Path) -> None:
    db = check_database_text(folder, MINI)
    assert isinstance(db, Database) and verify_database(db).verified == len(GOOD)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=6), max_size=60), st.sampled_from([" ", "\n", "  \n"]))
def test_random_token_soup_reads_or_fails_with_a_project_error(folder: Path, tokens: list[str], separator: str) -> None:
    outcome = check_database_text(folder, separator.join(tokens))
    event("read" if isinstance(outcome, Database) else type(outcome).__name__)


@st.composite
def mutated_mini(draw: st.DrawFn) -> str:
    """MINI with a few slices deleted, duplicated or replaced by tokens or random text."""
    text = MINI
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        kind = draw(st.sampled_from(["delete", "duplicate", "token", "text"]))
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        elif kind == "token":
            text = text[:start] + f" {draw(st.sampled_from(TOKENS))} " + text[end:]
        else:
            text = text[:start] + draw(st.text(max_size=8)) + text[end:]
    return text


@FUZZ
@given(mutated_mini())
def test_mutated_databases_read_or_fail_with_a_project_error(folder: Path, text: str) -> None:
    outcome = check_database_text(folder, text)
    event("read" if isinstance(outcome, Database) else type(outcome).__name__)


# --- compressed-proof letters -------------------------------------------------------------------------

ID_C_LETTERS = "AAABZBZFAACAFABBGFBAFCAFADEE"


@st.composite
def mutated_letters(draw: st.DrawFn) -> str:
    """id-c's real letters with a few letters replaced, inserted or deleted (most stay close to a proof)."""
    letters = ID_C_LETTERS
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(letters)))
        new = draw(st.sampled_from("ABCDEFGHUZ?"))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        letters = letters[:at] + ("" if kind == "delete" else new) + letters[at + (kind != "insert") :]
    return letters


LONG_RUNS = ["U" * 13, "U" * 14, "Y" * 40, "U" * 7000, "U" * 30000]  # quadratic decoding of these misses the deadline
LETTERS = (
    mutated_letters()
    | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ?", max_size=80)
    | st.builds(
        lambda run, letter, tail: run + letter + tail,
        st.sampled_from(LONG_RUNS),
        st.sampled_from(["", "A", "T", "Z", "?"]),
        st.text(alphabet="ABCUZ?", max_size=10),
    )
)


def test_the_real_letters_decode_and_verify(mini: tuple[Database, Kernel]) -> None:
    db, kernel = mini
    theorem = db.assertion("id-c")
    assert theorem.proof[-1] == ID_C_LETTERS
    assert kernel._verified_quickly(theorem)
    kernel.verify(theorem)


@settings(FUZZ, max_examples=600)
@given(st.sampled_from(["( wi ax-1 ax-2 ax-mp )"] * 4 + ["( )", "( wi )", "( wi wph )", "( ? )"]), LETTERS)
def test_random_letters_decode_or_fail_with_a_project_error(
    mini: tuple[Database, Kernel], listed: str, letters: str
) -> None:
    db, kernel = mini
    theorem = db.assertion("id-c").with_proof(tuple(listed.split()) + ((letters,) if letters else ()))
    decoded = bounded(lambda: decode_proof(db, theorem))
    checked = bounded(lambda: kernel.verify(theorem))
    report = VerificationReport()
    quick = bounded(lambda: kernel._verified_quickly(theorem))
    assert isinstance(quick, (bool, AdvproverError))
    if quick is True:  # the fast path accepts only what the decoding path accepts
        assert checked is None and not isinstance(decoded, AdvproverError)
    bounded(lambda: _verify_into(report, kernel, theorem))
    event(
        "verified"
        if checked is None
        else "decoded, then failed"
        if not isinstance(decoded, AdvproverError)
        else "not decoded"
    )
