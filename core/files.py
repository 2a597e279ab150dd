"""Local output files of the command lines (``--out``, ``--json``): checked before the work, written safely.

Not the experiment's shared storage (that is :mod:`core.storage`): these are the files a user names on a
command line, such as ``python -m core.metamath holes X.mm --out Y.mm`` or ``python -m jobs.prove X.mm
--out Y.mm --json R.json``. Three rules hold for every such command:

- **Checked first** (:func:`check_output_path`): the folder of an output must exist and be writable, and
  the output must not be a folder, before any long work starts.
- **The input is never overwritten by accident** (:func:`refuse_overwriting_input`): an output that is the
  input file, by name, through a symbolic link or as another hard link of the same file, is refused
  unless the command was given ``--in-place``.
- **Written through an exclusive temporary** (:func:`write_text`): the text goes to a temporary created by
  :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``, a random name) in the folder of the real target, which
  is then renamed over the target. A symbolic link planted at a predictable temporary name is never
  followed. An output that is a symbolic link keeps being one: its real target is rewritten. An existing
  target keeps its permission bits; a new one gets the usual ``0666 & ~umask``. With ``keep_links``
  (``--in-place``), a file with other hard links is rewritten in place instead (truncated and written
  through its own inode, which every link shares: not atomic, but no link is broken).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile

from core.errors import UsageError

logger = logging.getLogger(__name__)


def check_output_path(path: str | os.PathLike[str], flag: str) -> None:
    """Raise :class:`UsageError` naming ``flag`` unless a file can be written at ``path``.

    The folder must exist and be writable; ``path`` itself must not be a folder. Nothing is created.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    if os.path.isdir(target):
        raise UsageError(f"{flag} {path} is a directory; give the path of the file to write")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: the folder {folder} does not exist; create it first or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the folder {folder} is not writable; choose another path")


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether the two paths name one file: the same real path, or the same inode (hard links)."""
    first, second = os.fspath(first), os.fspath(second)
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_overwriting_input(
    source: str | os.PathLike[str], out: str | os.PathLike[str], flag: str, *, in_place: bool
) -> None:
    """Raise :class:`UsageError` if ``out`` is the file ``source`` (by any name) and ``in_place`` is not set."""
    if not in_place and same_file(source, out):
        raise UsageError(
            f"{flag} {os.fspath(out)} is the input file {os.fspath(source)}: it would be overwritten; "
            "give another path, or --in-place to replace the input on purpose"
        )


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", keep_links: bool = False) -> None:
    """Write ``text`` to ``path`` as described in the module docstring (no newline translation)."""
    target = os.path.realpath(os.fspath(path))
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    data = text.encode(encoding)
    if keep_links and existing is not None and existing.st_nlink > 1:
        _rewrite_inode(target, data)
        return
    mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask()
    _replace_through_temporary(target, data, mode)


def _replace_through_temporary(target: str, data: bytes, mode: int) -> None:
    folder, name = os.path.split(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _rewrite_inode(target: str, data: bytes) -> None:
    """Truncate and write the existing regular file ``target`` through its inode (its hard links stay)."""
    logger.info("%s has other hard links: rewriting it in place", target)
    descriptor = os.open(target, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
