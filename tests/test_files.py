"""core.files: outputs checked before work, the input never overwritten by accident, exclusive temporaries."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.errors import UsageError
from core.files import check_output_path, refuse_overwriting_input, same_file, write_text


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- check_output_path ------------------------------------------------------------------------------


def test_an_output_in_an_existing_folder_is_accepted(tmp_path: Path) -> None:
    check_output_path(tmp_path / "out.mm", "--out")
    assert not (tmp_path / "out.mm").exists()  # nothing is created


def test_an_output_in_a_missing_folder_is_refused_naming_the_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--out .*missing/out.mm: the folder .*missing does not exist"):
        check_output_path(tmp_path / "missing" / "out.mm", "--out")


def test_an_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--json .* is a directory"):
        check_output_path(tmp_path, "--json")


def test_an_output_in_an_unwritable_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(folder) else real_access(path, mode))
    with pytest.raises(UsageError, match=r"--out .*locked/out.mm: the folder .*locked is not writable"):
        check_output_path(folder / "out.mm", "--out")
    check_output_path(tmp_path / "out.mm", "--out")  # the twin: a writable folder


# --- refusing to overwrite the input ------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.mm"
    path.write_text("original\n")
    return path


def test_another_file_is_not_the_input(source: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.mm"
    other.write_text("original\n")  # same content, another file
    assert not same_file(source, other) and not same_file(source, tmp_path / "absent.mm")
    refuse_overwriting_input(source, other, "--out", in_place=False)


@pytest.mark.parametrize("how", ["same name", "relative name", "symbolic link", "hard link"])
def test_the_input_by_any_name_is_refused_unless_in_place(source: Path, tmp_path: Path, monkeypatch, how: str) -> None:
    if how == "same name":
        out = source
    elif how == "relative name":
        monkeypatch.chdir(tmp_path)
        out = Path("sub/../in.mm")
        (tmp_path / "sub").mkdir()
    elif how == "symbolic link":
        out = tmp_path / "link.mm"
        out.symlink_to(source)
    else:
        out = tmp_path / "hard.mm"
        os.link(source, out)
    assert same_file(source, out)
    with pytest.raises(UsageError, match="is the input file .*--in-place"):
        refuse_overwriting_input(source, out, "--out", in_place=False)
    refuse_overwriting_input(source, out, "--out", in_place=True)


# --- write_text -----------------------------------------------------------------------------------------


def test_write_text_creates_a_file_with_the_usual_mode_and_no_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "out.mm"
    write_text(out, "a\r\nb\n")
    assert out.read_bytes() == b"a\r\nb\n"  # no newline translation
    umask = os.umask(0)
    os.umask(umask)
    assert mode_of(out) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out.mm"]


def test_write_text_keeps_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "out.mm"
    out.write_text("old\n")
    out.chmod(0o600)
    write_text(out, "new\n")
    assert out.read_text() == "new\n" and mode_of(out) == 0o600


def test_write_text_never_follows_a_symlink_planted_at_a_predictable_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out.mm"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted = [tmp_path / f"out.mm.tmp-{os.getpid()}", tmp_path / "out.mm.tmp", tmp_path / ".out.mm.tmp"]
    for link in planted:
        link.symlink_to(victim)
    write_text(out, "written\n")
    assert out.read_text() == "written\n" and not out.is_symlink()
    assert victim.read_text() == "precious\n"
    assert all(link.is_symlink() for link in planted)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.mm", "victim.txt", *(p.name for p in planted)])


def test_write_text_through_a_symlink_rewrites_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real" / "db.mm"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "link.mm"
    link.symlink_to(target)
    write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n" and mode_of(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["db.mm"]  # the temporary was in the target's folder


def test_write_text_keep_links_rewrites_a_hard_linked_file_in_place(tmp_path: Path) -> None:
    first, second = tmp_path / "first.mm", tmp_path / "second.mm"
    first.write_text("old\n")
    os.link(first, second)
    inode = first.stat().st_ino
    write_text(second, "new\n", keep_links=True)
    assert first.read_text() == second.read_text() == "new\n"
    assert first.stat().st_ino == second.stat().st_ino == inode


def test_write_text_without_keep_links_replaces_only_the_named_link(tmp_path: Path) -> None:
    """The twin: an ordinary output that happens to be a hard link gets a new file; the other name keeps its text."""
    first, second = tmp_path / "first.mm", tmp_path / "second.mm"
    first.write_text("old\n")
    os.link(first, second)
    write_text(second, "new\n")
    assert first.read_text() == "old\n" and second.read_text() == "new\n"


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out.mm"
    out.write_text("old\n")

    def failing_replace(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_text(out, "new\n")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mm"]
