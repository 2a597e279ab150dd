"""Versioned model checkpoints: weights first, then the metadata that makes a version visible.

A version ``v`` of checkpoint ``name`` is up to three files in ``checkpoints/<name>/``:

* ``<v:08d>-<token>.safetensors``: the weights (tensors only) with the caller's JSON metadata in the
  safetensors header (see :func:`save_checkpoint_file`): a self-contained file, read without unpickling;
* ``<v:08d>-<token>.extras.pt``: optional extras (e.g. an optimizer's state), saved with ``torch.save`` and
  loaded with ``weights_only=True``; only :meth:`CheckpointStore.load_with_extras` reads it;
* ``<v:08d>.json``: the sidecar (version, time, the names and sizes of both files, the caller's metadata).
  It is published last and never overwritten: it is the commit point. A version without it does not
  exist, so files left by a publisher killed in between are invisible (and removed by :meth:`retain`).

Names read from a sidecar are checked against these patterns (version included) before any file is opened
or deleted: a sidecar that names anything else is a damaged version, never followed.

Legacy versions (format 1: ``<v:08d>-<token>.pt``, a ``torch.save`` of the state dict and the metadata,
the extras as non-tensor entries of the state dict) still load: tensors as weights, the other entries as
extras.

``latest.json`` holds a recent version as a hint; :meth:`CheckpointStore.latest` reads it, then probes the
following versions, and falls back to a listing if the hint names no version. Loading the latest version
falls back to the newest older one that loads when the newest is damaged (missing or truncated files),
with a warning naming it.

torch and safetensors are imported only when weights are saved or loaded, so that jobs that only move
shards start fast.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from core.errors import CheckpointConflictError, CheckpointError, StorageError
from core.storage.backend import backend_for, is_temporary
from core.storage.root import CHECKPOINTS_DIR, CONFIG_FILE, ExperimentRoot, check_name, json_bytes, json_copy, now
from core.storage.shards import producer_info

logger = logging.getLogger(__name__)

FILE_FORMAT = "advprover-checkpoint"
FILE_FORMAT_VERSION = 2  # safetensors with the metadata in its header
LEGACY_FORMAT_VERSION = 1  # a torch.save of {"format", "format_version", "meta", "state_dict"}
WEIGHTS_SUFFIX = ".safetensors"
EXTRAS_SUFFIX = ".extras.pt"
LEGACY_SUFFIX = ".pt"
_HINT = "latest.json"
_FILE_NAME = re.compile(r"(?P<version>[0-9]{8})-[0-9a-f]{8}(?P<suffix>\.safetensors|\.extras\.pt|\.pt)")
_WEIGHTS_SUFFIXES = (WEIGHTS_SUFFIX, LEGACY_SUFFIX)
_SAFETENSORS_HEADER_LIMIT = 100 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointInfo:
    """A published version: its number, the publisher's metadata, the weights' path, publish time and size,
    and the path of its extras file (``None`` if it has none, or keeps them inside legacy weights)."""

    version: int
    meta: dict[str, Any]
    path: str
    time: float = 0.0
    size: int = 0
    extras_path: str | None = None
    extras_size: int = 0


# --- file names ------------------------------------------------------------------------------------


def checkpoint_file_name(version: int, token: str, suffix: str) -> str:
    """``<version:08d>-<token><suffix>``, the name of a version's weights or extras file."""
    return f"{version:08d}-{token}{suffix}"


def check_file_name(name: Any, version: int, suffixes: tuple[str, ...]) -> str:
    """``name`` if it is a file name of version ``version`` with one of ``suffixes``; else ValueError."""
    match = _FILE_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None or int(match["version"]) != version or match["suffix"] not in suffixes:
        raise ValueError(f"file name {name!r} is not <{version:08d}>-<8 hex digits> with {' or '.join(suffixes)}")
    return name


def _version_of_file(name: str) -> int | None:
    match = _FILE_NAME.fullmatch(name)
    return int(match["version"]) if match else None


# --- encoding and decoding single files --------------------------------------------------------


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _safetensors_bytes(tensors: dict[str, Any], meta: dict[str, Any], where: str) -> bytes:
    import torch
    from safetensors.torch import save

    bad = sorted(k for k, v in tensors.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise StorageError(
            f"{where}: weights must be tensors only; {', '.join(bad[:5])} are not (put other state in the extras)"
        )
    header = {
        "format": FILE_FORMAT,
        "format_version": str(FILE_FORMAT_VERSION),
        "meta": json_bytes(meta, what=f"metadata of {where}").decode(),
    }
    # clone: safetensors refuses tensors sharing storage (tied weights); loading fills both again
    return save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=header)


def _torch_bytes(obj: Any) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _safetensors_header(data: bytes, where: str) -> dict[str, Any]:
    length = int.from_bytes(data[:8], "little")
    if length > _SAFETENSORS_HEADER_LIMIT:
        raise CheckpointError(f"{where}: not a checkpoint file (a safetensors header of {length} bytes)")
    if 8 + length > len(data):
        raise CheckpointError(
            f"{where}: truncated safetensors file ({len(data)} bytes, its header alone "
            f"needs {8 + length}); publish or copy it again"
        )
    try:
        header = json.loads(data[8 : 8 + length])
    except ValueError as error:
        raise CheckpointError(f"{where}: damaged safetensors header ({error})") from None
    return header if isinstance(header, dict) else {}


def _decode_safetensors(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors.torch import load

    marker = _safetensors_header(data, where).get("__metadata__") or {}
    if marker.get("format") != FILE_FORMAT:
        raise CheckpointError(
            f"{where}: a safetensors file, but not an advprover checkpoint "
            f"(no '{FILE_FORMAT}' format marker in its metadata)"
        )
    if marker.get("format_version") != str(FILE_FORMAT_VERSION):
        raise CheckpointError(
            f"{where}: checkpoint format version {marker.get('format_version')!r}, this code "
            f"reads {FILE_FORMAT_VERSION} (and legacy {LEGACY_FORMAT_VERSION})"
        )
    try:
        meta = json.loads(marker.get("meta", "{}"))
        tensors = load(data)
    except Exception as error:  # noqa: BLE001 - safetensors reports damage with its own error types
        raise CheckpointError(
            f"{where}: damaged or truncated safetensors file ({_first_line(error)}); publish or copy it again"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: its metadata is not a JSON object")
    return tensors, meta


def _decode_legacy(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    import torch

    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever a damaged or hostile file raises, report it as such
        raise CheckpointError(
            f"{where}: not a loadable checkpoint (weights_only load failed: {_first_line(error)})"
        ) from None
    if not (isinstance(obj, dict) and obj.get("format") == FILE_FORMAT and isinstance(obj.get("state_dict"), dict)):
        raise CheckpointError(f"{where}: not an advprover checkpoint file (no '{FILE_FORMAT}' format marker)")
    if obj.get("format_version") != LEGACY_FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: checkpoint format version {obj.get('format_version')!r}, this code "
            f"reads {FILE_FORMAT_VERSION} (and legacy {LEGACY_FORMAT_VERSION})"
        )
    state = obj["state_dict"]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    extras = {k: v for k, v in state.items() if not isinstance(v, torch.Tensor)}
    return tensors, obj.get("meta") or {}, extras


def decode_checkpoint(data: bytes, where: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(tensors, metadata, legacy extras or None) of a checkpoint file's bytes: safetensors (format 2) or a
    legacy ``.pt`` (format 1, whose non-tensor entries are its extras). CheckpointError names ``where``."""
    if len(data) >= 9 and data[8:9] == b"{":  # safetensors: a little-endian header length, then JSON
        tensors, meta = _decode_safetensors(data, where)
        return tensors, meta, None
    if data[:2] == b"PK" or data[:1] == b"\x80":  # a torch.save zip archive, or an old-style pickle
        return _decode_legacy(data, where)
    if not data:
        raise CheckpointError(f"{where}: empty file, not a checkpoint")
    raise CheckpointError(f"{where}: not a checkpoint file (neither safetensors nor a legacy torch .pt)")


def _decode_extras(data: bytes, where: str) -> dict[str, Any]:
    import torch

    try:
        extras = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever a damaged or hostile file raises, report it as such
        raise CheckpointError(f"{where}: unreadable extras (weights_only load failed: {_first_line(error)})") from None
    if not isinstance(extras, dict):
        raise CheckpointError(f"{where}: extras are not a dictionary")
    return extras


def _to_device(tensors: dict[str, Any], map_location: Any) -> dict[str, Any]:
    if map_location in (None, "cpu"):
        return tensors
    return {k: v.to(map_location) for k, v in tensors.items()}


# --- single checkpoint files ------------------------------------------------------------------


def save_checkpoint_file(path: str, tensors: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write a standalone ``.safetensors`` checkpoint (tensors, JSON metadata in its header) atomically."""
    if not path.endswith(WEIGHTS_SUFFIX):
        raise CheckpointError(f"{path}: checkpoint files are written as safetensors; name it *{WEIGHTS_SUFFIX}")
    meta = json_copy(meta or {}, what=f"metadata of checkpoint {path}")
    folder, _, name = path.rstrip("/").rpartition("/")
    backend_for(folder or ".").replace(name, _safetensors_bytes(tensors, meta, path))


def _read_file(path: str) -> bytes:
    folder, _, name = path.rstrip("/").rpartition("/")
    backend = backend_for(folder or ".")
    try:
        data = backend.read(name)
    except IsADirectoryError:
        data = None
    if data is None and backend.exists(name):
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file (nor an experiment root: it has no {CONFIG_FILE})"
        )
    if data is None:
        raise CheckpointError(f"checkpoint file {path} does not exist")
    return data


def load_checkpoint_file(path: str, map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint file: a ``.safetensors`` one, or a legacy ``.pt`` (its extras,
    e.g. a trainer's state, are left out)."""
    tensors, meta, _ = decode_checkpoint(_read_file(path), path)
    return _to_device(tensors, map_location), meta


def load_checkpoint(
    source: str, name: str, version: int | None = None, map_location: Any = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, metadata) from a checkpoint file, or from checkpoint ``name`` of an experiment root."""
    if backend_for(source).exists(CONFIG_FILE):
        tensors, info = CheckpointStore(ExperimentRoot.open(source), name).load(version, map_location)
        return tensors, info.meta
    if version is not None:
        raise CheckpointError(
            f"{source} is not an experiment root (no {CONFIG_FILE}): "
            f"version {version} cannot be chosen in a checkpoint file"
        )
    return load_checkpoint_file(source, map_location)


# --- the store ----------------------------------------------------------------------------------


class CheckpointStore:
    """The versions of one named checkpoint (e.g. ``prover``) in an experiment root."""

    def __init__(self, root: ExperimentRoot, name: str) -> None:
        self._backend = root.backend
        self.name = check_name(name, "checkpoint")
        self._folder = f"{CHECKPOINTS_DIR}/{name}"
        self._reported: set[int] = set()  # damaged versions already warned about (actors poll often)

    def _sidecar(self, version: int) -> str:
        return f"{self._folder}/{version:08d}.json"

    # --- publishing ---------------------------------------------------------------------------------

    def publish(
        self, tensors: dict[str, Any], meta: dict[str, Any] | None = None, extras: dict[str, Any] | None = None
    ) -> CheckpointInfo:
        """Publish the next version: weights (and extras), then metadata (the commit point), then the hint.

        ``tensors``: the weights (tensors only). ``extras``: anything else to keep with the version (e.g. an
        optimizer's state; tensors and plain values, loadable with ``torch.load(weights_only=True)``).
        """
        newest = self._newest()
        return self._publish_as(0 if newest is None else newest[0] + 1, tensors, meta or {}, extras)

    def _publish_as(
        self, version: int, tensors: dict[str, Any], meta: dict[str, Any], extras: dict[str, Any] | None = None
    ) -> CheckpointInfo:
        meta = json_copy(meta, what=f"metadata of checkpoint {self.name}")
        token = uuid.uuid4().hex[:8]
        weights = checkpoint_file_name(version, token, WEIGHTS_SUFFIX)
        extras_name = checkpoint_file_name(version, token, EXTRAS_SUFFIX) if extras is not None else None
        written = [f"{self._folder}/{weights}"]
        size = self._backend.create(written[0], _safetensors_bytes(tensors, meta, f"checkpoint {self.name}"))
        extras_size = None
        if extras_name is not None:
            written.append(f"{self._folder}/{extras_name}")
            extras_size = self._backend.create(written[1], _torch_bytes(extras))
        sidecar = {
            "version": version,
            "time": now(),
            "weights": weights,
            "size": size,
            "extras": extras_name,
            "extras_size": extras_size,
            "meta": meta,
            "producer": producer_info(),
        }
        try:
            self._backend.create(self._sidecar(version), json_bytes(sidecar, what="checkpoint metadata", indent=2))
        except FileExistsError:
            for path in written:
                self._backend.remove(path)
            raise CheckpointConflictError(
                f"checkpoint {self.name}: version {version} already exists at "
                f"{self._backend.location(self._sidecar(version))}: another job publishes this checkpoint "
                "(two trainers started for one model?). Run one publisher per checkpoint name"
            ) from None
        self._backend.replace(f"{self._folder}/{_HINT}", json_bytes({"version": version}, what="hint"))
        logger.info("checkpoint %s: published version %d", self.name, version)
        return self._info_from(sidecar)

    # --- metadata -------------------------------------------------------------------------------------

    def _info_from(self, sidecar: dict[str, Any]) -> CheckpointInfo:
        extras = sidecar.get("extras")
        return CheckpointInfo(
            version=sidecar["version"],
            meta=sidecar["meta"],
            path=self._backend.location(f"{self._folder}/{sidecar['weights']}"),
            time=sidecar["time"],
            size=sidecar["size"],
            extras_path=self._backend.location(f"{self._folder}/{extras}") if extras else None,
            extras_size=int(sidecar.get("extras_size") or 0),
        )

    def _read_sidecar(self, version: int) -> dict[str, Any] | None:
        """The sidecar of ``version`` (None if there is none); CheckpointError if it is damaged, including
        when a file name in it is not one of this version's names (it is then never followed)."""
        data = self._backend.read(self._sidecar(version))
        if data is None:
            return None
        try:
            sidecar = json.loads(data)
            if sidecar["version"] != version or not isinstance(sidecar["meta"], dict):
                raise ValueError("version or meta field is wrong")
            check_file_name(sidecar["weights"], version, _WEIGHTS_SUFFIXES)
            if sidecar.get("extras") is not None:
                check_file_name(sidecar["extras"], version, (EXTRAS_SUFFIX,))
                int(sidecar["extras_size"])
            float(sidecar["time"]), int(sidecar["size"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"{self._backend.location(self._sidecar(version))}: damaged checkpoint metadata ({e})"
            ) from None
        return sidecar

    def _sidecar_or_damage(self, version: int) -> dict[str, Any] | CheckpointError | None:
        try:
            return self._read_sidecar(version)
        except CheckpointConflictError:
            raise
        except CheckpointError as error:
            return error

    def info(self, version: int) -> CheckpointInfo:
        """The published version ``version``; CheckpointError if it does not exist or is damaged."""
        sidecar = self._read_sidecar(version)
        if sidecar is None:
            raise CheckpointError(
                f"checkpoint {self.name} has no version {version} in {self._backend.url} "
                f"(versions: {self.versions() or 'none'})"
            )
        return self._info_from(sidecar)

    def _newest(self) -> tuple[int, dict[str, Any] | CheckpointError] | None:
        """The newest version number with a sidecar, and that sidecar (or its damage): the hint, then
        probing forward; a listing only if the hint is unusable."""
        found = None
        hint = self._read_hint()
        if hint is not None and (sidecar := self._sidecar_or_damage(hint)) is not None:
            found = (hint, sidecar)
        if found is None:
            versions = self.versions()
            if not versions:
                return None
            sidecar = self._sidecar_or_damage(versions[-1])
            if sidecar is None:  # removed since the listing: only retention does that, and never the newest
                return self._newest()
            found = (versions[-1], sidecar)
        while (newer := self._sidecar_or_damage(found[0] + 1)) is not None:
            found = (found[0] + 1, newer)
        return found

    def latest(self) -> CheckpointInfo | None:
        """The newest complete version (hint, then probing forward; a listing only if the hint is unusable).
        A newest version with damaged metadata is skipped with a warning (the one before it is given)."""
        newest = self._newest()
        if newest is None:
            return None
        version, sidecar = newest
        if isinstance(sidecar, dict):
            return self._info_from(sidecar)
        self._report_damage(version, f"newest version {version} is damaged ({sidecar}); using the newest older one")
        return self._older_readable(version)

    def _report_damage(self, version: int, message: str) -> None:
        """A warning the first time this store meets damaged ``version``, a debug line afterwards."""
        level = logging.DEBUG if version in self._reported else logging.WARNING
        self._reported.add(version)
        logger.log(level, "checkpoint %s: %s", self.name, message)

    def _older_readable(self, version: int) -> CheckpointInfo | None:
        for older in reversed([v for v in self.versions() if v < version]):
            sidecar = self._sidecar_or_damage(older)
            if isinstance(sidecar, dict):
                return self._info_from(sidecar)
        return None

    def damaged_versions(self) -> dict[int, str]:
        """Every published version whose metadata is damaged or whose files are missing or of the wrong size,
        with the reason (a listing, then one size call per file: for status tools, not for polling)."""
        damaged: dict[int, str] = {}
        for version in self.versions():
            sidecar = self._sidecar_or_damage(version)
            if isinstance(sidecar, CheckpointError):
                damaged[version] = str(sidecar)
                continue
            if sidecar is None:
                continue
            sizes = [(sidecar["weights"], int(sidecar["size"]))]
            if sidecar.get("extras"):
                sizes.append((sidecar["extras"], int(sidecar["extras_size"])))
            for name, expected in sizes:
                found = self._backend.size(f"{self._folder}/{name}")
                if found != expected:
                    damaged[version] = (
                        f"{name} is missing"
                        if found is None
                        else f"{name} has {found} bytes, its metadata says {expected}: truncated"
                    )
                    break
        return damaged

    def _read_hint(self) -> int | None:
        data = self._backend.read(f"{self._folder}/{_HINT}")
        try:
            version = json.loads(data)["version"] if data is not None else None
        except (ValueError, KeyError, TypeError):
            return None
        return version if type(version) is int and version >= 0 else None

    # --- loading ------------------------------------------------------------------------------------------

    def load(
        self, version: int | None = None, map_location: Any = "cpu", *, fallback: bool | None = None
    ) -> tuple[dict[str, Any], CheckpointInfo]:
        """(tensors, info) of ``version`` (default: the latest); the extras file is not read.

        ``fallback`` (default: when ``version`` is None): if that version's files are missing, truncated or
        unreadable, load the newest older version that loads instead, with a warning naming the damaged
        one. CheckpointError if there is none.
        """
        tensors, _, info = self._load(version, map_location, fallback, with_extras=False)
        return tensors, info

    def load_with_extras(
        self, version: int | None = None, map_location: Any = "cpu", *, fallback: bool | None = None
    ) -> tuple[dict[str, Any], dict[str, Any] | None, CheckpointInfo]:
        """(tensors, extras or None, info), as :meth:`load`; both files must load for a version to do."""
        return self._load(version, map_location, fallback, with_extras=True)

    def _load(
        self, version: int | None, map_location: Any, fallback: bool | None, with_extras: bool
    ) -> tuple[dict[str, Any], dict[str, Any] | None, CheckpointInfo]:
        fallback = version is None if fallback is None else fallback
        info = self.latest() if version is None else self.info(version)
        if info is None:
            raise CheckpointError(f"checkpoint {self.name} has no version yet in {self._backend.url}")
        while True:
            try:
                tensors, extras = self._read_files(info, with_extras)
                return _to_device(tensors, map_location), extras, info
            except CheckpointError as error:
                older = self._older_readable(info.version) if fallback else None
                if older is None:
                    raise
                self._report_damage(
                    info.version,
                    f"version {info.version} is damaged ({error}); falling back to version {older.version}",
                )
                info = older

    def _read_checked(self, path: str, size: int, version: int, what: str) -> bytes:
        data = self._backend.read(f"{self._folder}/{path.rpartition('/')[2]}")
        if data is None:
            raise CheckpointError(
                f"{path}: {what} of version {version} are gone (deleted by retention while "
                "loading?); load the latest version again"
            )
        if len(data) != size:
            raise CheckpointError(f"{path}: {len(data)} bytes, its metadata says {size}: truncated")
        return data

    def _read_files(self, info: CheckpointInfo, with_extras: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
        data = self._read_checked(info.path, info.size, info.version, "weights")
        tensors, _, legacy_extras = decode_checkpoint(data, info.path)
        if not with_extras:
            return tensors, None
        if info.extras_path is None:
            return tensors, legacy_extras or None
        extras = self._read_checked(info.extras_path, info.extras_size, info.version, "extras")
        return tensors, _decode_extras(extras, info.extras_path)

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

    # --- retention ----------------------------------------------------------------------------------

    def retain(self, keep_last: int, grace_s: float) -> list[int]:
        """Delete all but the last ``keep_last`` versions; returns the deleted ones.

        A version is deleted only once its successor was published at least ``grace_s`` ago: until then a
        reader that saw it as the latest may still be loading it. Metadata goes first (the version
        disappears), then the weights and extras. Files no metadata refers to and temporaries, both older
        than ``grace_s`` (left by killed publishers), are removed too. A version whose metadata is damaged
        (unreadable, or naming files that are not its own) is reported and left alone, with its files.
        """
        if keep_last < 1:
            raise StorageError(f"checkpoint {self.name}: keep_last must be at least 1, got {keep_last}")
        sidecars, damaged = {}, set()
        for version in self.versions():
            sidecar = self._sidecar_or_damage(version)
            if isinstance(sidecar, CheckpointError):
                logger.warning(
                    "checkpoint %s: version %d is damaged and kept as it is: %s", self.name, version, sidecar
                )
                damaged.add(version)
            elif sidecar is not None:
                sidecars[version] = sidecar
        kept = sorted(sidecars)
        deleted = []
        for older, newer in zip(kept[:-keep_last], kept[1:]):  # noqa: RUF007 - pairs of the older versions only
            if now() - sidecars[newer]["time"] < grace_s:
                break
            self._backend.remove(self._sidecar(older))
            for name in _files_of(sidecars[older]):
                self._backend.remove(f"{self._folder}/{name}")
            deleted.append(older)
        if deleted:
            logger.info("checkpoint %s: deleted versions %s", self.name, deleted)
        referenced = {name for v, s in sidecars.items() if v not in deleted for name in _files_of(s)}
        self._remove_leftovers(referenced, damaged, grace_s)
        return deleted

    def _remove_leftovers(self, referenced: set[str], damaged: set[int], grace_s: float) -> None:
        for name in self._backend.listdir(self._folder):
            version = _version_of_file(name)
            leftover = version is not None and version not in damaged and name not in referenced
            if not (is_temporary(name) or leftover):
                continue
            age = self._backend.age_s(f"{self._folder}/{name}")
            if age is not None and age >= grace_s:
                self._backend.remove(f"{self._folder}/{name}")
                logger.info("checkpoint %s: removed leftover %s", self.name, name)


def _files_of(sidecar: dict[str, Any]) -> list[str]:
    """The (checked) file names a sidecar read by :meth:`CheckpointStore._read_sidecar` refers to."""
    return [name for name in (sidecar["weights"], sidecar.get("extras")) if name]
