"""Versioned model checkpoints: weights first, then the metadata that makes a version visible.

A version ``v`` of checkpoint ``name`` is two files in ``checkpoints/<name>/``:

* ``<v:08d>-<token>.pt``: a *checkpoint file* (see :func:`save_checkpoint_file`): the state dict and the
  metadata, saved with ``torch.save``, loaded with ``weights_only=True`` (never unpickling code);
* ``<v:08d>.json``: the sidecar (version, time, weights file name and size, the caller's metadata). It is
  published last and never overwritten: it is the commit point. A version without it does not exist, so
  weights left by a publisher killed in between are invisible (and removed by :meth:`retain`).

``latest.json`` holds a recent version as a hint; :meth:`CheckpointStore.latest` reads it, then probes the
following versions, and falls back to a listing if the hint names no version.

torch is imported only when weights are saved or loaded, so that jobs that only move shards start fast.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import IO, Any

from core.errors import CheckpointConflictError, CheckpointError, StorageError
from core.storage.backend import backend_for, is_temporary
from core.storage.root import CHECKPOINTS_DIR, CONFIG_FILE, ExperimentRoot, check_name, json_bytes, json_copy, now
from core.storage.shards import producer_info

logger = logging.getLogger(__name__)

FILE_FORMAT = "advprover-checkpoint"
FILE_FORMAT_VERSION = 1
_HINT = "latest.json"


@dataclass(frozen=True)
class CheckpointInfo:
    """A published version: its number, the publisher's metadata, the weights' path, publish time and size."""

    version: int
    meta: dict[str, Any]
    path: str
    time: float = 0.0
    size: int = 0


# --- single checkpoint files ------------------------------------------------------------------


def _checkpoint_object(state_dict: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {"format": FILE_FORMAT, "format_version": FILE_FORMAT_VERSION, "meta": meta, "state_dict": state_dict}


def _torch_save(obj: Any) -> Any:
    import torch

    return lambda f: torch.save(obj, f)


def _torch_load(f: IO[bytes], where: str, map_location: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    try:
        obj = torch.load(f, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever a damaged or hostile file raises, report it as such
        raise CheckpointError(f"{where}: not a loadable checkpoint (weights_only load failed: {e})") from None
    if not (isinstance(obj, dict) and obj.get("format") == FILE_FORMAT and isinstance(obj.get("state_dict"), dict)):
        raise CheckpointError(f"{where}: not an advprover checkpoint file (no '{FILE_FORMAT}' format marker)")
    if obj.get("format_version") != FILE_FORMAT_VERSION:
        raise CheckpointError(f"{where}: checkpoint format version {obj.get('format_version')!r}, "
                              f"this code reads {FILE_FORMAT_VERSION}")
    return obj["state_dict"], obj.get("meta") or {}


def save_checkpoint_file(path: str, state_dict: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write a standalone checkpoint file (state dict + JSON metadata) atomically, replacing any old one."""
    meta = json_copy(meta or {}, what=f"metadata of checkpoint {path}")
    folder, _, name = path.rstrip("/").rpartition("/")
    backend_for(folder or ".").replace(name, _torch_save(_checkpoint_object(state_dict, meta)))


def load_checkpoint_file(path: str, map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, metadata) of a checkpoint file: one from :func:`save_checkpoint_file` or a store's .pt."""
    folder, _, name = path.rstrip("/").rpartition("/")
    backend = backend_for(folder or ".")
    try:
        with backend.open_read(name) as f:
            return _torch_load(f, path, map_location)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint file (nor an experiment root: "
                              f"it has no {CONFIG_FILE})") from None


def load_checkpoint(source: str, name: str, version: int | None = None,
                    map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, metadata) from a checkpoint file, or from checkpoint ``name`` of an experiment root."""
    if backend_for(source).exists(CONFIG_FILE):
        state_dict, info = CheckpointStore(ExperimentRoot.open(source), name).load(version, map_location)
        return state_dict, info.meta
    if version is not None:
        raise CheckpointError(f"{source} is not an experiment root (no {CONFIG_FILE}): "
                              f"version {version} cannot be chosen in a checkpoint file")
    return load_checkpoint_file(source, map_location)


# --- the store ----------------------------------------------------------------------------------


class CheckpointStore:
    """The versions of one named checkpoint (e.g. ``prover``) in an experiment root."""

    def __init__(self, root: ExperimentRoot, name: str) -> None:
        self._backend = root.backend
        self.name = check_name(name, "checkpoint")
        self._folder = f"{CHECKPOINTS_DIR}/{name}"

    def _sidecar(self, version: int) -> str:
        return f"{self._folder}/{version:08d}.json"

    def publish(self, state_dict: dict[str, Any], meta: dict[str, Any] | None = None) -> CheckpointInfo:
        """Publish the next version: weights, then metadata (the commit point), then the hint."""
        latest = self.latest()
        return self._publish_as(0 if latest is None else latest.version + 1, state_dict, meta or {})

    def _publish_as(self, version: int, state_dict: dict[str, Any], meta: dict[str, Any]) -> CheckpointInfo:
        meta = json_copy(meta, what=f"metadata of checkpoint {self.name}")
        weights = f"{version:08d}-{uuid.uuid4().hex[:8]}.pt"
        weights_path = f"{self._folder}/{weights}"
        size = self._backend.create(weights_path, _torch_save(_checkpoint_object(state_dict, meta)))
        sidecar = {"version": version, "time": now(), "weights": weights, "size": size, "meta": meta,
                   "producer": producer_info()}
        try:
            self._backend.create(self._sidecar(version), json_bytes(sidecar, what="checkpoint metadata", indent=2))
        except FileExistsError:
            self._backend.remove(weights_path)
            raise CheckpointConflictError(
                f"checkpoint {self.name}: version {version} already exists at "
                f"{self._backend.location(self._sidecar(version))}: another job publishes this checkpoint "
                "(two trainers started for one model?). Run one publisher per checkpoint name"
            ) from None
        self._backend.replace(f"{self._folder}/{_HINT}", json_bytes({"version": version}, what="hint"))
        logger.info("checkpoint %s: published version %d", self.name, version)
        return self._info_from(sidecar)

    def _info_from(self, sidecar: dict[str, Any]) -> CheckpointInfo:
        return CheckpointInfo(version=sidecar["version"], meta=sidecar["meta"],
                              path=self._backend.location(f"{self._folder}/{sidecar['weights']}"),
                              time=sidecar["time"], size=sidecar["size"])

    def _read_sidecar(self, version: int) -> dict[str, Any] | None:
        data = self._backend.read(self._sidecar(version))
        if data is None:
            return None
        try:
            sidecar = json.loads(data)
            if sidecar["version"] != version or not isinstance(sidecar["meta"], dict):
                raise ValueError("version or meta field is wrong")
            str(sidecar["weights"]), float(sidecar["time"]), int(sidecar["size"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{self._backend.location(self._sidecar(version))}: unreadable checkpoint metadata ({e})"
            ) from None
        return sidecar

    def info(self, version: int) -> CheckpointInfo:
        """The published version ``version``; CheckpointError if it does not exist."""
        sidecar = self._read_sidecar(version)
        if sidecar is None:
            raise CheckpointError(
                f"checkpoint {self.name} has no version {version} in {self._backend.url} "
                f"(versions: {self.versions() or 'none'})"
            )
        return self._info_from(sidecar)

    def latest(self) -> CheckpointInfo | None:
        """The newest complete version (hint, then probing forward; a listing only if the hint is unusable)."""
        sidecar = None
        hint = self._read_hint()
        if hint is not None:
            sidecar = self._read_sidecar(hint)
        if sidecar is None:
            versions = self.versions()
            if not versions:
                return None
            sidecar = self._read_sidecar(versions[-1])
            if sidecar is None:  # removed since the listing: only retention does that, and never the newest
                return self.latest()
        while (newer := self._read_sidecar(sidecar["version"] + 1)) is not None:
            sidecar = newer
        return self._info_from(sidecar)

    def _read_hint(self) -> int | None:
        data = self._backend.read(f"{self._folder}/{_HINT}")
        try:
            version = json.loads(data)["version"] if data is not None else None
        except (ValueError, KeyError, TypeError):
            return None
        return version if type(version) is int and version >= 0 else None

    def load(self, version: int | None = None, map_location: Any = "cpu") -> tuple[dict[str, Any], CheckpointInfo]:
        """(state dict, info) of ``version`` (default: the latest). CheckpointError if there is none."""
        if version is None:
            info = self.latest()
            if info is None:
                raise CheckpointError(f"checkpoint {self.name} has no version yet in {self._backend.url}")
        else:
            info = self.info(version)
        weights = f"{self._folder}/{info.path.rpartition('/')[2]}"
        size = self._backend.size(weights)
        if size is None:
            raise CheckpointError(f"{info.path}: weights of version {info.version} are gone (deleted by "
                                  "retention while loading?); load the latest version again")
        if size != info.size:
            raise CheckpointError(f"{info.path}: {size} bytes, its metadata says {info.size}: truncated")
        with self._backend.open_read(weights) as f:
            state_dict, _ = _torch_load(f, info.path, map_location)
        return state_dict, info

    def wait_for_newer(self, version: int | None, timeout_s: float, poll_s: float = 1.0) -> CheckpointInfo | None:
        """The latest version once it is newer than ``version`` (any, if None); None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.latest()
            if info is not None and (version is None or info.version > version):
                return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(poll_s, remaining))

    def versions(self) -> list[int]:
        """Every published version, oldest first (a listing)."""
        out = []
        for name in self._backend.listdir(self._folder):
            stem, dot, ext = name.partition(".")
            if dot and ext == "json" and stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def retain(self, keep_last: int, grace_s: float) -> list[int]:
        """Delete all but the last ``keep_last`` versions; returns the deleted ones.

        A version is deleted only once its successor was published at least ``grace_s`` ago: until then a
        reader that saw it as the latest may still be loading it. Metadata goes first (the version
        disappears), then the weights. Weights no metadata refers to and temporaries, both older than
        ``grace_s`` (left by killed publishers), are removed too.
        """
        if keep_last < 1:
            raise StorageError(f"checkpoint {self.name}: keep_last must be at least 1, got {keep_last}")
        versions = self.versions()
        sidecars = {v: s for v in versions if (s := self._read_sidecar(v)) is not None}
        kept = sorted(sidecars)
        deleted = []
        for older, newer in zip(kept[:-keep_last], kept[1:]):
            if now() - sidecars[newer]["time"] < grace_s:
                break
            self._backend.remove(self._sidecar(older))
            self._backend.remove(f"{self._folder}/{sidecars[older]['weights']}")
            deleted.append(older)
        if deleted:
            logger.info("checkpoint %s: deleted versions %s", self.name, deleted)
        self._remove_leftovers({s["weights"] for v, s in sidecars.items() if v not in deleted}, grace_s)
        return deleted

    def _remove_leftovers(self, referenced: set[str], grace_s: float) -> None:
        for name in self._backend.listdir(self._folder):
            if not (is_temporary(name) or (name.endswith(".pt") and name not in referenced)):
                continue
            age = self._backend.age_s(f"{self._folder}/{name}")
            if age is not None and age >= grace_s:
                self._backend.remove(f"{self._folder}/{name}")
                logger.info("checkpoint %s: removed leftover %s", self.name, name)
