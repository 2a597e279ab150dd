"""Publishing on fsspec filesystems (rule P3 and the table "What each kind of storage guarantees" in
docs/PROTOCOL.md): exclusive create where the filesystem has it, the check-then-move fallback (with its
warning) where it refuses ``"xb"``, and a one-line error naming the extra when a filesystem is not installed."""

from __future__ import annotations

import importlib
import logging
import sys
import uuid
from typing import IO, Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from core.errors import StorageError
from core.storage.backend import FsspecBackend, backend_for, location_exists

TARGET = "streams/s/000000000000.zst"


def fresh_base() -> str:
    return f"/backend-test-{uuid.uuid4().hex}"  # the memory store is one per process: never share a base


class RacingFileSystem(MemoryFileSystem):
    """A memory filesystem on which another writer publishes the target just before our write lands."""

    racer = b"the other writer's shard"

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "x" in mode and not self.exists(path):
            self.pipe_file(path, self.racer)  # the other writer wins between our decision and our write
        return super()._open(path, mode, **kwargs)

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        if not self.exists(path2):
            self.pipe_file(path2, self.racer)  # the other writer wins between the check and the move
        super().mv(path1, path2, **kwargs)


class NoExclusiveCreate(MemoryFileSystem):
    """A filesystem refusing ``"xb"`` (as fsspec filesystems without exclusive create do)."""

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "x" in mode:
            raise NotImplementedError("File mode not supported")
        return super()._open(path, mode, **kwargs)


class ObjectStore(MemoryFileSystem):
    """Stands in for s3fs (by protocol) to check which backends publish with exclusive create by default."""

    protocol = ("s3", "s3a")


def names_in(backend: FsspecBackend, folder: str) -> list[str]:
    return sorted(backend.listdir(folder))


def test_exclusive_create_publishes_once_and_never_overwrites() -> None:
    backend = FsspecBackend(MemoryFileSystem(), fresh_base(), exclusive_create=True)
    assert backend.create(TARGET, b"first") == 5
    with pytest.raises(FileExistsError):
        backend.create(TARGET, b"second")
    assert backend.create("streams/s/000000000001.zst", lambda f: f.write(b"written by a function")) == 21
    assert backend.read(TARGET) == b"first"
    assert backend.read("streams/s/000000000001.zst") == b"written by a function"
    assert names_in(backend, "streams/s") == ["000000000000.zst", "000000000001.zst"]  # no temporaries


def test_exclusive_create_detects_a_writer_that_won_the_race() -> None:
    backend = FsspecBackend(RacingFileSystem(), fresh_base(), exclusive_create=True)
    with pytest.raises(FileExistsError):
        backend.create(TARGET, b"ours")
    assert backend.read(TARGET) == RacingFileSystem.racer  # the winner's file is intact
    assert names_in(backend, "streams/s") == ["000000000000.zst"]


def test_check_then_move_does_not_detect_that_race(caplog: pytest.LogCaptureFixture) -> None:
    """The twin of the test above: the documented limit of the fallback (why exclusive create is used)."""
    backend = FsspecBackend(RacingFileSystem(), fresh_base(), exclusive_create=False)
    with caplog.at_level(logging.WARNING, logger="core.storage.backend"):
        backend.create(TARGET, b"ours")
    assert backend.read(TARGET) == b"ours"  # the other writer's file was overwritten unnoticed
    assert "cannot detect two writers racing" in caplog.text


def test_a_filesystem_refusing_exclusive_create_falls_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    backend = FsspecBackend(NoExclusiveCreate(), fresh_base(), exclusive_create=True)
    with caplog.at_level(logging.WARNING, logger="core.storage.backend"):
        assert backend.create(TARGET, b"first") == 5
        with pytest.raises(FileExistsError):
            backend.create(TARGET, b"second")
        backend.create("streams/s/000000000001.zst", b"next")
    assert not backend.exclusive_create
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "refuses exclusive create" in warnings[0].getMessage()
    assert backend.read(TARGET) == b"first"
    assert names_in(backend, "streams/s") == ["000000000000.zst", "000000000001.zst"]


def test_a_payload_failing_half_way_publishes_nothing() -> None:
    backend = FsspecBackend(MemoryFileSystem(), fresh_base(), exclusive_create=True)

    def failing(f: IO[bytes]) -> None:
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        backend.create(TARGET, failing)
    assert not backend.exists(TARGET) and names_in(backend, "streams/s") == []
    assert backend.create(TARGET, b"whole") == 5 and backend.read(TARGET) == b"whole"


@pytest.mark.parametrize("filesystem, exclusive", [(ObjectStore, True), (MemoryFileSystem, False)])
def test_object_stores_publish_with_exclusive_create_by_default(filesystem: type, exclusive: bool) -> None:
    assert FsspecBackend(filesystem(), fresh_base()).exclusive_create is exclusive


def test_memory_urls_keep_the_locked_check_then_move(caplog: pytest.LogCaptureFixture) -> None:
    backend = backend_for(f"memory:/{fresh_base()}")
    with caplog.at_level(logging.WARNING, logger="core.storage.backend"):
        backend.create(TARGET, b"first")
        with pytest.raises(FileExistsError):
            backend.create(TARGET, b"second")
    assert not backend.exclusive_create and not backend.shared_across_processes
    assert caplog.text == ""  # the process-wide lock makes it race-free: nothing to warn about


def test_a_missing_filesystem_package_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # type: ignore[arg-type] # hidden: `import s3fs` fails
    monkeypatch.delitem(importlib.import_module("fsspec.registry")._registry, "s3", raising=False)  # its class
    with pytest.raises(StorageError) as caught:
        backend_for("s3://bucket/experiment")
    message = str(caught.value)
    assert message == "s3://bucket/experiment: the s3:// filesystem is not installed; pip install 'advprover[s3]'"


def test_an_s3_url_publishes_exclusively_and_keeps_no_listings() -> None:
    """Its twin with s3fs installed: exclusive create, and every listing asks the store (other jobs write)."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (the test extra installs it)")
    backend = backend_for(f"s3://bucket{fresh_base()}")
    assert isinstance(backend, FsspecBackend) and backend.exclusive_create
    assert backend.fs.dircache.use_listings_cache is False


def test_an_unknown_protocol_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="Protocol not known: nosuchfs"):
        backend_for("nosuchfs://bucket/experiment")


def test_location_exists_for_paths_and_urls(tmp_path: Any) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert location_exists(str(tmp_path / "model.safetensors"))
    assert location_exists(f"file://{tmp_path}/model.safetensors") and location_exists(f"file://{tmp_path}")
    assert not location_exists(str(tmp_path / "missing.safetensors"))
    assert not location_exists(f"file://{tmp_path}/missing.safetensors")
    base = fresh_base()
    backend_for(f"memory:/{base}").create("model.safetensors", b"x")
    assert location_exists(f"memory:/{base}/model.safetensors") and not location_exists(f"memory:/{base}/other")
