"""The ``(New usage is discouraged.)`` mark: found in the comment just before a statement, and nowhere else."""

from __future__ import annotations

from pathlib import Path

from core.metamath.comments import database_discouraged_labels, discouraged_labels
from core.metamath.reader import read_database

MARKED = """$( A database with marked and unmarked statements. $)
$c ( ) -> wff |- $.
$v ph ps $.
wph $f wff ph $.
wps $f wff ps $.
wi $a wff ( ph -> ps ) $.
$( The old name of an axiom.  (New usage is discouraged.) $)
ax-old $a |- ( ph -> ( ps -> ph ) ) $.
$( The same axiom, to be used. $)
ax-1 $a |- ( ph -> ( ps -> ph ) ) $.
${
  $( A theorem whose mark is split over two lines.  (New usage is
     discouraged.)  (Proof modification is discouraged.) $)
  th-old $p |- ( ph -> ( ps -> ph ) ) $= wph wps ax-1 $.
$}
$( Not a mark: (New usage is not discouraged.) nor (Proof modification is discouraged.) $)
th $p |- ( ph -> ( ps -> ph ) ) $= wph wps ax-1 $.
$( A section comment that says (New usage is discouraged.) but no statement follows it. $)
$( The statement after the section comment. $)
th2 $p |- ( ph -> ( ps -> ph ) ) $= wph wps ax-1 $.
"""


def test_the_marked_statements_are_found() -> None:
    assert discouraged_labels(MARKED) == {"ax-old", "th-old"}


def test_an_unmarked_database_has_none() -> None:
    """The twin: the same database without the two marks."""
    text = MARKED.replace("(New usage is discouraged.)", "").replace("(New usage is\n     discouraged.)", "")
    assert discouraged_labels(text) == set()


def test_a_mark_outside_a_comment_does_not_count() -> None:
    assert discouraged_labels("x $a |- (New usage is discouraged.) $.\ny $p |- ph $= x $.\n") == set()


def test_database_discouraged_labels_reads_every_included_file(tmp_path: Path) -> None:
    (tmp_path / "part.mm").write_text(MARKED)
    main = tmp_path / "main.mm"
    main.write_text(
        "$[ part.mm $]\n$( Also old.  (New usage is discouraged.) $)\nth3 $p |- ( ph -> ( ps -> ph ) ) $=\n"
        "  wph wps ax-1 $.\n"
    )
    assert database_discouraged_labels(read_database(main)) == {"ax-old", "th-old", "th3"}


def test_set_mm_marks(set_mm: Path) -> None:
    with open(set_mm, encoding="latin-1") as handle:
        text = handle.read(2_000_000)
    labels = discouraged_labels(text)
    assert {"ax-3", "idALT", "id1"} <= labels and "id" not in labels and "ax-1" not in labels
