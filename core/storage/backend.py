"""The few file operations the protocol needs, for each kind of storage an experiment root can live on.

Every path given to a backend is relative to the experiment root and uses ``/``. Three backends:

* :class:`LocalBackend` (local paths, ``file://``, NFS): plain ``os`` calls. Publishing writes a temporary
  file beside the target, fsyncs it, then ``os.link``\\ s it to the target name, which is atomic and fails
  if the target exists (POSIX and NFS), and unlinks the temporary.
* :class:`MemoryBackend` (``memory://``, for tests): fsspec's in-process memory filesystem, with a
  process-wide lock around check-then-move (the store lives in one process, so the lock covers every user).
* :class:`FsspecBackend` (any other fsspec protocol): temporary file, existence check, ``fs.mv``. A move is
  all-or-nothing where the backend's move is (a rename, or an object copy), but the existence check and the
  move are two calls: two writers racing on the same name within that window are not detected.

fsspec is imported only for non-local URLs, so that jobs on local or NFS storage start quickly.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import threading
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any, Callable, Union

from core.errors import StorageError

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
"""Names starting with this are temporaries: readers never open them; :func:`clean_temporaries` removes
them once older than a grace period."""

Payload = Union[bytes, Callable[[IO[bytes]], None]]
"""What a backend writes: bytes, or a function writing into a binary file (used for large checkpoints)."""

_MEMORY_LOCK = threading.RLock()


def temporary_name(name: str) -> str:
    """A fresh temporary name for a file that will be published as ``name`` in the same folder."""
    return f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"


def is_temporary(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


def _write_payload(f: IO[bytes], data: Payload) -> int:
    if isinstance(data, (bytes, bytearray, memoryview)):
        f.write(data)
    else:
        data(f)
    return f.tell()


class Backend:
    """Interface of a storage backend (see the module docstring for the guarantees of each)."""

    url: str

    def location(self, rel: str) -> str:
        """The full path or URL of ``rel``, for messages and :class:`CheckpointInfo.path`."""
        raise NotImplementedError

    def read(self, rel: str) -> bytes | None:
        """The whole file, or None if it does not exist."""
        raise NotImplementedError

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def create(self, rel: str, data: Payload) -> int:
        """Publish ``rel`` atomically, never overwriting: FileExistsError if it exists. Returns its size."""
        raise NotImplementedError

    def replace(self, rel: str, data: Payload) -> int:
        """Write ``rel`` atomically, replacing any previous version. Returns its size."""
        raise NotImplementedError

    def remove(self, rel: str) -> bool:
        """Delete ``rel``; False if it did not exist."""
        raise NotImplementedError

    def listdir(self, rel: str) -> list[str]:
        """Names in folder ``rel`` (empty if the folder does not exist)."""
        raise NotImplementedError

    def age_s(self, rel: str) -> float | None:
        """Seconds since ``rel`` was last modified, or None if it does not exist."""
        raise NotImplementedError

    def size(self, rel: str) -> int | None:
        raise NotImplementedError

    def open_read(self, rel: str) -> IO[bytes]:
        """A binary file object (FileNotFoundError if missing)."""
        raise NotImplementedError


class LocalBackend(Backend):
    """A folder on a local or NFS filesystem."""

    def __init__(self, base: str) -> None:
        self.base = os.path.abspath(base)
        self.url = self.base
        self._known_dirs: set[str] = set()
        self._warned_no_links = False

    def location(self, rel: str) -> str:
        return os.path.join(self.base, rel)

    def read(self, rel: str) -> bytes | None:
        try:
            with self.open_read(rel) as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.location(rel))

    def _write_temporary(self, rel: str, data: Payload) -> tuple[str, str, int]:
        target = self.location(rel)
        folder, name = os.path.split(target)
        if folder not in self._known_dirs:
            os.makedirs(folder, exist_ok=True)
            self._known_dirs.add(folder)
        tmp = os.path.join(folder, temporary_name(name))
        with open(tmp, "xb") as f:
            size = _write_payload(f, data)
            f.flush()
            os.fsync(f.fileno())
        return tmp, target, size

    def create(self, rel: str, data: Payload) -> int:
        tmp, target, size = self._write_temporary(rel, data)
        try:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                    raise
                self._create_without_links(tmp, target, e)
        finally:
            _unlink_quietly(tmp)
        return size

    def _create_without_links(self, tmp: str, target: str, why: OSError) -> None:
        if not self._warned_no_links:
            logger.warning(
                "%s: this filesystem refuses hard links (%s); publishing falls back to check-then-rename, "
                "which cannot detect two writers racing on the same name", self.base, why.strerror
            )
            self._warned_no_links = True
        if os.path.exists(target):
            raise FileExistsError(errno.EEXIST, "file exists", target)
        os.rename(tmp, target)

    def replace(self, rel: str, data: Payload) -> int:
        tmp, target, size = self._write_temporary(rel, data)
        try:
            os.replace(tmp, target)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return size

    def remove(self, rel: str) -> bool:
        try:
            os.unlink(self.location(rel))
            return True
        except FileNotFoundError:
            return False

    def listdir(self, rel: str) -> list[str]:
        try:
            return os.listdir(self.location(rel))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def age_s(self, rel: str) -> float | None:
        try:
            return time.time() - os.stat(self.location(rel)).st_mtime
        except FileNotFoundError:
            return None

    def size(self, rel: str) -> int | None:
        try:
            return os.stat(self.location(rel)).st_size
        except FileNotFoundError:
            return None

    def open_read(self, rel: str) -> IO[bytes]:
        """Open a regular file for reading; a FIFO, device or socket planted in its place is refused
        (StorageError) rather than hanging the reader or feeding it bytes without end."""
        path = self.location(rel)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder", path)
            if not stat.S_ISREG(mode):
                raise StorageError(f"{path} is not a regular file (a FIFO, device or socket stands in its place): "
                                   "move it out of the experiment folder")
            if hasattr(os, "O_NONBLOCK"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class FsspecBackend(Backend):
    """Any fsspec filesystem: temporary, existence check, move (see the module docstring)."""

    def __init__(self, fs: Any, base: str) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.url = fs.unstrip_protocol(self.base)
        self._known_dirs: set[str] = set()

    def _lock(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def location(self, rel: str) -> str:
        return self.fs.unstrip_protocol(self._path(rel))

    def read(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(rel))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def exists(self, rel: str) -> bool:
        return self.fs.isfile(self._path(rel))

    def _write_temporary(self, rel: str, data: Payload) -> tuple[str, str, int]:
        target = self._path(rel)
        folder, _, name = target.rpartition("/")
        if folder not in self._known_dirs:
            self.fs.makedirs(folder, exist_ok=True)
            self._known_dirs.add(folder)
        tmp = f"{folder}/{temporary_name(name)}"
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.fs.pipe_file(tmp, bytes(data))
            return tmp, target, len(data)
        with self.fs.open(tmp, "wb") as f:
            size = _write_payload(f, data)
        return tmp, target, size

    def create(self, rel: str, data: Payload) -> int:
        tmp, target, size = self._write_temporary(rel, data)
        try:
            with self._lock():
                if self.fs.isfile(target):
                    raise FileExistsError(errno.EEXIST, "file exists", self.location(rel))
                self.fs.mv(tmp, target)
        finally:
            self._remove_quietly(tmp)
        return size

    def replace(self, rel: str, data: Payload) -> int:
        tmp, target, size = self._write_temporary(rel, data)
        try:
            with self._lock():
                self.fs.mv(tmp, target)
        finally:
            self._remove_quietly(tmp)
        return size

    def _remove_quietly(self, path: str) -> None:
        try:
            if self.fs.isfile(path):
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass

    def remove(self, rel: str) -> bool:
        try:
            with self._lock():
                if not self.fs.isfile(self._path(rel)):
                    return False
                self.fs.rm_file(self._path(rel))
            return True
        except FileNotFoundError:
            return False

    def listdir(self, rel: str) -> list[str]:
        try:
            entries = self.fs.ls(self._path(rel).rstrip("/"), detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [e.rstrip("/").rpartition("/")[2] for e in entries]

    def age_s(self, rel: str) -> float | None:
        try:
            modified = self.fs.modified(self._path(rel))
        except (FileNotFoundError, NotImplementedError):
            return None
        return time.time() - modified.timestamp()

    def size(self, rel: str) -> int | None:
        try:
            return int(self.fs.size(self._path(rel)))
        except FileNotFoundError:
            return None

    def open_read(self, rel: str) -> IO[bytes]:
        return self.fs.open(self._path(rel), "rb")


class MemoryBackend(FsspecBackend):
    """fsspec's ``memory://`` filesystem: one store per process, guarded by one process-wide lock."""

    def _lock(self) -> AbstractContextManager[Any]:
        return _MEMORY_LOCK

    def open_read(self, rel: str) -> IO[bytes]:
        data = self.read(rel)  # a private copy: the store's file objects are shared by every opener
        if data is None:
            raise FileNotFoundError(self.location(rel))
        return io.BytesIO(data)


def backend_for(url: str) -> Backend:
    """The backend for an experiment root URL or path."""
    if "://" not in url or url.startswith("file://"):
        path = url[len("file://"):] if url.startswith("file://") else url
        return LocalBackend(os.path.expanduser(path))
    import fsspec  # only here: importing fsspec costs ~0.15 s of start-up that local jobs do not need

    fs, path = fsspec.core.url_to_fs(url)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        return LocalBackend(path)
    if "memory" in protocols:
        return MemoryBackend(fs, path)
    return FsspecBackend(fs, path)
