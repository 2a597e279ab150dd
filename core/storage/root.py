"""The experiment root: a folder (any fsspec URL) holding one experiment's frozen configuration and files.

Layout (see docs/PROTOCOL.md)::

    config.json                          frozen configuration, written once
    streams/<stream>/<seq:012d>.zst      shards of a stream, numbered 0, 1, 2, ...
    streams/<stream>/low_water.json      pruning mark: every shard below it was removed
    checkpoints/<name>/<ver:08d>.json    checkpoint metadata (the commit point of a version)
    checkpoints/<name>/<ver:08d>-<token>.safetensors   its weights (+ .extras.pt: extras; legacy: one .pt)
    checkpoints/<name>/latest.json       hint: a recent version (never trusted blindly)
    heartbeats/<role>-<rank>.json        liveness and counters of each job
    stop.json                            a stop request: jobs end after their current unit of work
    quarantine/<stream>/<seq:012d>-<token>.zst (+ .reason.json)   damaged shards, as found
    tensorboard/<job>/events.out.tfevents.*   live scalars of each job (core/metrics.py)

``tensorboard/`` is outside the protocol: its files are not records, no job reads another job's, and nothing
there is published exclusively. A job on a remote root writes its event files locally and uploads them here
with :meth:`ExperimentRoot.upload_metric_file`, again and again as they grow (each process has its own file
names, so the overwrite only ever replaces that process's earlier, shorter upload).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import ConfigError, ExperimentConfigMismatch, StorageError
from core.storage.backend import Backend, LocalBackend, backend_for, is_temporary

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
STREAMS_DIR = "streams"
CHECKPOINTS_DIR = "checkpoints"
HEARTBEATS_DIR = "heartbeats"
QUARANTINE_DIR = "quarantine"
STOP_FILE = "stop.json"
METRICS_DIR = "tensorboard"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(name: str, what: str) -> str:
    """A stream, checkpoint or role name: letters, digits, ``.``, ``_``, ``-``; not starting with a dot."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise StorageError(
            f"invalid {what} name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def _file_name(name: str) -> bool:
    """Whether ``name`` is a plain file name: not empty, not hidden, no folder separator."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


def json_bytes(value: Any, *, what: str, indent: int | None = None) -> bytes:
    """Strict JSON (no NaN) as UTF-8; StorageError naming ``what`` if the value is not JSON."""
    try:
        text = json.dumps(value, indent=indent, sort_keys=indent is not None, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise StorageError(f"{what} is not JSON-serializable: {e}") from None
    return text.encode()


def json_copy(value: Any, *, what: str) -> Any:
    """The value as it will read back from JSON (tuples become lists, keys strings)."""
    return json.loads(json_bytes(value, what=what))


class ExperimentRoot:
    """One experiment's storage. Create with :meth:`create_or_open` or :meth:`open`."""

    def __init__(self, backend: Backend, config: dict[str, Any]) -> None:
        self.backend = backend
        self._config = config

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def config(self) -> dict[str, Any]:
        """The frozen configuration (a fresh copy: editing it changes nothing)."""
        return json.loads(json.dumps(self._config))

    def __repr__(self) -> str:
        return f"ExperimentRoot({self.url!r})"

    @classmethod
    def create_or_open(cls, url: str, config: Mapping[str, Any]) -> ExperimentRoot:
        """Open the experiment at ``url``, creating it with ``config`` if it does not exist.

        An existing experiment with a different configuration raises :class:`ExperimentConfigMismatch`
        naming the differing keys.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"experiment configuration must be a mapping, not {type(config).__name__}")
        try:
            wanted = json_copy(dict(config), what="experiment configuration")
        except StorageError as e:
            raise ConfigError(str(e)) from None
        backend = backend_for(url)
        try:
            backend.create(CONFIG_FILE, json_bytes(wanted, what="configuration", indent=2) + b"\n")
            logger.info("created experiment %s", backend.url)
            return cls(backend, wanted)
        except FileExistsError:
            pass
        existing = _read_config(backend)
        differences = config_differences(existing, wanted)
        if differences:
            raise ExperimentConfigMismatch(
                f"experiment {backend.url} was created with a different configuration; "
                f"differing keys: {'; '.join(differences)}. Use a new experiment folder, or the "
                f"configuration in {backend.location(CONFIG_FILE)}"
            )
        return cls(backend, existing)

    @classmethod
    def open(cls, url: str) -> ExperimentRoot:
        """Open an existing experiment; StorageError if there is none at ``url``."""
        backend = backend_for(url)
        return cls(backend, _read_config(backend))

    # --- stop requests (rule P19) -------------------------------------------------------------

    def request_stop(self, reason: str, jobs: list[str] | None = None) -> dict[str, Any]:
        """Ask the jobs named in ``jobs`` (every job if None) to end after their current unit of work."""
        named = None if jobs is None else sorted(jobs)
        for name in named or ():
            check_name(name, "job")
        request = {"time": now(), "reason": str(reason), "jobs": named}
        self.backend.replace(STOP_FILE, json_bytes(request, what="stop request", indent=1))
        return request

    def stop_request(self) -> dict[str, Any] | None:
        """The pending stop request (time, reason, jobs: names or None for all), or None."""
        data = self.backend.read(STOP_FILE)
        if data is None:
            return None
        try:
            request = json.loads(data)
            jobs = request.get("jobs")
            if jobs is not None and not (isinstance(jobs, list) and all(isinstance(j, str) for j in jobs)):
                raise ValueError("jobs must be a list of names or null")
        except (ValueError, AttributeError) as e:  # unreadable: treat as a request to stop everything
            logger.warning(
                "%s is unreadable (%s): treated as a request to stop every job", self.backend.location(STOP_FILE), e
            )
            return {"time": None, "reason": "unreadable stop request", "jobs": None}
        return request

    def stop_requested(self, job: str) -> bool:
        """Whether job ``job`` (e.g. ``prover-actor-00``) is asked to stop."""
        request = self.stop_request()
        return request is not None and (request["jobs"] is None or job in request["jobs"])

    def clear_stop(self) -> bool:
        """Withdraw the stop request (a launcher resuming the experiment); False if there was none."""
        return self.backend.remove(STOP_FILE)

    def streams(self, prefix: str = "") -> list[str]:
        """Names of the streams that exist (a listing: fine for status tools, not for polling)."""
        names = self.backend.listdir(STREAMS_DIR)
        return sorted(n for n in names if n.startswith(prefix) and not is_temporary(n) and _NAME.fullmatch(n))

    @property
    def local_folder(self) -> str | None:
        """The experiment's folder when it is on a local (or NFS) filesystem; None for any other store."""
        return self.backend.base if isinstance(self.backend, LocalBackend) else None

    def created_at(self) -> float:
        """When the experiment was created (its configuration file's time; now if the store cannot say)."""
        age = self.backend.age_s(CONFIG_FILE)
        return time.time() - (age or 0.0)

    def checkpoint_names(self) -> list[str]:
        """Names of the checkpoint stores that exist (a listing)."""
        return sorted(n for n in self.backend.listdir(CHECKPOINTS_DIR) if _NAME.fullmatch(n))

    # --- metric files (outside the protocol: see the module docstring) ----------------------------

    @property
    def metrics_url(self) -> str:
        """The folder (path or URL) of every job's metric files, ``tensorboard/``."""
        return self.backend.location(METRICS_DIR)

    def metric_jobs(self) -> list[str]:
        """Names of the sub-folders of ``tensorboard/`` (a listing; a folder may hold no file yet)."""
        return sorted(n for n in self.backend.listdir(METRICS_DIR) if _NAME.fullmatch(n))

    def metric_files(self, job: str) -> list[str]:
        """Names of the files in ``tensorboard/<job>/`` (hidden ones, temporaries among them, left out)."""
        folder = f"{METRICS_DIR}/{check_name(job, 'job')}"
        return sorted(n for n in self.backend.listdir(folder) if _file_name(n))

    def download_metric_files(self, job: str, folder: str) -> list[str]:
        """Copy the files of ``tensorboard/<job>/`` into the local ``folder`` (created); their local paths."""
        os.makedirs(folder, exist_ok=True)
        paths = []
        for name in self.metric_files(job):
            data = self.backend.read(f"{METRICS_DIR}/{job}/{name}")
            if data is None:  # removed since the listing
                continue
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(data)
            paths.append(path)
        return paths

    def upload_metric_file(self, job: str, path: str) -> int:
        """Publish the local file ``path`` as ``tensorboard/<job>/<its name>``, replacing an earlier upload of
        that name (see :meth:`Backend.overwrite`); its size. StorageError for an empty or hidden name."""
        name = os.path.basename(path)
        if not _file_name(name):
            raise StorageError(f"cannot upload {path!r} as a metric file: its name must not be empty or start with '.'")
        with open(path, "rb") as f:
            data = f.read()
        return self.backend.overwrite(f"{METRICS_DIR}/{check_name(job, 'job')}/{name}", data)


RootKind = Literal["experiment", "empty", "occupied", "file"]


@dataclass(frozen=True)
class RootLocation:
    """What is at an experiment root's URL, before opening it (for launchers checking ``--exp``)."""

    url: str
    kind: RootKind
    """an experiment (it has a config.json); nothing, or an empty folder; a folder of other things; a file"""
    shared_across_processes: bool
    """False for ``memory://``: jobs in other processes cannot see it"""


def inspect_root(url: str) -> RootLocation:
    """What is at ``url`` (a path or any fsspec URL); StorageError if its filesystem is not installed."""
    backend = backend_for(url)
    kind: RootKind
    if backend.base_is_file():
        kind = "file"
    elif backend.exists(CONFIG_FILE):
        kind = "experiment"
    elif backend.listdir(""):
        kind = "occupied"
    else:
        kind = "empty"
    return RootLocation(backend.url, kind, backend.shared_across_processes)


def _read_config(backend: Backend) -> dict[str, Any]:
    data = backend.read(CONFIG_FILE)
    if data is None:
        raise StorageError(
            f"no experiment at {backend.url}: {backend.location(CONFIG_FILE)} does not exist "
            "(create the experiment first, e.g. by launching it)"
        )
    try:
        config = json.loads(data)
    except ValueError as e:
        raise StorageError(f"{backend.location(CONFIG_FILE)} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise StorageError(f"{backend.location(CONFIG_FILE)} does not hold a JSON object")
    return config


def config_differences(existing: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON values, by dotted key."""
    if isinstance(existing, dict) and isinstance(wanted, dict):
        out: list[str] = []
        for key in sorted(set(existing) | set(wanted)):
            name = f"{prefix}{key}"
            if key not in wanted:
                out.append(f"{name} (only in the existing configuration: {_short(existing[key])})")
            elif key not in existing:
                out.append(f"{name} (only in the given configuration: {_short(wanted[key])})")
            else:
                out.extend(config_differences(existing[key], wanted[key], f"{name}."))
        return out
    if existing == wanted and type(existing) is type(wanted):
        return []
    return [f"{prefix.rstrip('.') or '<root>'} (existing {_short(existing)}, given {_short(wanted)})"]


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def now() -> float:
    """Wall-clock time written into headers, metadata and heartbeats."""
    return time.time()
