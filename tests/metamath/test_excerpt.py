"""database_excerpt: the text of a database before a label, as a file that reads and verifies like the
database read with ``stop_at`` (blocks and set.mm's split-file markers closed), and its refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.errors import MetamathError
from core.metamath.embedded import embedded_database_path
from core.metamath.excerpt import database_excerpt
from core.metamath.reader import read_database
from core.metamath.verifier import verify_database

NESTED = """$c |- wff ( ) -> $.
$v ph ps $.
wph $f wff ph $.
wps $f wff ps $.
wi $a wff ( ph -> ps ) $.
$( Begin $[ part.mm $] $)
${
  ax.1 $e |- ph $.
  ax.2 $e |- ( ph -> ps ) $.
  ax-mp $a |- ps $.
$}
${
  local.1 $e |- ph $.
  mid $a |- ( ph -> ph ) $.
$}
$( End $[ part.mm $] $)
"""


def write(tmp_path: Path, text: str, name: str = "db.mm") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="latin-1")
    return path


def test_without_stop_at_the_excerpt_is_the_whole_file() -> None:
    path = embedded_database_path()
    assert database_excerpt(path) == Path(path).read_text(encoding="latin-1")


def test_the_excerpt_closes_the_block_and_the_marker_open_at_stop_at(tmp_path: Path) -> None:
    source = write(tmp_path, NESTED)
    excerpt = database_excerpt(source, "mid")
    assert "local.1" in excerpt and "mid $a" not in excerpt
    assert excerpt.endswith("$}\n$( End $[ part.mm $] $)\n")
    cut = write(tmp_path, excerpt, "cut.mm")
    whole, stopped = read_database(cut), read_database(source, stop_at="mid")
    assert [a.label for a in whole.assertions] == [a.label for a in stopped.assertions] == ["wi", "ax-mp"]


def test_a_closed_block_and_an_ended_marker_are_not_closed_again(tmp_path: Path) -> None:
    source = write(tmp_path, NESTED + "after $a |- ph $.\n")
    excerpt = database_excerpt(source, "after")
    assert excerpt == NESTED  # nothing was open at `after`: nothing added
    assert [a.label for a in read_database(write(tmp_path, excerpt, "cut.mm")).assertions] == ["wi", "ax-mp", "mid"]


def test_a_label_in_a_comment_is_not_the_cut(tmp_path: Path) -> None:
    source = write(tmp_path, NESTED.replace("$( End", "$( mid $a is not here $)\n$( End"))
    assert "mid $a wff" not in database_excerpt(source, "mid") and database_excerpt(source, "mid").count("$}") == 2


def test_an_unknown_stop_at_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MetamathError, match="no statement labelled 'nowhere'"):
        database_excerpt(write(tmp_path, NESTED), "nowhere")


def test_a_database_with_includes_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "$c wff $.\n", "part.mm")
    with pytest.raises(MetamathError, match="includes other files"):
        database_excerpt(write(tmp_path, "$[ part.mm $]\n" + NESTED), "mid")


def test_set_mm_before_ax_gen_reads_and_verifies_as_the_reader_stopped_there(
    set_mm: Path, tmp_path: Path, metamath_exe: str
) -> None:
    cut = write(tmp_path, database_excerpt(set_mm, "ax-gen"), "prop.mm")
    db = read_database(cut)
    assert [a.label for a in db.assertions] == [a.label for a in read_database(set_mm, stop_at="ax-gen").assertions]
    assert verify_database(db).ok
    run = subprocess.run(
        [metamath_exe, f'read "{cut}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=300
    )
    assert "All proofs in the database were verified" in run.stdout and "?Error" not in run.stdout, run.stdout
