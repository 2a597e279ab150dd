"""Running role jobs through submitit, and keeping them running: the job callable and the supervisor.

:class:`RoleJob` is what submitit runs (locally in a subprocess, or as a SLURM job): it sets the job's
environment (torch threads, the rendezvous of a data-parallel group), then calls the role's ``main`` with
the time left until the run's absolute deadline. It is :class:`submitit.helpers.Checkpointable`: on
preemption or a time limit submitit requeues it unchanged, and since every role resumes from what it
committed to the experiment root, nothing more needs saving.

:class:`Supervisor` submits one :class:`Slot` per role rank (a data-parallel trainer group is one slot,
restarted together), watches them, restarts a job that died with exponential backoff, and gives up on a
job that keeps dying, showing the tail of its log.

Only submitit's public API is used, plus one isolated helper (:func:`local_controller_pid`) for the one thing
it does not expose; local processes are found and signalled through psutil, not /proc (so macOS works too).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import submitit

from core.adversarial.topology import job_name
from core.storage import ExperimentRoot
from jobs._lock import LAUNCHER_PID_ENV

logger = logging.getLogger(__name__)

FINISHED, INTERRUPTED = "finished", "interrupted"  # what jobs._role.Runtime.finish returns
HEALTHY_UPTIME_S = 60.0  # a job that ran this long before dying starts a new series of failures
MAX_BACKOFF_S = 30.0
SLURM_KILL_WAIT_S = 300.0
CONTROLLER_WAIT_S = 10.0  # how long a killed local job's controller gets to exit by itself


# --- the job ------------------------------------------------------------------------------------


class RoleJob(submitit.helpers.Checkpointable):
    """One role job (or, with ``group_size > 1`` on SLURM, every task of a trainer group).

    ``rank`` None means: take it from submitit's job environment (the task's global rank).
    ``master`` (address, port) is the rendezvous of a local trainer group; on SLURM submitit's
    :class:`~submitit.helpers.TorchDistributedEnvironment` provides it.
    """

    def __init__(
        self,
        exp: str,
        role: str,
        rank: int | None,
        deadline: float,
        *,
        threads: int = 1,
        group_size: int = 1,
        master: tuple[str, int] | None = None,
        cluster: str = "local",
        log_level: str = "INFO",
    ) -> None:
        self.exp = exp
        self.role = role
        self.rank = rank
        self.deadline = deadline
        self.threads = threads
        self.group_size = group_size
        self.master = master
        self.cluster = cluster
        self.log_level = log_level
        self.launcher_pid = os.getpid() if cluster == "local" else None  # built in the launcher's process

    def __call__(self) -> str:
        from jobs._cli import configure_logging

        configure_logging(self.log_level)
        os.environ["ADVPROVER_THREADS"] = str(self.threads)
        if getattr(self, "launcher_pid", None):
            os.environ[LAUNCHER_PID_ENV] = str(self.launcher_pid)
        rank = self._environment()
        name = job_name(self.role, rank)
        remaining = self.deadline - time.time()
        if remaining <= 0:
            logger.info("%s: the run's deadline has passed, nothing to do", name)
            return FINISHED
        module = importlib.import_module(f"jobs.{self.role}")
        status = module.main(self.exp, rank=rank, minutes=remaining / 60)
        if status == INTERRUPTED and self.cluster != "local" and not self._asked_to_end(name):
            # SLURM sent SIGTERM without our asking: a requeue or preemption, followed by SIGKILL. Returning
            # now would write a result and make the job look finished while SLURM requeues it.
            logger.warning("%s: interrupted by SLURM; waiting to be requeued or killed", name)
            time.sleep(SLURM_KILL_WAIT_S)
            raise RuntimeError(f"{name} was interrupted by a signal and not killed; the supervisor restarts it")
        return str(status)

    def _environment(self) -> int:
        """Set the group's rendezvous variables; return this task's rank."""
        rank = self.rank
        if self.group_size > 1:
            if self.master is not None:  # local group: the launcher chose the address and port
                os.environ.update(
                    MASTER_ADDR=self.master[0],
                    MASTER_PORT=str(self.master[1]),
                    RANK=str(rank),
                    WORLD_SIZE=str(self.group_size),
                )
            else:
                environment = submitit.helpers.TorchDistributedEnvironment().export(
                    set_cuda_visible_devices=False, overwrite=True
                )
                rank = environment.rank
        elif rank is None:
            rank = submitit.JobEnvironment().global_rank
        if rank is None:
            raise RuntimeError(f"{self.role}: no rank given and none in the job environment")
        return rank

    def _asked_to_end(self, name: str) -> bool:
        return time.time() >= self.deadline - 5 or ExperimentRoot.open(self.exp).stop_requested(name)

    def __repr__(self) -> str:
        return f"RoleJob({self.role}, rank={self.rank}, group={self.group_size})"


# --- supervision ----------------------------------------------------------------------------------


@dataclass
class Slot:
    """A unit the supervisor keeps running: one job, or a trainer group's jobs (restarted together)."""

    role: str
    ranks: list[int]
    group_size: int = 1
    jobs: list[Any] = field(default_factory=list)
    started: float = 0.0
    next_start: float | None = 0.0  # when to (re)start; None while running or once done
    failures: int = 0  # consecutive failures
    restarts: int = 0
    done: bool = False
    outcome: str = ""
    last_error: str = ""

    @property
    def name(self) -> str:
        if len(self.ranks) == 1:
            return job_name(self.role, self.ranks[0])
        return f"{job_name(self.role, self.ranks[0])}..{self.ranks[-1]:02d}"

    @property
    def job_names(self) -> list[str]:
        return [job_name(self.role, r) for r in self.ranks]


class Supervisor:
    """Submits the slots' jobs through ``executor_for(role)``, restarts the dead, gives up on the hopeless."""

    def __init__(
        self,
        exp: str,
        slots: list[Slot],
        deadlines: dict[str, float],
        *,
        cluster: str,
        executor_for: Callable[[str], Any],
        threads_for: Callable[[str], int],
        max_failures: int = 5,
        log_level: str = "INFO",
    ) -> None:
        self.exp = exp
        self.root = ExperimentRoot.open(exp)
        self.slots = slots
        self.deadlines = deadlines
        self.cluster = cluster
        self.executor_for = executor_for
        self.threads_for = threads_for
        self.max_failures = max_failures
        self.log_level = log_level
        self.fatal: Slot | None = None

    # --- starting ---------------------------------------------------------------------------------

    def start_due(self) -> None:
        """Start every slot whose (re)start time has come; slots past their deadline are done."""
        now = time.time()
        due = [s for s in self.slots if not s.done and s.next_start is not None and s.next_start <= now]
        for slot in due:
            if self.deadlines[slot.role] - now <= 1 or self.root.stop_requested(slot.job_names[0]):
                slot.done, slot.next_start, slot.outcome = True, None, slot.outcome or FINISHED
        due = [s for s in due if not s.done]
        by_role: dict[str, list[Slot]] = {}
        for slot in due:
            by_role.setdefault(slot.role, []).append(slot)
        for role, slots in by_role.items():
            self._submit(role, slots)

    def _submit(self, role: str, slots: list[Slot]) -> None:
        executor = self.executor_for(role)
        deadline = self.deadlines[role]
        threads = self.threads_for(role)
        if self.cluster == "local":
            for slot in slots:
                master = ("127.0.0.1", free_port()) if slot.group_size > 1 else None
                slot.jobs = [
                    executor.submit(
                        RoleJob(
                            self.exp,
                            role,
                            rank,
                            deadline,
                            threads=threads,
                            group_size=slot.group_size,
                            master=master,
                            cluster="local",
                            log_level=self.log_level,
                        )
                    )
                    for rank in slot.ranks
                ]
                self._started(slot)
            return
        singles = [s for s in slots if s.group_size == 1]
        if singles:
            with executor.batch():  # one SLURM job array for a role's single jobs
                pending = [
                    executor.submit(
                        RoleJob(
                            self.exp,
                            role,
                            s.ranks[0],
                            deadline,
                            threads=threads,
                            cluster=self.cluster,
                            log_level=self.log_level,
                        )
                    )
                    for s in singles
                ]
            for slot, job in zip(singles, pending):
                slot.jobs = [job]
                self._started(slot)
        for slot in (s for s in slots if s.group_size > 1):  # a group: one job, one task per rank (its executor's)
            slot.jobs = [
                executor.submit(
                    RoleJob(
                        self.exp,
                        role,
                        None,
                        deadline,
                        threads=threads,
                        group_size=slot.group_size,
                        cluster=self.cluster,
                        log_level=self.log_level,
                    )
                )
            ]
            self._started(slot)

    def _started(self, slot: Slot) -> None:
        slot.started, slot.next_start = time.time(), None
        ids = ", ".join(str(j.job_id) for j in slot.jobs)
        logger.info("%s: %s (job %s)", slot.name, "restarted" if slot.restarts else "submitted", ids)

    # --- watching ---------------------------------------------------------------------------------

    def poll(self) -> None:
        """Check running slots; schedule restarts of failed ones; start what is due."""
        for slot in self.slots:
            if slot.done or slot.next_start is not None:
                continue
            finished = [job for job in slot.jobs if job.done()]
            if not finished:
                continue
            outcomes = [outcome_of(job) for job in finished]
            failed = [o for o in outcomes if o[0] == "failed"]
            if failed or (len(finished) < len(slot.jobs) and self._asked_to_restart(slot, outcomes)):
                if len(finished) < len(slot.jobs):
                    self.kill(slot)  # a group restarts together
                self._failed(slot, failed[0][1] if failed else "a member of the group ended early", finished)
            elif len(finished) == len(slot.jobs):
                self._ended(slot, outcomes)
        self.start_due()

    def _asked_to_restart(self, slot: Slot, outcomes: list[tuple[str, str]]) -> bool:
        return any(o[1] == INTERRUPTED for o in outcomes) and not self._should_end(slot)

    def _should_end(self, slot: Slot) -> bool:
        return time.time() >= self.deadlines[slot.role] - 5 or self.root.stop_requested(slot.job_names[0])

    def _ended(self, slot: Slot, outcomes: list[tuple[str, str]]) -> None:
        if all(o[1] == FINISHED for o in outcomes) or self._should_end(slot):
            slot.done, slot.outcome = True, outcomes[0][1]
            logger.info("%s: %s", slot.name, slot.outcome)
            return
        # interrupted by someone else's signal with time left: restart it, without counting a failure
        slot.restarts += 1
        slot.next_start = time.time()
        logger.warning("%s: interrupted before its deadline; restarting it", slot.name)

    def _failed(self, slot: Slot, error: str, finished: list[Any]) -> None:
        uptime = time.time() - slot.started
        slot.failures = 1 if uptime >= HEALTHY_UPTIME_S else slot.failures + 1
        slot.last_error = error
        if slot.failures > self.max_failures:
            self.fatal = slot
            slot.done, slot.outcome = True, "failed"
            logger.error("%s died %d times in a row; giving up", slot.name, slot.failures)
            return
        backoff = min(2.0 ** (slot.failures - 1), MAX_BACKOFF_S)
        slot.restarts += 1
        slot.next_start = time.time() + backoff
        logger.warning(
            "%s died after %.0f s (%s); restart %d in %.0f s",
            slot.name,
            uptime,
            one_line(error),
            slot.restarts,
            backoff,
        )

    # --- ending -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(not s.done for s in self.slots)

    def kill(self, slot: Slot) -> None:
        """Kill a slot's jobs now (SIGKILL locally: its committed state is safe, rule P9)."""
        for job in slot.jobs:
            if self.cluster == "local":
                kill_local_job(job, signal.SIGKILL)
            else:
                job.cancel(check=False)
        for job in slot.jobs:  # wait until they are gone, so that a restart never overlaps them
            deadline = time.time() + 30
            while not job.done() and time.time() < deadline:
                time.sleep(0.2)

    def kill_all(self) -> None:
        for slot in self.slots:
            if not slot.done and slot.next_start is None:
                self.kill(slot)
            slot.done = True

    def log_tail(self, slot: Slot, lines: int = 30) -> str:
        """The last lines of the newest job's error log (where the role logs)."""
        for job in reversed(slot.jobs):
            path = Path(job.paths.stderr)
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                return f"--- {path} (last {min(lines, len(text))} lines) ---\n" + "\n".join(text[-lines:])
        return "(no log found)"


def outcome_of(job: Any) -> tuple[str, str]:
    """("ok", status) for a job that returned, ("failed", why) for one that raised or was killed."""
    tasks = [job.task(index) for index in range(job.num_tasks)] if job.num_tasks > 1 else [job]
    if not all(task.paths.result_pickle.exists() for task in tasks):  # killed: don't let submitit wait for it
        return "failed", f"ended without a result (killed?): {last_log_line(job)}"
    try:
        error = job.exception()
    except Exception as exc:  # noqa: BLE001 - submitit raises various errors for jobs without output
        return "failed", f"{type(exc).__name__}: {exc}"
    if error is not None:
        return "failed", str(error)
    try:
        return "ok", str(job.results()[0])  # a group's job has one result per task: rank 0's speaks for it
    except Exception as exc:  # noqa: BLE001
        return "failed", f"{type(exc).__name__}: {exc}"


def last_log_line(job: Any) -> str:
    try:
        lines = Path(job.paths.stderr).read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    return one_line("\n".join(lines[-5:])) or "empty log"


def one_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 3] + "..."


# --- local processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SUBMITIT_CHECKED = "1.5.4"
"""The submitit version whose local job ids :func:`local_controller_pid` was checked against."""


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` ([] if it is gone), through psutil: no /proc, so macOS works too."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def local_controller_pid(job: Any) -> int:
    """The pid of a local submitit job's controller (the process that starts and watches its tasks).

    submitit's public API does not name it; its local executor (checked against :data:`SUBMITIT_CHECKED`)
    uses that pid as the job id. On another version whose local job id is not a pid this fails clearly
    rather than signalling an unrelated process.
    """
    job_id = str(getattr(job, "job_id", ""))
    if not job_id.isdigit():
        raise RuntimeError(
            f"local submitit job id {job_id!r} is not a process id: advprover's local supervisor was checked "
            f"against submitit {SUBMITIT_CHECKED} (installed: {submitit.__version__}); install that version"
        )
    return int(job_id)


def local_task_pids(job: Any) -> list[int]:
    """The processes running a local submitit job's tasks (children of its controller); [] once it ended."""
    if job.done():
        return []
    return children_of(local_controller_pid(job))


def kill_local_job(job: Any, number: int) -> None:
    """Send ``number`` to a local job's tasks; after SIGKILL, wait for its controller, and kill it if it lingers."""
    for pid in local_task_pids(job):
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).send_signal(number)
    if number != signal.SIGKILL:
        return
    deadline = time.monotonic() + CONTROLLER_WAIT_S
    while not job.done() and time.monotonic() < deadline:  # done() reaps the controller once it exits
        time.sleep(0.1)
    if not job.done():
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(local_controller_pid(job)).kill()
