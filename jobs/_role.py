"""What every role job shares: the experiment, its configuration, a heartbeat, bounds, signals, checkpoints.

A role's ``main`` calls :meth:`Runtime.start`, then loops while :meth:`Runtime.running` is true, updating
:attr:`Runtime.counters` (published in the heartbeat by a background thread every few seconds).
SIGTERM and SIGINT ask the loop to end after its current unit of work; the role then commits what it has
and returns ``"interrupted"``, so that a supervisor knows the job did not finish its bounds.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from configs.experiment import ExperimentConfig
from core.adversarial.topology import job_name
from core.adversarial.workspace import Workspace
from core.errors import StorageError, UsageError
from core.metrics import MetricsWriter, device_scalars, metrics_root, seconds_step
from core.storage import CheckpointInfo, CheckpointStore, ExperimentRoot, Heartbeat
from jobs._lock import launcher_gone

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
STOP_CHECK_SECONDS = 2.0
FINISHED, INTERRUPTED = "finished", "interrupted"


@dataclass
class Runtime:
    role: str
    rank: int
    root: ExperimentRoot
    config: ExperimentConfig
    deadline: float | None
    counters: dict[str, Any] = field(default_factory=dict)
    _stop_signal: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _beat_lock: threading.Lock = field(default_factory=threading.Lock)  # one heartbeat write at a time
    _heartbeat_thread: threading.Thread | None = None
    _closed: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)
    _stop_checked: float = 0.0
    _stop_requested: bool = False
    _scalars_written: float = 0.0
    restart: int = 0  # the role's restart counter (see :attr:`seed`); set by the role once it knows it

    @staticmethod
    def start(role: str, exp: str, rank: int, minutes: float | None) -> Runtime:
        """Open the experiment (it must exist), read its configuration, start the heartbeat."""
        if type(rank) is not int or rank < 0:
            raise UsageError(f"--rank must be a whole number >= 0, got {rank!r}")
        if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
            raise UsageError(f"--minutes must be a finite number > 0 (or left out: no time bound), got {minutes!r}")
        set_threads()
        root = ExperimentRoot.open(exp)
        config = ExperimentConfig.from_dict(root.config)
        count = config.role_count(role)
        if rank >= count:
            raise StorageError(
                f"{job_name(role, rank)}: this experiment runs {count} {role} job(s) "
                f"(ranks 0..{count - 1}); rank {rank} has nothing to do"
            )
        deadline = time.time() + 60 * minutes if minutes is not None else None
        runtime = Runtime(role, rank, root, config, deadline)
        runtime.metrics  # noqa: B018 - the property opens the metrics folder now: an unusable metrics folder stops the job before it does any work
        runtime._install_signals()
        runtime._heartbeat_thread = threading.Thread(target=runtime._beat_loop, daemon=True, name="heartbeat")
        runtime._heartbeat_thread.start()
        logger.info(
            "%s started on %s (preset %s, setup %s)%s",
            runtime.name,
            root.url,
            config.preset,
            config.setup,
            f", for {minutes:g} min" if minutes is not None else "",
        )
        return runtime

    @property
    def name(self) -> str:
        return job_name(self.role, self.rank)

    @property
    def seed(self) -> int:
        """A seed distinct per experiment seed, role, rank and :attr:`restart` counter, never the clock.

        Each role sets :attr:`restart` from what it committed before (the trainers' resumed step, the
        actors' number of shards already published), so that a restarted job explores anew while the
        same experiment, replayed from the same state, sees the same data.
        """
        return job_seed(self.config.seed, self.name, self.restart)

    # --- bounds and signals ----------------------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number: int, frame: Any) -> None:
        if self._stop_signal is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        self._stop_signal = number
        logger.warning("%s: got %s, finishing the current step", self.name, signal.Signals(number).name)

    @property
    def interrupted(self) -> bool:
        return self._stop_signal is not None or self._stop_requested

    def stop_requested(self) -> bool:
        """Whether the experiment's stop request names this job (read at most every few seconds, rule P19),
        or this local job's launcher has died (a job never runs on unsupervised)."""
        if not self._stop_requested and time.monotonic() - self._stop_checked >= STOP_CHECK_SECONDS:
            self._stop_checked = time.monotonic()
            dead = launcher_gone()
            if dead is not None:
                logger.warning(
                    "%s: its launcher (pid %d) is gone: finishing the current step and exiting, so that "
                    "no job runs unsupervised; resume with the same launch command",
                    self.name,
                    dead,
                )
                self._stop_requested = True
                return True
            try:
                self._stop_requested = self.root.stop_requested(self.name)
            except Exception as error:  # noqa: BLE001 - an unreadable store must not kill the job: the next check retries
                logger.warning("%s: cannot read the stop request: %s", self.name, error)
            if self._stop_requested:
                logger.warning(
                    "%s: stop requested (%s), finishing the current step",
                    self.name,
                    (self.root.stop_request() or {}).get("reason", "no reason given"),
                )
        return self._stop_requested

    def running(self) -> bool:
        """False once a signal arrived, a stop was requested (``stop.json``) or the time bound passed."""
        return (
            not self.interrupted
            and not self.stop_requested()
            and (self.deadline is None or time.time() < self.deadline)
        )

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when a signal arrives."""
        end = time.time() + seconds
        while self.running() and time.time() < end:
            time.sleep(min(0.2, max(end - time.time(), 0)))

    def finish(self, **counters: Any) -> str:
        """Write the last heartbeat and say how the job ended."""
        status = INTERRUPTED if self.interrupted else FINISHED
        self.update(status=status, **counters)
        if "metrics" in self.__dict__:
            self.metrics.close()
        self._closed.set()
        self._beat(last=True)
        logger.info("%s %s: %s", self.name, status, _summary(self.counters))
        return status

    # --- heartbeat -------------------------------------------------------------------------------

    def update(self, **counters: Any) -> None:
        with self._lock:
            self.counters.update(counters)

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + amount

    @cached_property
    def _heartbeat(self) -> Heartbeat:
        return Heartbeat(self.root, self.role, self.rank)

    def _beat(self, last: bool = False) -> None:
        """Write the counters. The writes are serialised, and none follows the last one (:meth:`finish`'s):
        a periodic beat that took its snapshot before the job finished cannot overwrite the final status."""
        with self._beat_lock:
            if self._closed.is_set() and not last:
                return
            with self._lock:
                snapshot = dict(self.counters)
            snapshot["elapsed_s"] = round(time.time() - self.started, 1)
            try:
                self._heartbeat.beat(**snapshot)
            except Exception as error:  # noqa: BLE001 - a heartbeat must never kill the job
                logger.warning("%s: heartbeat failed: %s", self.name, error)

    def _beat_loop(self) -> None:
        while not self._closed.wait(HEARTBEAT_SECONDS):
            self._beat()

    # --- live metrics (TensorBoard) -------------------------------------------------------------

    @cached_property
    def metrics(self) -> MetricsWriter:
        """This job's TensorBoard run (``metrics.*``); a writer that writes nothing when metrics are off."""
        section = self.config.metrics
        if not section.enabled:
            return MetricsWriter.disabled()
        folder = metrics_root(self.root.local_folder, section.folder)
        if folder is None:  # a remote experiment: staged locally, uploaded into EXP/tensorboard/<job>/
            return MetricsWriter.open_remote(self.root, self.name)
        return MetricsWriter.open(folder, self.name)

    @cached_property
    def experiment_created(self) -> float:
        return self.root.created_at()

    def timed_scalars(self, values: Mapping[str, float | None], *, force: bool = False) -> bool:
        """An actor's scalars at whole seconds since the experiment began, at most every ``metrics.every_seconds``
        (unless ``force``); True when written."""
        if not force and time.time() - self._scalars_written < self.config.metrics.every_seconds:
            return False
        self._scalars_written = time.time()
        self.metrics.scalars({**values, **device_scalars()}, seconds_step(self.experiment_created))
        return True

    # --- shared resources ------------------------------------------------------------------------

    @cached_property
    def device(self) -> torch.device:
        """Where this job's models run: its section's ``device`` setting resolved on this machine (``auto``:
        CUDA when available; an unindexed ``cuda``: the GPU of this job's local rank)."""
        from core.models.devices import resolve_device

        setting = getattr(self.config, self.role).device
        device = resolve_device(setting, f"{self.role}.device", local_rank=local_rank(self.rank))
        logger.info("%s: models run on %s (%s.device %s)", self.name, device, self.role, setting)
        return device

    @cached_property
    def workspace(self) -> Workspace:
        database = self.config.database
        return Workspace.load(
            database.path,
            stop_at=database.stop_at,
            splits=database.splits,
            split_salt=database.split_salt,
            forbidden=database.forbidden,
        )

    def wait_for_checkpoint(
        self, store: CheckpointStore, who: str, newer_than: int | None = None
    ) -> CheckpointInfo | None:
        """Block until ``store`` has a version (newer than ``newer_than``); None if the job must stop."""
        info = store.latest()
        logged = False
        while self.running() and (info is None or (newer_than is not None and info.version <= newer_than)):
            if not logged:
                logger.info(
                    "%s: waiting for %s checkpoint version %s from %s",
                    self.name,
                    store.name,
                    0 if newer_than is None else f"> {newer_than}",
                    who,
                )
                logged = True
            self.update(state=f"waiting for {store.name} checkpoint")
            self.sleep(1.0)
            info = store.latest()
        return info if self.running() or info is not None else None


def local_rank(rank: int) -> int:
    """This job's rank among the jobs of its node: ``SLURM_LOCALID`` or ``LOCAL_RANK`` when set, else ``rank``
    (a local run places every job on this machine)."""
    for name in ("SLURM_LOCALID", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return rank


def job_seed(experiment_seed: int, job: str, restart: int) -> int:
    """The seed of job ``job`` after ``restart`` committed units of work, from the experiment's seed."""
    return random.Random(f"{experiment_seed}/{job}/{restart}").getrandbits(31)


def set_threads() -> int:
    """Give torch the CPU threads this job may use: ``$ADVPROVER_THREADS``, else SLURM's CPUs per task, else 1.

    Several jobs share a machine's cores; torch's default (one thread per core, in every process)
    oversubscribes them and slows everything down by an order of magnitude on a loaded machine.
    """
    import torch

    for variable in ("ADVPROVER_THREADS", "SLURM_CPUS_PER_TASK"):
        text = os.environ.get(variable, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise UsageError(f"${variable} must be a whole number of threads >= 1, got {text!r}")
            threads = int(text)
            break
    else:
        threads = 1
    torch.set_num_threads(threads)
    return threads


class Reloader:
    """Hot reload: look for a newer checkpoint at most every ``seconds``, load it with ``load``."""

    def __init__(self, store: CheckpointStore, seconds: float, load: Callable[[CheckpointInfo], None]) -> None:
        self.store = store
        self.seconds = seconds
        self.load = load
        self.version: int | None = None
        self._checked = 0.0

    def use(self, info: CheckpointInfo) -> None:
        self.load(info)
        self.version = info.version

    def maybe_reload(self) -> bool:
        if time.time() - self._checked < self.seconds:
            return False
        self._checked = time.time()
        latest = self.store.latest()
        if latest is None or (self.version is not None and latest.version <= self.version):
            return False
        logger.info("hot reload: %s checkpoint version %d (was %s)", self.store.name, latest.version, self.version)
        self.use(latest)
        return True


def _summary(counters: dict[str, Any]) -> str:
    keys = [k for k in sorted(counters) if not isinstance(counters[k], (dict, list))]
    return ", ".join(f"{k}={counters[k]}" for k in keys)
