"""The reader: every malformed input is rejected with its file, line and reason; scoping and frames are right.

Each rejection test is paired with acceptance: the same header reads fine without the fault (see
``test_header_alone_reads``), and the scoping tests check exact frames on small well-formed databases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import MMSyntaxError
from core.metamath import read_database, verify_database
from core.metamath import reader as reader_module

HEADER = """\
$c ( ) -> wff |- $.
$v ph ps $.
wph $f wff ph $.
wps $f wff ps $.
"""


def write(tmp_path: Path, text: str | bytes, name: str = "db.mm") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first occurrence of ``needle`` in ``text``."""
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1


def test_header_alone_reads(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, HEADER))
    assert db.constants == {"(", ")", "->", "wff", "|-"}
    assert db.variables == {"ph", "ps"}
    assert [h.label for h in db.global_floating] == ["wph", "wps"]
    assert len(db) == 0


# (id, text after the header, a piece of text on the faulty line, words of the expected reason)
MALFORMED = [
    ("unterminated comment", "$( this comment\n never ends\n", "$( this", "never closed"),
    ("nested comment", "$( outer\n $( inner $) $)\n", "$( outer", "nested"),
    ("glued comment end", "$( ends too early$) \n $)\n", "$( ends", "separate token"),
    ("unknown keyword", "$x ph $.\n", "$x", "unexpected keyword"),
    ("stray comment end", "$)\n", "$)", "unexpected keyword"),
    ("$c inside a block", "${\n $c foo $.\n$}\n", "$c foo", "outermost scope"),
    ("constant declared twice", "$c wff $.\n", "$c wff", "already declared as a constant"),
    ("constant repeated in one statement", "$c foo foo $.\n", "$c foo", "already declared as a constant"),
    ("variable redeclared while active", "$v ps ph $.\n", "$v ps ph", "already active"),
    ("variable declared as a constant", "$v wff $.\n", "$v wff", "already declared as a constant"),
    ("constant declared as an old variable", "${ $v ch $. $}\n$c ch $.\n", "$c ch", "already declared as a variable"),
    ("undeclared symbol", "ax $a wff ph + ps $.\n", "ax $a", "'+' is not declared"),
    ("inactive variable", "${ $v ch $. $}\nax $a wff ch $.\n", "ax $a", "'ch' is not an active variable"),
    ("variable without $f", "$v ch $.\nax $a wff ch $.\n", "ax $a", "no active `$f`"),
    ("variable without $f in $e", "$v ch $.\n${ h $e |- ch $. $}\n", "${ h", "no active `$f`"),
    ("$f on a constant", "wbad $f wff wff $.\n", "wbad", "not a variable"),
    ("$f too long", "wbad $f wff ph ps $.\n", "wbad", "`typecode variable`"),
    ("two active $f", "wph2 $f wff ph $.\n", "wph2", "already has an active `$f` (wph)"),
    ("typecode not a constant", "ax $a ph ps $.\n", "ax $a", "typecode 'ph' must be a constant"),
    ("empty statement", "ax $a $.\n", "ax $a", "empty"),
    ("$d with a constant", "$d ph wff $.\n", "$d ph", "'wff' is not an active variable"),
    ("$d with a repeated variable", "$d ph ps ph $.\n", "$d ph", "lists a variable twice"),
    ("$d with one variable", "$d ph $.\n", "$d ph", "at least two"),
    ("duplicate label", "ax $a wff ph $.\nax $a wff ps $.\n", "ax $a wff ps", "declared twice"),
    ("duplicate hypothesis label", "${ h $e |- ph $. $}\n${ h $e |- ps $. $}\n", "${ h $e |- ps", "declared twice"),
    ("invalid label characters", "a!x $a wff ph $.\n", "a!x", "not a valid label"),
    ("label without keyword", "ax wff ph $.\n", "ax wff", "must be followed by"),
    ("label at end of file", "ax\n", "ax", "must be followed by $f, $e, $a or $p, not the end of the file"),
    ("unmatched $}", "$}\n", "$}", "without a matching"),
    ("unclosed ${", "${\n  ax $a wff ph $.\n", "${", "never closed"),
    ("$p without $=", "th $p wff ph $.\n", "th $p", "`$=` is missing"),
    ("empty proof", "th $p wff ph $= $.\n", "th $p", "empty proof"),
    ("missing include", "$[ nowhere.mm $]\n", "$[ nowhere", "not found"),
    ("include without file", "$[ $]\n", "$[ $]", "an include must read"),
    ("include inside a block", "${\n $[ other.mm $]\n$}\n", "$[ other", "outermost scope"),
    ("label is a constant", "wff $a wff ph $.\n", "wff $a", "already a math symbol"),
    ("label is a variable", "ph $a wff ph $.\n", "ph $a", "already a math symbol"),
    ("label is an inactive variable", "${ $v ch $. $}\nch $a wff ph $.\n", "ch $a", "already a math symbol"),
    ("constant is a label", "ax $a wff ph $.\n$c ax $.\n", "$c ax", "already used as a label"),
    ("statement not closed at end of file", "ax $a wff ph\n", "ax $a", "never closed by `$.`"),
    ("$p not closed at end of file", "th $p wff ph $= wph\n", "th $p", "never closed by `$.`"),
    ("missing $. before the next statement", "ax $a wff ph\nax2 $a wff ps $.\n", "ax $a", "keyword '$a' inside"),
    ("dollar in a math symbol", "ax $a wff ph$ $.\n", "ax $a", "may not contain `$`"),
    ("dollar in a proof token", "th $p wff ph $= wph$ $.\n", "th $p", "may not contain `$`"),
    ("keyword glued to a comment start", "ax $a wff ph x$( $.\n", "ax $a", "'x$(' may not contain `$`"),
    ("comment start glued to its text", "$(text $)\n", "$(text", "unexpected keyword '$(text'"),
    ("comment end glued at top level", "$($)\n", "$($)", "unexpected keyword '$($)'"),
    ("nested comment on a later line", "$( one\n two\n three $( $)\n", "$( one", "nested (found '$(' inside"),
    ("comment in a statement not closed", "ax $a wff ph $( no end $.\n", "ax $a", "comment `$(` is never closed"),
]


@pytest.mark.parametrize("body, needle, reason", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_input_is_rejected_with_file_line_and_reason(
    tmp_path: Path, body: str, needle: str, reason: str
) -> None:
    text = HEADER + body
    path = write(tmp_path, text)
    with pytest.raises(MMSyntaxError) as caught:
        read_database(path)
    error = caught.value
    assert error.file == str(path)
    assert error.line == line_of(text, needle), str(error)
    assert reason in error.reason, str(error)
    assert f"{path}:{error.line}" in str(error)


def test_non_ascii_byte_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.encode() + b"$( caf\xc3\xa9 $)\n")
    with pytest.raises(MMSyntaxError) as caught:
        read_database(path)
    assert caught.value.line == 5 and caught.value.file == str(path)
    assert "code 195" in caught.value.reason and "not allowed" in caught.value.reason


@pytest.mark.parametrize("byte", [b"\x00", b"\x0b", b"\x7f", b"\x85"])
def test_control_and_high_bytes_are_rejected(tmp_path: Path, byte: bytes) -> None:
    path = write(tmp_path, HEADER.encode() + b"ax $a wff " + byte + b" ph $.\n")
    with pytest.raises(MMSyntaxError, match="not allowed") as caught:
        read_database(path)
    assert caught.value.line == 5


def test_allowed_whitespace_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.encode() + b"ax\t$a\fwff\r\nph $.\r\n")
    db = read_database(path)
    assert db.assertion("ax").statement == ("wff", "ph")
    assert db.assertion("ax").line == 5


def test_missing_file_is_a_syntax_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(MMSyntaxError, match="cannot open"):
        read_database(tmp_path / "absent.mm")


def test_label_may_reuse_no_symbol_but_symbols_may_be_redeclared_as_variables(tmp_path: Path) -> None:
    # An inactive variable may be declared again as a variable (not as a constant): the rejection twin is
    # "constant declared as an old variable" above.
    text = (
        HEADER + "${ $v ch $. wch $f wff ch $. ax1 $a wff ch $. $}\n${ $v ch $. wch2 $f wff ch $. ax2 $a wff ch $. $}\n"
    )
    db = read_database(write(tmp_path, text))
    assert [h.label for h in db.assertion("ax2").hypotheses] == ["wch2"]


def test_comment_holding_a_statement_end_inside_a_statement(tmp_path: Path) -> None:
    text = HEADER + "ax $a wff ( ph $( a comment with $. and $= inside $) -> ps ) $.\nnext $a wff ph $.\n"
    db = read_database(write(tmp_path, text))
    assert db.assertion("ax").statement == ("wff", "(", "ph", "->", "ps", ")")
    assert db.assertion("next").line == 6


def test_nested_comment_inside_a_statement_is_rejected(tmp_path: Path) -> None:
    text = HEADER + "ax $a wff ( ph $( a $( b $) -> ps ) $.\n"
    with pytest.raises(MMSyntaxError, match="nested") as caught:
        read_database(write(tmp_path, text))
    assert caught.value.line == 5


@pytest.mark.parametrize("block_bytes", [1, 5, 40])
def test_comments_spanning_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int) -> None:
    monkeypatch.setattr(reader_module, "_BLOCK_BYTES", block_bytes)
    text = HEADER + "$( a comment\n over\n\n four lines $) ax $a wff ph $. $( and\n another $)\nax2 $a wff ps $.\n"
    db = read_database(write(tmp_path, text))
    assert [(a.label, a.line) for a in db.assertions] == [("ax", 8), ("ax2", 10)]
    bad = HEADER + "$( a comment\n over\n\n four lines $( $)\n"
    with pytest.raises(MMSyntaxError, match="nested") as caught:
        read_database(write(tmp_path, bad, "bad.mm"))
    assert caught.value.line == 5
    glued = HEADER + "ax $a wff ph $.\n$( a comment\n ending badly$)\n"
    with pytest.raises(MMSyntaxError, match="separate token") as caught:
        read_database(write(tmp_path, glued, "glued.mm"))
    assert caught.value.line == 6


@pytest.mark.parametrize("tail", ["\n$( a $( nested $)\n", " $( a $( nested $)\n", " $( \x01 $)\n", "\x01\n"])
def test_an_error_after_stop_at_is_not_raised(tmp_path: Path, tail: str) -> None:
    path = write(tmp_path, HEADER + "ax $a wff ph $. stop $a wff ps $." + tail)
    with pytest.raises(MMSyntaxError) as caught:
        read_database(path)
    assert caught.value.line == (6 if tail.startswith("\n") else 5)
    db = read_database(path, stop_at="stop")
    assert db.stopped_at == "stop" and "ax" in db


def test_file_without_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "ax $a wff ph $. $( last $)")
    assert read_database(path).assertion("ax").line == 5
    with pytest.raises(MMSyntaxError, match="never closed") as caught:
        read_database(write(tmp_path, HEADER + "ax $a wff ph $. $( last", "open.mm"))
    assert caught.value.line == 5


def test_comment_tokens_may_hold_dollars_and_keywords(tmp_path: Path) -> None:
    text = HEADER + "$( $a $p $. $= $[ x $] a$b $$ $)\nax $a wff ph $.\n"
    assert read_database(write(tmp_path, text)).assertion("ax").line == 6


# --- incomplete proofs ------------------------------------------------------------------------------

PROP = (
    HEADER
    + """\
wi $a wff ( ph -> ps ) $.
${
  min $e |- ph $.
  maj $e |- ( ph -> ps ) $.
  ax-mp $a |- ps $.
$}
ax-1 $a |- ( ph -> ( ps -> ph ) ) $.
"""
)


def test_incomplete_proofs_are_counted_not_errors(tmp_path: Path) -> None:
    text = (
        PROP
        + """\
${
  a1i.1 $e |- ph $.
  a1i $p |- ( ps -> ph ) $= wph wps wph wi a1i.1 wph wps ? ax-mp $.
$}
unknown $p |- ( ph -> ( ps -> ph ) ) $= ? $.
${
  c.1 $e |- ph $.
  compressed $p |- ( ps -> ph ) $= ( wi ax-1 ax-mp ) ABBACE?F $.
$}
done $p |- ( ph -> ( ps -> ph ) ) $= wph wps ax-1 $.
"""
    )
    db = read_database(write(tmp_path, text))
    assert [a.label for a in db.incomplete_theorems()] == ["a1i", "unknown", "compressed"]
    report = verify_database(db)
    assert report.ok, report.failures
    assert report.incomplete == ["a1i", "unknown", "compressed"]
    assert report.verified == 1


def test_incomplete_proof_citing_an_unknown_label_is_an_error(tmp_path: Path) -> None:
    text = PROP + "bad $p |- ( ph -> ( ps -> ph ) ) $= wph nosuch ? $.\n"
    report = verify_database(read_database(write(tmp_path, text)))
    assert not report.ok and "nosuch" in str(report.failures[0])


# --- stop_at --------------------------------------------------------------------------------------


def test_stop_at_reads_nothing_after_the_label(tmp_path: Path) -> None:
    text = PROP + "stop $a |- ph $.\n$( never closed, and garbage: \x01 $} $} $c\n"
    path = write(tmp_path, text)
    with pytest.raises(MMSyntaxError):
        read_database(path)  # the rejection twin: the tail is garbage
    db = read_database(path, stop_at="stop")
    assert db.stopped_at == "stop"
    assert "stop" not in db and "ax-1" in db
    assert [a.label for a in db.assertions] == ["wi", "ax-mp", "ax-1"]


def test_stop_at_inside_a_block_keeps_the_outer_floating_hypotheses(tmp_path: Path) -> None:
    text = PROP + "${\n  $v ch $.\n  wch $f wff ch $.\n  inner $a wff ch $.\n  garbage\n"
    db = read_database(write(tmp_path, text), stop_at="inner")
    assert [h.label for h in db.global_floating] == ["wph", "wps"]


def test_stop_at_an_absent_label_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, PROP)
    with pytest.raises(MMSyntaxError, match="'nosuch' was never reached") as caught:
        read_database(path, stop_at="nosuch")
    assert caught.value.file == str(path)


def test_stop_at_does_not_stop_at_a_label_in_a_comment(tmp_path: Path) -> None:
    text = PROP + "$( stop $a |- ph $. $)\n"
    with pytest.raises(MMSyntaxError, match="never reached"):
        read_database(write(tmp_path, text), stop_at="stop")


def test_stop_at_reads_set_mm_propositional_part_fast(set_mm: Path) -> None:
    db = read_database(set_mm, stop_at="ax-gen")
    assert db.stopped_at == "ax-gen"
    assert "ax-mp" in db and "ax-gen" not in db and "ax-gen.1" in db
    assert 1500 < len(db.theorems()) < 2500


# --- scoping and frames -----------------------------------------------------------------------------

SCOPES = """\
$c ( ) -> wff |- A. set $.
$v ph ps ch x y z $.
wph $f wff ph $.
wps $f wff ps $.
vx $f set x $.
vy $f set y $.
wi $a wff ( ph -> ps ) $.
wal $a wff A. x ph $.
$d x y $.
${
  $d ph x $.
  wch $f wff ch $.
  vz $f set z $.
  e1 $e |- ( ps -> ph ) $.
  $d z ps $.
  e2 $e |- A. x ch $.
  th $p |- ( A. y ph -> ph ) $= ? $.
  ax $a |- ps $.
$}
after $a |- ( ph -> A. x ps ) $.
"""


def test_frame_mandatory_hypotheses_in_database_order(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, SCOPES))
    th = db.assertion("th")
    # mandatory variables: ph ps ch x y (statement and both $e), not z: their $f in declaration order,
    # the $e in declaration order, interleaved as declared
    assert [h.label for h in th.hypotheses] == ["wph", "wps", "vx", "vy", "wch", "e1", "e2"]
    assert [h.label for h in th.floating] == ["wph", "wps", "vx", "vy", "wch"]
    assert th.variables == ("ph", "ps", "x", "y", "ch")
    assert [h.label for h in th.essential] == ["e1", "e2"]
    assert th.disjoint == frozenset({("x", "y"), ("ph", "x")})


def test_context_of_a_theorem_holds_every_active_floating_and_disjoint(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, SCOPES))
    th = db.assertion("th")
    assert [h.label for h in th.context_floating] == ["wph", "wps", "vx", "vy", "wch", "vz"]
    assert th.context_disjoint == frozenset({("x", "y"), ("ph", "x"), ("ps", "z")})
    ax = db.assertion("ax")
    assert [h.label for h in ax.hypotheses] == ["wph", "wps", "vx", "wch", "e1", "e2"]
    assert ax.disjoint == frozenset({("ph", "x")})
    assert ax.context_floating == () and ax.context_disjoint == frozenset()  # only theorems have a context


def test_hypotheses_and_disjoint_conditions_leave_scope_at_block_end(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, SCOPES))
    after = db.assertion("after")
    assert [h.label for h in after.hypotheses] == ["wph", "wps", "vx"]
    assert after.disjoint == frozenset()  # $d x y is global but y is not mandatory here
    assert [h.label for h in db.global_floating] == ["wph", "wps", "vx", "vy"]
    assert db.global_disjoint == frozenset({("x", "y")})
    assert db.variable_typecodes() == {"ph": "wff", "ps": "wff", "x": "set", "y": "set"}


def test_hypothesis_out_of_scope_cannot_be_used(tmp_path: Path) -> None:
    text = SCOPES + "late $a |- ch $.\n"
    with pytest.raises(MMSyntaxError, match="no active `\\$f`"):
        read_database(write(tmp_path, text))


def test_assertions_are_numbered_in_file_order(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, SCOPES))
    assert [(a.label, a.number) for a in db.assertions] == [("wi", 0), ("wal", 1), ("th", 2), ("ax", 3), ("after", 4)]
    assert [a.label for a in db.preceding("ax")] == ["wi", "wal", "th"]
    assert [a.label for a in db.theorems()] == ["th"]
    assert db.is_syntax_axiom(db.assertion("wi")) and not db.is_syntax_axiom(db.assertion("ax"))


def test_disjoint_conditions_of_the_same_pair_in_nested_blocks(tmp_path: Path) -> None:
    text = HEADER + "${\n $d ph ps $.\n ${\n  $d ps ph $.\n $}\n a1 $a |- ( ph ps ) $.\n$}\na2 $a |- ( ph ps ) $.\n"
    text = text.replace("$c ( ) -> wff |- $.", "$c ( ) -> wff |- $.")
    db = read_database(write(tmp_path, text))
    assert db.assertion("a1").disjoint == frozenset({("ph", "ps")})  # the inner block's copy left, not the pair
    assert db.assertion("a2").disjoint == frozenset()


# --- line numbers -----------------------------------------------------------------------------------


def _many_statements(count: int) -> tuple[str, dict[str, int]]:
    """A database of ``count`` axioms laid out irregularly, and the line of each label."""
    lines = HEADER.splitlines()
    where: dict[str, int] = {}
    for i in range(count):
        label = f"ax{i}"
        if i % 3 == 0:
            lines.append(f"$( comment {i} spanning")
            lines.append("   two lines $)")
        if i % 4 == 0:  # label alone on its line, the statement on the next ones
            lines.append(f"  {label}")
            where[label] = len(lines)
            lines.append("    $a wff")
            lines.append("    ( ph -> ps ) $.")
        else:
            lines.append(f"{label} $a wff ( ph -> ps ) $.  $( trailing $)")
            where[label] = len(lines)
        if i % 5 == 0:
            lines.append("")
    return "\n".join(lines) + "\n", where


def test_line_numbers_across_a_file_larger_than_a_block(tmp_path: Path) -> None:
    text, where = _many_statements(30000)
    assert len(text) > max(reader_module._BLOCK_BYTES, 1 << 20)
    text += "bad $a wff oops $.\n"
    path = write(tmp_path, text)
    with pytest.raises(MMSyntaxError) as caught:
        read_database(path)
    assert caught.value.line == line_of(text, "bad $a")
    db = read_database(path, stop_at="bad")
    assert {a.label: a.line for a in db.assertions} == where


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1000])
def test_line_numbers_with_tiny_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int) -> None:
    monkeypatch.setattr(reader_module, "_BLOCK_BYTES", block_bytes)
    text, where = _many_statements(200)
    text += "$( a comment that is\n\n never closed\n"
    path = write(tmp_path, text)
    with pytest.raises(MMSyntaxError, match="never closed") as caught:
        read_database(path)
    assert caught.value.line == line_of(text, "$( a comment that is")
    db = read_database(path, stop_at="ax199")
    assert {a.label: a.line for a in db.assertions} == {k: v for k, v in where.items() if k != "ax199"}
    assert all(h.line == line_of(text, h.label + " $f") for h in db.global_floating)


def test_line_numbers_across_includes(tmp_path: Path) -> None:
    write(tmp_path, "$( included $)\n\nwi $a wff ( ph -> ps ) $.\nbroken $a wff ( ph -> ch ) $.\n", "inc.mm")
    main = write(tmp_path, HEADER + "$[ inc.mm $]\n")
    with pytest.raises(MMSyntaxError) as caught:
        read_database(main)
    assert caught.value.file == str(tmp_path / "inc.mm") and caught.value.line == 4
    write(tmp_path, "$( included $)\n\nwi $a wff ( ph -> ps ) $.\n", "inc.mm")
    write(tmp_path, HEADER + "$[ inc.mm $]\n\nax $a wff ph $.\n$[ inc.mm $]\nax2 $a wff ph $.\n", "main.mm")
    db = read_database(tmp_path / "main.mm")
    assert [(a.label, Path(a.file).name, a.line) for a in db.assertions] == [
        ("wi", "inc.mm", 3),
        ("ax", "main.mm", 7),
        ("ax2", "main.mm", 9),
    ]  # inc.mm read once
    assert [Path(f).name for f in db.files] == ["main.mm", "inc.mm"]


def test_include_of_itself_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "$[ db.mm $]\nax $a wff ph $.\n")
    assert [a.label for a in read_database(path).assertions] == ["ax"]


def test_error_after_an_include_names_the_including_file(tmp_path: Path) -> None:
    write(tmp_path, "wi $a wff ( ph -> ps ) $.\n", "inc.mm")
    main = write(tmp_path, HEADER + "$[ inc.mm $]\n$}\n", "main.mm")
    with pytest.raises(MMSyntaxError) as caught:
        read_database(main)
    assert caught.value.file == str(main) and caught.value.line == 6


# --- real databases -------------------------------------------------------------------------------


def test_prop_mm_reads_with_expected_shape(prop_mm: Path) -> None:
    db = read_database(prop_mm)
    assert len(db.theorems()) == 998
    assert not db.incomplete_theorems()
    mp = db.assertion("ax-mp")
    assert [h.label for h in mp.hypotheses] == ["wph", "wps", "min", "maj"]
    assert mp.statement == ("|-", "ps")


def test_no_debian_database_has_a_label_equal_to_a_math_symbol(debian_databases: Path) -> None:
    """The reader enforces "no label token may match any math symbol token" (Metamath book 4.2.1).

    Reading each database (set.mm up to ax-gen, for speed; the full file is read by the conformance
    tests) is the check: a clash is a syntax error.
    """
    for path in sorted(debian_databases.glob("*.mm")):
        db = read_database(path, stop_at="ax-gen") if path.name == "set.mm" else read_database(path)
        assert not (set(db.labels) & (db.constants | db.variables)), path
