"""The few file operations the protocol needs, for each kind of storage an experiment root can live on.

Every path given to a backend is relative to the experiment root and uses ``/``. Three backends:

* :class:`LocalBackend` (local paths, ``file://``, NFS): plain ``os`` calls. Publishing writes a temporary
  file beside the target, fsyncs it, then ``os.link``\\ s it to the target name, which is atomic and fails
  if the target exists (POSIX and NFS), and unlinks the temporary.
* :class:`MemoryBackend` (``memory://``, for tests): fsspec's in-process memory filesystem, with a
  process-wide lock around check-then-move (the store lives in one process, so the lock covers every user).
* :class:`FsspecBackend` (any other fsspec protocol). On object stores (s3, gcs, azure: an object appears
  whole when its upload completes) publishing is one exclusive create, ``fs.open(target, "xb")``, which the
  store carries out as a conditional write: of two writers racing on one name, exactly one succeeds, the
  other gets FileExistsError. Where a filesystem refuses ``"xb"`` (NotImplementedError or ValueError), and
  on other protocols (sftp, hdfs, ...: a file written in place would be visible half-written), publishing
  is temporary file, existence check, ``fs.mv``: all-or-nothing where the move is (a rename, an object
  copy), but the check and the move are two calls, so two writers racing on one name within that window
  are not detected (a warning says so once).

On object stores the filesystem keeps no listings (``use_listings_cache=False``): every listing and existence
check asks the store, so a job sees what other jobs published since it last looked.

fsspec is imported only for non-local URLs, so that jobs on local or NFS storage start quickly. A URL whose
filesystem package is not installed (``s3fs`` for ``s3://``) raises StorageError naming the extra to install.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import IO, Any

from core.errors import StorageError

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
"""Names starting with this are temporaries: readers never open them; :func:`clean_temporaries` removes
them once older than a grace period."""

Payload = bytes | Callable[[IO[bytes]], None]
"""What a backend writes: bytes, or a function writing into a binary file (used for large checkpoints)."""

_MEMORY_LOCK = threading.RLock()

EXCLUSIVE_CREATE_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az"})
"""Object stores whose ``"xb"`` is a conditional write of a whole object (s3fs, gcsfs, adlfs)."""

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
"""The advprover extra that installs the filesystem package of each protocol (``pip install 'advprover[s3]'``)."""

SPOOL_IN_MEMORY_BYTES = 64 << 20
"""A payload written by a function is spooled here (in memory up to this size, then on local disk) before
an exclusive create uploads it, so that a function failing half-way publishes nothing."""


def temporary_name(name: str, *, anonymous: bool = False) -> str:
    """A fresh temporary name for a file that will be published as ``name`` in the same folder; ``anonymous``
    leaves ``name`` out of it (for files that tools find by their name: TensorBoard reads any "tfevents")."""
    return f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}" + ("" if anonymous else f"-{name}")


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
    shared_across_processes = True
    """False where the storage lives in one process (``memory://``): jobs in other processes cannot see it."""

    def base_is_file(self) -> bool:
        """Whether the root itself is a file (not a folder, nor absent)."""
        raise NotImplementedError

    def base_exists(self) -> bool:
        """Whether the root itself exists, as a file or a folder."""
        raise NotImplementedError

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

    def overwrite(self, rel: str, data: bytes) -> int:
        """Write ``rel`` whole, replacing any previous version, with no temporary of a similar name beside it:
        for files outside the protocol that tools find by their name (TensorBoard event files). A reader sees
        the old or the new bytes on object stores (an object appears whole when its upload completes) and
        local folders (a rename); on other filesystems it may see the file half-written. Returns its size."""
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

    def base_is_file(self) -> bool:
        return os.path.exists(self.base) and not os.path.isdir(self.base)

    def base_exists(self) -> bool:
        return os.path.exists(self.base)

    def read(self, rel: str) -> bytes | None:
        try:
            with self.open_read(rel) as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.location(rel))

    def _write_temporary(self, rel: str, data: Payload, anonymous: bool = False) -> tuple[str, str, int]:
        target = self.location(rel)
        folder, name = os.path.split(target)
        if folder not in self._known_dirs:
            os.makedirs(folder, exist_ok=True)
            self._known_dirs.add(folder)
        tmp = os.path.join(folder, temporary_name(name, anonymous=anonymous))
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
                "which cannot detect two writers racing on the same name",
                self.base,
                why.strerror,
            )
            self._warned_no_links = True
        if os.path.exists(target):
            raise FileExistsError(errno.EEXIST, "file exists", target)
        os.rename(tmp, target)

    def replace(self, rel: str, data: Payload, anonymous: bool = False) -> int:
        tmp, target, size = self._write_temporary(rel, data, anonymous)
        try:
            os.replace(tmp, target)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return size

    def overwrite(self, rel: str, data: bytes) -> int:
        return self.replace(rel, data, anonymous=True)  # a rename; the temporary does not carry the name

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
                raise StorageError(
                    f"{path} is not a regular file (a FIFO, device or socket stands in its place): "
                    "move it out of the experiment folder"
                )
            if hasattr(os, "O_NONBLOCK"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise


def _unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


class FsspecBackend(Backend):
    """Any fsspec filesystem: exclusive create, or temporary, existence check, move (see the module docstring).

    ``exclusive_create``: whether to publish with ``"xb"`` (default: for :data:`EXCLUSIVE_CREATE_PROTOCOLS`).
    """

    check_then_move_is_safe = False
    """Whether :meth:`_lock` makes check-then-move race-free (memory://, whose store is in one process)."""

    def __init__(self, fs: Any, base: str, exclusive_create: bool | None = None) -> None:
        self.fs = fs
        self.base = base.rstrip("/")
        self.url = fs.unstrip_protocol(self.base)
        self._known_dirs: set[str] = set()
        if exclusive_create is None:
            exclusive_create = bool(EXCLUSIVE_CREATE_PROTOCOLS.intersection(_protocols(fs)))
        self.exclusive_create = exclusive_create
        self._warned_check_then_move = False

    def _lock(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def location(self, rel: str) -> str:
        return self.fs.unstrip_protocol(self._path(rel))

    def base_is_file(self) -> bool:
        return bool(self.fs.isfile(self.base))

    def base_exists(self) -> bool:
        return bool(self.fs.exists(self.base))

    def read(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(rel))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def exists(self, rel: str) -> bool:
        return self.fs.isfile(self._path(rel))

    def _make_folder_of(self, target: str) -> tuple[str, str]:
        folder, _, name = target.rpartition("/")
        if folder not in self._known_dirs:
            self.fs.makedirs(folder, exist_ok=True)
            self._known_dirs.add(folder)
        return folder, name

    def _write_temporary(self, rel: str, data: Payload) -> tuple[str, str, int]:
        target = self._path(rel)
        folder, name = self._make_folder_of(target)
        tmp = f"{folder}/{temporary_name(name)}"
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.fs.pipe_file(tmp, bytes(data))
            return tmp, target, len(data)
        with self.fs.open(tmp, "wb") as f:
            size = _write_payload(f, data)
        return tmp, target, size

    def create(self, rel: str, data: Payload) -> int:
        if self.exclusive_create:
            size = self._create_exclusively(rel, data)
            if size is not None:
                return size
        return self._create_checked(rel, data)

    def _create_exclusively(self, rel: str, data: Payload) -> int | None:
        """Publish with ``"xb"``; None (and exclusive create off from now on) if the filesystem refuses it."""
        target = self._path(rel)
        self._make_folder_of(target)
        with _spooled(data) as (source, size):
            if size == 0:
                return self._create_empty(rel, target)
            try:
                f = self.fs.open(target, "xb")
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, "file exists", self.location(rel)) from None
            except (NotImplementedError, ValueError) as why:
                self._fall_back_to_check_then_move(why)
                return None
            _upload(source, f, self.location(rel))
        return size

    def _create_empty(self, rel: str, target: str) -> int:
        """An empty object, by a conditional write too: s3fs commits an empty ``"xb"`` file as a plain touch,
        which would overwrite; ``pipe_file(mode="create")`` is its conditional PUT (a check-then-write
        elsewhere, fsspec's default)."""
        try:
            self.fs.pipe_file(target, b"", mode="create")
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "file exists", self.location(rel)) from None
        return 0

    def _fall_back_to_check_then_move(self, why: Exception) -> None:
        self.exclusive_create = False
        self._warn_check_then_move(f"this filesystem refuses exclusive create ({type(why).__name__}: {why})")

    def _warn_check_then_move(self, why: str) -> None:
        if not self._warned_check_then_move:
            logger.warning(
                "%s: %s; publishing falls back to check-then-move, which cannot detect two writers "
                "racing on the same name",
                self.url,
                why,
            )
            self._warned_check_then_move = True

    def _create_checked(self, rel: str, data: Payload) -> int:
        """Temporary, existence check, move (two writers racing within that window are not detected)."""
        if not self.check_then_move_is_safe:
            self._warn_check_then_move("exclusive create is not used on this filesystem")
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

    def overwrite(self, rel: str, data: bytes) -> int:
        target = self._path(rel)
        self._make_folder_of(target)
        with self._lock():
            self.fs.pipe_file(target, bytes(data))  # one PUT on object stores
        return len(data)

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


@contextmanager
def _spooled(data: Payload) -> Iterator[tuple[IO[bytes], int]]:
    """The payload as (a readable binary file at its start, its size); a function payload is run first."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield io.BytesIO(data), len(data)
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        size = _write_payload(spool, data)
        spool.seek(0)
        yield spool, size


def _upload(source: IO[bytes], target: Any, where: str) -> None:
    """Copy ``source`` into the exclusively created ``target`` and commit it; on failure commit nothing."""
    try:
        shutil.copyfileobj(source, target, 8 << 20)
    except BaseException:
        _abandon(target, where)
        raise
    try:
        target.close()  # the conditional write: FileExistsError if another writer won
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "file exists", where) from None


def _abandon(target: Any, where: str) -> None:
    """Drop a half-uploaded exclusive create without committing it (fsspec's buffered files commit on close)."""
    try:
        discard = getattr(target, "discard", None)
        if discard is not None:
            discard()
        target.closed = True  # AbstractBufferedFile.close() then does nothing
    except (AttributeError, OSError) as e:
        logger.warning("%s: could not abandon a failed upload cleanly (%s)", where, e)


def _protocols(fs: Any) -> tuple[str, ...]:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


class MemoryBackend(FsspecBackend):
    """fsspec's ``memory://`` filesystem: one store per process, guarded by one process-wide lock.

    Publishing is check-then-move under the lock, which covers every user of the store (its ``"xb"`` would
    show an empty file to readers while the upload runs)."""

    check_then_move_is_safe = True
    shared_across_processes = False

    def __init__(self, fs: Any, base: str) -> None:
        super().__init__(fs, base, exclusive_create=False)

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
        path = url[len("file://") :] if url.startswith("file://") else url
        return LocalBackend(os.path.expanduser(path))
    fs, path = _filesystem_of(url)
    protocols = _protocols(fs)
    if "file" in protocols or "local" in protocols:
        return LocalBackend(path)
    if "memory" in protocols:
        return MemoryBackend(fs, path)
    return FsspecBackend(fs, path)


def location_exists(url: str) -> bool:
    """Whether a file or folder exists at ``url`` (a path or any fsspec URL)."""
    return backend_for(url).base_exists()


def _filesystem_of(url: str) -> tuple[Any, str]:
    """fsspec's filesystem and path for ``url``; StorageError if its protocol is unknown or not installed."""
    import fsspec  # only here: importing fsspec costs ~0.15 s of start-up that local jobs do not need

    protocol = url.partition("://")[0]
    # s3fs, gcsfs and adlfs keep folder listings, and answer existence from them, until this process writes
    # there: another job's new shards and checkpoints would stay invisible. Always ask the store.
    options = {"use_listings_cache": False} if protocol in EXCLUSIVE_CREATE_PROTOCOLS else {}
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError as e:
        extra = EXTRAS.get(protocol)
        how = (
            f"pip install 'advprover[{extra}]'"
            if extra
            else f"install the fsspec filesystem package for {protocol}:// ({e})"
        )
        raise StorageError(f"{url}: the {protocol}:// filesystem is not installed; {how}") from None
    except ValueError as e:
        raise StorageError(
            f"{url}: {e} (use a local folder, file://, or an fsspec URL such as s3://bucket/exp)"
        ) from None
