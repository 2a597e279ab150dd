"""One launcher per experiment, across hosts, and no job left running without one.

The launcher holds ``DIR/runs/launcher.lock``: a JSON file naming its host, pid, a random token and the
time of its last *beat*. It is created exclusively (``O_EXCL``: of two launchers racing, one wins) and
refreshed every few seconds. Another launcher counts it as held when its holder is alive: on the same host,
when that pid is alive; on another host (the experiment folder on shared storage), when its beat is
younger than :data:`LOCK_STALE_S`. A launcher removes the lock when it ends, but only while the lock is
still its own (same token).

Local jobs watch their launcher (:func:`launcher_gone`): when it dies (``kill -9``, a crash), they finish
their current step, commit and exit, instead of running on unsupervised. Before a launcher resumes an
experiment, :func:`wait_for_earlier_jobs` asks jobs still beating from an earlier launcher to stop and
waits for them, so that it never starts a twin beside a live job.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UsageError

logger = logging.getLogger(__name__)

LOCK_FILE = "launcher.lock"
LOCK_STALE_S = 30.0
"""A lock from another host whose beat is older than this is taken as left by a dead launcher."""
LAUNCHER_PID_ENV = "ADVPROVER_LAUNCHER_PID"
"""Set in a local job's environment: the pid of the launcher that supervises it."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0: no /proc needed)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's content, or None when there is none (an unreadable lock counts as none)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def holder_alive(holder: dict[str, Any] | None, now: float | None = None) -> bool:
    """Whether the launcher named by a lock is still running (see the module doc)."""
    if holder is None:
        return False
    if holder.get("host") == socket.gethostname():
        pid = holder.get("pid")
        return type(pid) is int and pid_alive(pid)
    beat = holder.get("beat")
    if not isinstance(beat, (int, float)):
        return False
    return ((time.time() if now is None else now) - float(beat)) < LOCK_STALE_S


def refuse_if_held(folder: Path, exp: str) -> None:
    """UsageError if a live launcher holds the lock of the experiment whose runs folder is ``folder``."""
    holder = read_lock(folder / LOCK_FILE)
    if holder_alive(holder):
        where = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "unknown"
        raise UsageError(
            f"a launcher ({where}) is already running {exp}; stop it first with ./launch.sh stop --exp {exp}"
        )


class LauncherLock:
    """The lock of one running launcher: acquired exclusively, beaten, released only while it is ours."""

    def __init__(self, folder: Path, exp: str, info: dict[str, Any]) -> None:
        self.path = folder / LOCK_FILE
        self.exp = exp
        self.token = uuid.uuid4().hex
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token, **info}
        self._beaten = 0.0

    def acquire(self) -> None:
        """Create the lock; replace a dead launcher's; UsageError if a live launcher holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                refuse_if_held(self.path.parent, self.exp)
                self.path.unlink(missing_ok=True)  # a dead launcher's lock
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self._content())
            self._beaten = time.monotonic()
            return
        raise UsageError(f"{self.path}: another launcher keeps taking this experiment's lock; run one launcher")

    def beat(self, every_s: float = 5.0) -> None:
        """Refresh the lock's beat (at most every ``every_s``); a lock taken over by another launcher is left."""
        if time.monotonic() - self._beaten < every_s:
            return
        self._beaten = time.monotonic()
        if not self.ours():
            logger.warning("%s no longer holds this launcher's token: another launcher took the experiment", self.path)
            return
        temporary = self.path.with_name(f".tmp-{self.token}-{LOCK_FILE}")
        temporary.write_text(self._content())
        os.replace(temporary, self.path)

    def ours(self) -> bool:
        holder = read_lock(self.path)
        return holder is not None and holder.get("token") == self.token

    def release(self) -> None:
        """Remove the lock if it is still ours (never another launcher's)."""
        if self.ours():
            self.path.unlink(missing_ok=True)

    def _content(self) -> str:
        return json.dumps({**self.info, "beat": time.time()})


def launcher_gone() -> int | None:
    """In a local job: the pid of its launcher once that launcher has died; None while it lives (or on SLURM)."""
    text = os.environ.get(LAUNCHER_PID_ENV, "")
    if not text.isdigit():
        return None
    pid = int(text)
    return None if pid_alive(pid) else pid


def job_alive(job: dict[str, Any]) -> bool:
    """Whether a job of the status report is alive: a fresh heartbeat, and on this host a live pid."""
    if not job.get("alive"):
        return False
    pid = job.get("pid")
    if job.get("host") == socket.gethostname() and type(pid) is int:
        return pid_alive(pid)
    return True


def wait_for_earlier_jobs(
    exp: str,
    live_jobs: Callable[[], list[str]],
    ask_to_stop: Callable[[list[str]], object],
    wait_s: float,
    poll_s: float = 2.0,
) -> None:
    """Before a resume: ask jobs still running from an earlier launcher to stop, and wait for them to end.

    UsageError if some are still alive after ``wait_s`` (a twin must never be started beside a live job).
    """
    alive = live_jobs()
    if not alive:
        return
    print(
        f"jobs of an earlier launcher are still running ({', '.join(alive)}): asking them to finish their "
        f"step and exit; waiting up to {wait_s:.0f} s",
        flush=True,
    )
    ask_to_stop(alive)
    deadline = time.monotonic() + wait_s
    while alive and time.monotonic() < deadline:
        time.sleep(poll_s)
        alive = live_jobs()
    if alive:
        raise UsageError(
            f"jobs {', '.join(alive)} of an earlier launcher of {exp} are still running after "
            f"{wait_s:.0f} s (they were asked to stop); wait for them to end "
            f"(python -m jobs.status {exp}), then resume"
        )
