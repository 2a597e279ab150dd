"""Writing proofs into a copy of a database, and the ``reprove`` command: the output passes our verifier
and the reference ``metamath``, every proof is our re-export, and nothing outside proofs changes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.errors import MetamathError
from core.metamath.embedded import embedded_database_path
from core.metamath.prooftree import proof_tokens, tree_from_proof
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel, verify_database
from core.metamath.writer import layout_proof, proof_indent, proof_lines, proof_sites, proof_spans, rewrite_proofs

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_PROOF_RE = re.compile(r"\$=.*?\$\.", re.S)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.metamath", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )


def metamath_output(exe: str, path: Path) -> str:
    run = subprocess.run(
        [exe, f'read "{path.name}"', "verify proof *", "exit"],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=300,
    )
    return run.stdout + run.stderr


def problems(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("?Error", "?Warning"))]


def canonical(proof: Sequence[str]) -> tuple[str, ...]:
    """A proof's tokens with a compressed proof's letters as one block (the layout splits them at will)."""
    if proof and proof[0] == "(" and ")" in proof:
        close = list(proof).index(")")
        return (*proof[: close + 1], "".join(proof[close + 1 :]))
    return tuple(proof)


def without_proofs(text: str) -> str:
    return _PROOF_RE.sub("$= $.", text)


# --- reprove on real databases ---------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["normal", "compressed"])
def test_reprove_prop_mm_passes_both_verifiers_and_changes_only_proofs(
    tmp_path: Path, prop_mm: Path, metamath_exe: str, compressed: bool
) -> None:
    out = tmp_path / "out.mm"
    run = cli("reprove", prop_mm, "--out", out, *(["--compressed"] if compressed else []))
    assert run.returncode == 0, run.stderr
    assert "reproved 998 proofs" in run.stdout

    original, written = prop_mm.read_text(), out.read_text()
    assert without_proofs(written) == without_proofs(original)
    assert written != original

    db = read_database(out)
    report = verify_database(db)
    assert report.ok and report.verified == 998
    assert not problems(metamath_output(metamath_exe, out))

    source = read_database(prop_mm)
    grammar, kernel = Grammar(source), Kernel(source)
    for theorem in source.theorems():
        tree = tree_from_proof(source, theorem, kernel)
        expected = proof_tokens(source, grammar, theorem, tree, compressed=compressed)
        assert canonical(db.assertion(theorem.label).proof) == canonical(expected), theorem.label


def test_reprove_the_embedded_database(tmp_path: Path, metamath_exe: str) -> None:
    out = tmp_path / "hilbert.mm"
    assert cli("reprove", embedded_database_path(), "--out", out, "--compressed").returncode == 0
    assert verify_database(read_database(out)).verified == 98
    assert not problems(metamath_output(metamath_exe, out))
    assert without_proofs(out.read_text()) == without_proofs(embedded_database_path().read_text())


def test_metamath_reports_a_broken_reexport(tmp_path: Path, metamath_exe: str) -> None:
    """The rejection twin of the checks above: metamath does flag a proof we break."""
    out = tmp_path / "broken.mm"
    text = embedded_database_path().read_text()
    spans = proof_spans(text)
    start, end = spans["syl"]
    out.write_text(text[:start] + " ( a1i a2i ax-mp ) ABFACFDABCBCFAEGHI " + text[end:])  # `wi` missing
    assert problems(metamath_output(metamath_exe, out))
    assert cli("verify", out).returncode == 1


# --- tiny databases: syntax theorems, incomplete proofs, errors ------------------------------------

TINY = """$( A tiny database with syntax theorems, a complete proof and incomplete ones. $)
$c ( ) -> wff |- $.
$v ph ps ch $.
wph $f wff ph $.
wps $f wff ps $.
wch $f wff ch $.
wi $a wff ( ph -> ps ) $.
$( A syntax theorem. $)
wii $p wff ( ph -> ph ) $= wph wph wi $.
$( A syntax theorem whose proof uses another one: its re-export is its parse. $)
wiii $p wff ( ( ph -> ph ) -> ph ) $= wph wii wph wi $.
ax-1 $a |- ( ph -> ( ps -> ph ) ) $.
${
  min $e |- ph $.
  maj $e |- ( ph -> ps ) $.
  ax-mp $a |- ps $.
$}
${
  a1i.1 $e |- ph $.
  $( Complete, in normal form. $)
  a1i $p |- ( ps -> ph ) $= wph wps wph wi a1i.1 wph wps ax-1 ax-mp $.
$}
${
  a1ii.1 $e |- ph $.
  $( Incomplete. $)
  a1ii $p |- ( ch -> ( ps -> ph ) ) $= ? $.
  $( Partly incomplete. $)
  a1iii $p |- ( ch -> ( ps -> ph ) ) $= wps wph wi wch ? ? ax-mp $.
$}
"""


def test_reprove_tiny_database(tmp_path: Path, metamath_exe: str) -> None:
    source = tmp_path / "tiny.mm"
    source.write_text(TINY)
    for compressed in (False, True):
        out = tmp_path / f"out-{compressed}.mm"
        run = cli("reprove", source, "--out", out, *(["--compressed"] if compressed else []))
        assert run.returncode == 0, run.stderr
        assert "reproved 3 proofs" in run.stdout
        text = out.read_text()
        assert "a1ii $p |- ( ch -> ( ps -> ph ) ) $= ? $." in text  # incomplete proofs untouched
        assert "$= wps wph wi wch ? ? ax-mp $." in text
        assert without_proofs(text) == without_proofs(TINY)
        db = read_database(out)
        expected = ("(", "wi", ")", "AABAB") if compressed else ("wph", "wph", "wi", "wph", "wi")
        assert db.assertion("wiii").proof == expected  # the parse, not the original proof via wii
        report = verify_database(db)
        assert report.ok and report.verified == 3 and report.incomplete == ["a1ii", "a1iii"]
        output = metamath_output(metamath_exe, out)
        assert not problems(output)
        assert "were not proved:  a1ii, a1iii" in output


def test_reprove_rejects_a_database_with_a_wrong_proof(tmp_path: Path) -> None:
    source = tmp_path / "wrong.mm"
    source.write_text(TINY.replace("a1i.1 wph wps ax-1 ax-mp", "a1i.1 wph wps ax-1 ax-1"))
    run = cli("reprove", source, "--out", tmp_path / "out.mm")
    assert run.returncode == 1
    assert "a1i" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out.mm").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "the following arguments are required"),
        (("reprove",), "the following arguments are required"),
        (("reprove", "{db}"), "--out"),
        (("reprove", "{dir}/missing.mm", "--out", "{dir}/o.mm"), "no such file"),
        (("reprove", "{dir}", "--out", "{dir}/o.mm"), "not a regular file"),
        (("reprove", "{db}", "--out", "{dir}/no/such/dir/o.mm"), "does not exist"),
        (("reprove", "{db}", "--out", "{dir}/o.mm", "--bogus"), "unrecognized arguments"),
        (("reprove", "{include}", "--out", "{dir}/o.mm"), "includes other files"),
        (("frobnicate", "{db}"), "invalid choice"),
    ],
)
def test_reprove_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = tmp_path / "tiny.mm"
    db.write_text(TINY)
    (tmp_path / "main.mm").write_text("$[ tiny.mm $]\n")
    values = {"db": db, "dir": tmp_path, "include": tmp_path / "main.mm"}
    run = cli(*(arg.format(**values) for arg in args))
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert message in run.stderr and "Traceback" not in run.stderr


def test_reprove_usage_twin_succeeds(tmp_path: Path) -> None:
    db = tmp_path / "tiny.mm"
    db.write_text(TINY)
    run = cli("reprove", db, "--out", tmp_path / "o.mm")
    assert run.returncode == 0 and (tmp_path / "o.mm").is_file()


# --- the writer itself -----------------------------------------------------------------------------


def test_proof_spans_skip_comments_and_find_every_proof() -> None:
    text = "$( not a proof: x $p y $= z $. $)\nt $p |- ph $= a b $.\n$( u $p $)\nv $p |- ps $= ? $.\n"
    spans = proof_spans(text)
    assert set(spans) == {"t", "v"}
    assert text[slice(*spans["t"])].split() == ["a", "b"]
    assert text[slice(*spans["v"])].split() == ["?"]


def test_rewrite_proofs_replaces_only_the_named_proofs(tmp_path: Path) -> None:
    source = tmp_path / "tiny.mm"
    source.write_text(TINY)
    out = tmp_path / "out.mm"
    assert rewrite_proofs(source, {"a1ii": ["wph", "wps", "wch", "ax-1"]}, out) == 1
    text = out.read_text()
    assert "a1i $p |- ( ps -> ph ) $= wph wps wph wi a1i.1 wph wps ax-1 ax-mp $." in text
    assert read_database(out).assertion("a1ii").proof == ("wph", "wps", "wch", "ax-1")
    assert without_proofs(text) == without_proofs(TINY)


def test_rewrite_proofs_rejects_an_unknown_label(tmp_path: Path) -> None:
    source = tmp_path / "tiny.mm"
    source.write_text(TINY)
    with pytest.raises(MetamathError, match="no-such"):
        rewrite_proofs(source, {"no-such": ["?"]}, tmp_path / "out.mm")
    assert not (tmp_path / "out.mm").exists()


# --- holes: a benchmark file for jobs.prove --------------------------------------------------------


def test_holes_replaces_exactly_the_split_proofs_by_question_marks(tmp_path: Path) -> None:
    from core.metamath.splits import split_theorems

    source = embedded_database_path()
    out = tmp_path / "holes.mm"
    run = cli("holes", source, "--out", out, "--split", "test")
    assert run.returncode == 0, run.stderr
    before, after = read_database(source), read_database(out)
    test = {t.label for t in split_theorems(before)["test"]}
    assert test and {t.label for t in after.incomplete_theorems()} == test
    for theorem in before.theorems():
        if theorem.label not in test:
            assert after.assertion(theorem.label).proof == theorem.proof
    report = verify_database(after)
    assert report.ok and sorted(report.incomplete) == sorted(test)
    assert without_proofs(out.read_text()) == without_proofs(Path(source).read_text())


def test_holes_only_rejects_a_label_that_is_not_a_theorem(tmp_path: Path) -> None:
    source, out = embedded_database_path(), tmp_path / "holes.mm"
    run = cli("holes", source, "--out", out, "--only", "ax-1,nosuch")
    assert run.returncode == 2 and "ax-1, nosuch: not a $p theorem" in run.stderr and not out.exists()
    twin = cli("holes", source, "--out", out, "--only", "id")
    assert twin.returncode == 0, twin.stderr
    assert [t.label for t in read_database(out).incomplete_theorems()] == ["id"]


# --- the layout of written proofs: set.mm's -------------------------------------------------------


def test_the_layout_reproduces_set_mm_proofs_exactly(set_mm: Path) -> None:
    """Every proof in the first 6 MB of set.mm, laid out again from its tokens, is the same text."""
    with open(set_mm, encoding="latin-1", newline="") as handle:
        text = handle.read(6_000_000)
    text = text[: text.rfind("\n$(")]
    sites = proof_sites(text)
    assert len(sites) > 4000
    for label, site in sites.items():
        laid_out = layout_proof(text[site.start : site.end].split(), proof_indent(text, site.label_start))
        assert laid_out == text[site.start : site.end + len("$.")], label


def test_the_layout_wraps_labels_at_spaces_and_letters_at_the_width() -> None:
    labels = [
        "wex",
        "weu",
        "wmo",
        "wal",
        "wi",
        "eumo",
        "2moex",
        "2eu1",
        "simpl",
        "syl6bi",
        "3syl",
        "2exeu",
        "expcom",
        "impbid",
        "wa",
    ]
    letters = "ABDZCEZACEBEZACDBEZTSCFACFBGZUAUBHSCIACBJUCUAUBTRUBABCKUBTLMNUBTUAABCOPQ"
    expected = [
        "    ( wex weu wmo wal wi eumo 2moex 2eu1 simpl syl6bi 3syl 2exeu expcom impbid",
        "    wa ) ABDZCEZACEBEZACDBEZTSCFACFBGZUAUBHSCIACBJUCUAUBTRUBABCKUBTLMNUBTUAABCO",
        "    PQ $.",
    ]
    assert proof_lines(["(", *labels, ")", letters[:30], letters[30:]], indent=4) == expected  # from set.mm (2eu2)
    lines = proof_lines(["(", *labels, ")", letters + "ABCDE"], indent=4)
    assert lines[-2:] == [
        "    wa ) ABDZCEZACEBEZACDBEZTSCFACFBGZUAUBHSCIACBJUCUAUBTRUBABCKUBTLMNUBTUAABCO",
        "    PQABCDE $.",
    ]
    full = proof_lines(["(", "wi", ")", "A" * (79 - 6 - len("( wi ) "))], indent=6)
    assert full == ["      ( wi ) " + "A" * 66, "      $."]  # `$.` goes to its own line when the line is full
    assert all(len(line) <= 79 for line in lines + full)


def test_the_layout_of_normal_and_empty_proofs() -> None:
    assert proof_lines(["?"], indent=4) == ["    ? $."]
    assert proof_lines(["(", ")", "B"], indent=4) == ["    (  ) B $."]
    words = ["wph"] * 30
    lines = proof_lines(words, indent=2)
    assert [len(line) for line in lines] == [77, 48] and lines[-1].endswith(" wph $.")


TINY_INDENTED = TINY.replace("  a1ii $p", "    a1ii $p")


A1II_PROOF = [
    "wps",
    "wph",
    "wi",
    "wch",
    "wps",
    "wph",
    "wi",
    "wi",
    "wph",
    "wps",
    "a1ii.1",
    "a1i",
    "wps",
    "wph",
    "wi",
    "wch",
    "ax-1",
    "ax-mp",
]


@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["CRLF", "LF"])
def test_rewriting_keeps_the_line_endings_and_indents_under_the_label(
    tmp_path: Path, metamath_exe: str, newline: str
) -> None:
    source = tmp_path / "tiny.mm"
    source.write_bytes(TINY_INDENTED.replace("\n", newline).encode())
    out = tmp_path / "out.mm"
    rewrite_proofs(source, {"a1ii": A1II_PROOF}, out)
    data = out.read_bytes()
    if newline == "\r\n":
        assert data.count(b"\n") == data.count(b"\r\n") == TINY.count("\n") + 2
    else:
        assert b"\r" not in data and data.count(b"\n") == TINY.count("\n") + 2
    lines = data.decode().split(newline)
    first = lines.index("    a1ii $p |- ( ch -> ( ps -> ph ) ) $=")
    assert lines[first + 1 : first + 3] == [
        "      wps wph wi wch wps wph wi wi wph wps a1ii.1 a1i wps wph wi wch ax-1 ax-mp",
        "      $.",
    ]
    assert read_database(out).assertion("a1ii").proof == tuple(A1II_PROOF)
    output = metamath_output(metamath_exe, out)
    assert not [p for p in problems(output) if "carriage-returns" not in p]
    assert "were not proved:  a1iii" in output


# --- holes and reprove never overwrite their input by accident ------------------------------------

OUTPUT_COMMANDS = {"holes": ("--only", "a1i"), "reprove": ()}


def link_to(source: Path, how: str) -> Path:
    """``source`` itself, or a new symbolic or hard link to it."""
    if how == "same path":
        return source
    link = source.with_name(f"{how.replace(' ', '-')}.mm")
    if how == "symbolic link":
        link.symlink_to(source.name)
    else:
        os.link(source, link)
    return link


@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_out_equal_to_the_input_is_refused(tmp_path: Path, command: str, how: str) -> None:
    source = tmp_path / "tiny.mm"
    source.write_text(TINY)
    out = link_to(source, how)
    run = cli(command, source, "--out", out, *OUTPUT_COMMANDS[command])
    assert run.returncode == 2, run.stderr
    assert "is the input file" in run.stderr and "--in-place" in run.stderr and "Traceback" not in run.stderr
    assert source.read_text() == TINY
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({source.name, out.name})


@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_in_place_replaces_the_input_keeping_its_mode_and_links(tmp_path: Path, command: str, how: str) -> None:
    source = tmp_path / "tiny.mm"
    source.write_text(TINY)
    source.chmod(0o600)
    out = link_to(source, how)
    inode = source.stat().st_ino
    run = cli(command, source, "--out", out, "--in-place", *OUTPUT_COMMANDS[command])
    assert run.returncode == 0, run.stderr
    assert source.read_text() != TINY and out.read_text() == source.read_text()
    assert stat.S_IMODE(source.stat().st_mode) == 0o600
    if how == "symbolic link":
        assert out.is_symlink() and os.readlink(out) == source.name
    if how == "hard link":
        assert source.stat().st_ino == out.stat().st_ino == inode and source.stat().st_nlink == 2
    expected = ["a1i", "a1ii", "a1iii"] if command == "holes" else ["a1ii", "a1iii"]
    assert verify_database(read_database(source)).incomplete == expected


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_out_in_a_missing_folder_fails_before_reading(tmp_path: Path, command: str) -> None:
    source = tmp_path / "tiny.mm"
    source.write_text("this is not a database $.\n")  # reading it would fail: the check comes first
    run = cli(command, source, "--out", tmp_path / "missing" / "out.mm", *OUTPUT_COMMANDS[command])
    assert run.returncode == 2 and "missing does not exist" in run.stderr, run.stderr
    twin = cli(command, source, "--out", tmp_path / "out.mm", *OUTPUT_COMMANDS[command])
    assert twin.returncode == 1 and "does not exist" not in twin.stderr  # reached the reading


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(tmp_path: Path, command: str) -> None:
    from core.metamath.__main__ import main

    source, out, victim = tmp_path / "tiny.mm", tmp_path / "out.mm", tmp_path / "victim.txt"
    source.write_text(TINY)
    victim.write_text("precious\n")
    planted = tmp_path / f"out.mm.tmp-{os.getpid()}"
    planted.symlink_to(victim)
    assert main([command, str(source), "--out", str(out), *OUTPUT_COMMANDS[command]]) == 0
    assert victim.read_text() == "precious\n" and planted.is_symlink()
    assert read_database(out).assertion("a1i")
