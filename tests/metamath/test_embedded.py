"""The embedded database hilbert.mm: packaged, well formed, every proof checked by our kernel and by
``metamath``, in set.mm's notation, labels and order, and usable as the default training database."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.metamath.database import Assertion
from core.metamath.embedded import embedded_database_path
from core.metamath.prooftree import tree_from_proof
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.metamath.verifier import verify_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]

AXIOMS = {
    "wn": "wff -. ph",
    "wi": "wff ( ph -> ps )",
    "ax-mp": "|- ps",
    "ax-1": "|- ( ph -> ( ps -> ph ) )",
    "ax-2": "|- ( ( ph -> ( ps -> ch ) ) -> ( ( ph -> ps ) -> ( ph -> ch ) ) )",
    "ax-3": "|- ( ( -. ph -> -. ps ) -> ( ps -> ph ) )",
    "wb": "wff ( ph <-> ps )",
    "df-bi": "|- -. ( ( ( ph <-> ps ) -> -. ( ( ph -> ps ) -> -. ( ps -> ph ) ) ) -> "
    "-. ( -. ( ( ph -> ps ) -> -. ( ps -> ph ) ) -> ( ph <-> ps ) ) )",
    "wo": "wff ( ph \\/ ps )",
    "wa": "wff ( ph /\\ ps )",
    "df-or": "|- ( ( ph \\/ ps ) <-> ( -. ph -> ps ) )",
    "df-an": "|- ( ( ph /\\ ps ) <-> -. ( ph -> -. ps ) )",
}
CLASSICS = [
    "mp2",
    "a1i",
    "a2i",
    "mpd",
    "syl",
    "id",
    "a1d",
    "com12",
    "con4i",
    "pm2.21",
    "pm2.43",
    "syl5",
    "syl6",
    "imim1i",
    "impbii",
    "biimpi",
    "bicomi",
    "pm3.2i",
    "orc",
    "olc",
    "notnot2",
    "notnot1",
    "peirce",
    "jaoi",
    "ex",
    "imp",
    "simpl",
    "jca",
]


@pytest.fixture(scope="module")
def db():
    return read_database(embedded_database_path())


def test_the_path_is_inside_the_package() -> None:
    path = embedded_database_path()
    assert path.is_file() and path.name == "hilbert.mm"
    assert path.parent == PROJECT_ROOT / "core" / "metamath" / "databases"


def test_it_is_shipped_as_package_data() -> None:
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert re.search(r'"core\.metamath"\s*=\s*\[\s*"databases/\*\.mm"\s*\]', pyproject)


def test_axioms_and_definitions_are_set_mms(db) -> None:
    for label, text in AXIOMS.items():
        assert " ".join(db.assertion(label).statement) == text, label
    assert [h.label for h in db.assertion("ax-mp").hypotheses] == ["wph", "wps", "min", "maj"]
    assert sorted(a.label for a in db.assertions if a.kind == "a") == sorted(AXIOMS)
    assert [h.variable for h in db.global_floating] == ["ph", "ps", "ch", "th", "ta", "et", "ze", "si"]


def test_every_proof_verifies_with_our_kernel(db) -> None:
    report = verify_database(db)
    assert report.ok and report.verified == 98 and not report.incomplete


def test_the_verify_command_accepts_it() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "core.metamath", "verify", str(embedded_database_path())],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"verified 98 proofs, 0 incomplete, in \d+\.\d+ s", run.stdout.splitlines()[-1])


def test_every_proof_verifies_with_metamath(metamath_exe: str) -> None:
    path = embedded_database_path()
    run = subprocess.run(
        [metamath_exe, f'read "{path.name}"', "verify proof *", "exit"],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert "All proofs in the database were verified" in output
    assert not [line for line in output.splitlines() if line.startswith(("?Error", "?Warning"))]


def test_a_corrupted_copy_is_rejected_by_both_verifiers(tmp_path: Path, metamath_exe: str) -> None:
    """The rejection twin: swap two hypotheses of a real proof."""
    text = embedded_database_path().read_text()
    copy = tmp_path / "hilbert.mm"
    copy.write_text(
        text.replace("mp2.1 $e |- ph $.\n    mp2.2 $e |- ps $.", "mp2.1 $e |- ps $.\n    mp2.2 $e |- ph $.")
    )
    assert not verify_database(read_database(copy)).ok
    run = subprocess.run(
        [metamath_exe, f'read "{copy.name}"', "verify proof *", "exit"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert "?Error" in run.stdout + run.stderr


def test_classical_theorems_are_there_with_a_comment_and_a_compressed_proof(db) -> None:
    assert len(db.theorems()) == 98
    assert set(CLASSICS) <= {t.label for t in db.theorems()}
    text = embedded_database_path().read_text()
    commented = re.findall(r"\$\)\s+(\S+) \$p", text)
    assert commented == [t.label for t in db.theorems()]
    assert all(t.proof[0] == "(" for t in db.theorems())


def test_a_mix_of_hypotheses_and_proof_sizes(db) -> None:
    with_hypotheses = [t for t in db.theorems() if t.essential]
    assert 30 <= len(with_hypotheses) <= 70
    sizes = [tree_from_proof(db, t).size for t in db.theorems()]
    assert min(sizes) <= 2 and max(sizes) >= 15 and len(set(sizes)) >= 8


def test_each_proof_cites_only_earlier_assertions(db) -> None:
    cited = 0
    for theorem in db.theorems():
        for label in theorem.proof[1 : theorem.proof.index(")")]:  # the compressed proof's label list
            target = db.labels[label]
            if isinstance(target, Assertion):
                assert target.number < theorem.number, (theorem.label, label)
                cited += target.kind == "p"
    assert cited > 98  # theorems build on theorems, not only on the axioms


def test_splits_are_all_non_empty(db) -> None:
    sizes = {name: len(theorems) for name, theorems in split_theorems(db).items()}
    assert sizes == {"train": 84, "valid": 6, "test": 8}


def test_same_statements_labels_and_order_as_set_mm(set_mm: Path, db) -> None:
    reference = read_database(set_mm, stop_at="ax-gen")
    numbers = []
    for assertion in db.assertions:
        theirs = reference.assertion(assertion.label)
        assert theirs.statement == assertion.statement, assertion.label
        assert [h.statement for h in theirs.hypotheses] == [h.statement for h in assertion.hypotheses]
        numbers.append(theirs.number)
    assert numbers == sorted(numbers)
