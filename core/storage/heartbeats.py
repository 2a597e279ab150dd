"""Heartbeats: each job atomically replaces one small JSON file saying who it is, that it lives, and its counters.

``heartbeats/<role>-<rank>.json`` holds role, rank, host, pid, start time, last update, and the fields the
job passes to :meth:`Heartbeat.beat` (versions held, records in/out, rates...). Fields accumulate: a beat
that omits a field keeps its last value. A restarted job replaces its predecessor's file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from typing import Any

from core.errors import StorageError
from core.storage.backend import is_temporary
from core.storage.root import HEARTBEATS_DIR, ExperimentRoot, check_name, json_bytes, json_copy, now

logger = logging.getLogger(__name__)

_RESERVED = ("role", "rank", "host", "pid", "start", "updated")


class Heartbeat:
    """The heartbeat of job ``role``/``rank`` (created at job start: its time is the job's start time)."""

    def __init__(self, root: ExperimentRoot, role: str, rank: int) -> None:
        check_name(role, "role")
        if type(rank) is not int or rank < 0:
            raise StorageError(f"heartbeat of role {role}: rank must be an integer >= 0, got {rank!r}")
        self._backend = root.backend
        self.path = f"{HEARTBEATS_DIR}/{role}-{rank}.json"
        self._identity = {"role": role, "rank": rank, "host": socket.gethostname(), "pid": os.getpid(), "start": now()}
        self._fields: dict[str, Any] = {}

    def beat(self, **fields: Any) -> dict[str, Any]:
        """Record ``fields`` (kept across beats) and the time; returns what was written."""
        clash = [k for k in fields if k in _RESERVED]
        if clash:
            raise StorageError(f"heartbeat {self.path}: fields {clash} are set by the heartbeat itself")
        self._fields.update(json_copy(fields, what=f"heartbeat fields of {self.path}"))
        document = {**self._identity, **self._fields, "updated": now()}
        self._backend.replace(self.path, json_bytes(document, what="heartbeat", indent=1))
        return document


def read_heartbeats(root: ExperimentRoot) -> list[dict[str, Any]]:
    """Every job's last heartbeat, sorted by role then rank (unreadable files are logged and skipped).

    Each gets ``file_age_s``: the file's age by the storage's clock, a second opinion on ``updated`` (the
    writing host's clock) where clocks disagree.
    """
    beats = []
    for name in root.backend.listdir(HEARTBEATS_DIR):
        if is_temporary(name) or not name.endswith(".json"):
            continue
        data = root.backend.read(f"{HEARTBEATS_DIR}/{name}")
        if data is None:
            continue
        try:
            beat = json.loads(data)
            _check_beat(beat)
        except ValueError as e:
            logger.warning("skipping unreadable heartbeat %s: %s", root.backend.location(f"{HEARTBEATS_DIR}/{name}"), e)
            continue
        beat["file_age_s"] = root.backend.age_s(f"{HEARTBEATS_DIR}/{name}")
        beats.append(beat)
    return sorted(beats, key=lambda b: (str(b["role"]), b["rank"] if isinstance(b["rank"], int) else -1))


def _check_beat(beat: Any) -> None:
    """ValueError unless ``beat`` is a heartbeat object whose identity and times have their types."""
    if not isinstance(beat, dict) or not all(k in beat for k in _RESERVED):
        raise ValueError("not a heartbeat object")
    if not (isinstance(beat["role"], str) and isinstance(beat["host"], str)):
        raise ValueError("role and host must be strings")
    if type(beat["rank"]) is not int or beat["rank"] < 0 or type(beat["pid"]) is not int:
        raise ValueError("rank and pid must be integers (rank >= 0)")
    for key in ("start", "updated"):
        value = beat[key]
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number of seconds, not {value!r}")
