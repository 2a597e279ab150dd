"""Live scalars of a job as TensorBoard event files: ``EXP/tensorboard/<job>/events.out.tfevents.*``.

    metrics = MetricsWriter.open("/exp/tensorboard", "prover-trainer-00")      # a local (or NFS) experiment
    metrics = MetricsWriter.open_remote(root, "prover-trainer-00")             # s3://, gs://, memory://, ...
    metrics.scalars({"train/loss": 0.7, "train/lr": 3e-4}, step=120)
    metrics.close()

Each job writes one TensorBoard *run* (its own sub-folder), so ``tensorboard --logdir EXP/tensorboard`` shows
every job of an experiment side by side. Every process opens a new event file; to keep a restarted job from
repeating points, the writer first reads the job's earlier event files and remembers, per tag, the
highest step already written: a later point at or below it is dropped. A trainer's axis is its optimizer
step (a restarted trainer resumes from its committed step, so the steps it trains again after a crash
are not written twice); actors use whole seconds since the experiment was created (:func:`seconds_step`).

Event files are written with ``torch.utils.tensorboard``, which writes local files only. On a local (or NFS)
experiment, or into a configured local ``metrics.folder``, the writer writes the run folder itself. On any
other store (:meth:`MetricsWriter.open_remote`) it *stages* the run in a local temporary folder (under
``$TMPDIR``) and uploads its event files into ``EXP/tensorboard/<job>/`` through the storage layer
(:meth:`ExperimentRoot.upload_metric_file`): at open, at most every :data:`PUBLISH_SECONDS` when it writes or
flushes, and at close. An upload replaces the previous, shorter upload of the same file (an event file
only grows, and each process has its own file names), which TensorBoard, reading a file incrementally,
takes as the file having grown. A process starts a new event file once its current one reaches
:data:`ROLL_BYTES`, so that an upload stays small however long the job runs; a finished file is uploaded
once more and deleted locally. At open, the job's earlier event files are downloaded (into the staging
folder, then deleted) to learn the steps already written. A failed upload is logged and retried at the
next one; the job goes on. :meth:`MetricsWriter.disabled` is the writer that writes nothing.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.storage import ExperimentRoot

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
EVENT_FILE_PATTERN = "events.out.tfevents.*"
PUBLISH_SECONDS = 30.0
"""A remote run's grown event files are uploaded at most this often while the job writes (and at close)."""
ROLL_BYTES = 2 << 20
"""A remote run's process starts a new event file once its current one reaches this size (bounds an upload)."""


class MetricsWriter:
    """One job's scalars; points whose step is not above the tag's last written step are dropped."""

    def __init__(
        self,
        folder: str | None,
        written: dict[str, int] | None = None,
        upload: Upload | None = None,
        after_second: int | None = None,
    ) -> None:
        """``after_second``: the second the run's newest earlier event file was named in; the first new file
        waits for a later one, so that it sorts after the earlier files (a restart within the same second)."""
        self.folder = folder
        self.last_step: dict[str, int] = dict(written or {})
        self.dropped = 0
        self._writer: Any = None
        self._current: str | None = None
        self._upload = upload
        self._lock = threading.RLock()
        if folder is not None:
            while after_second is not None and (wait_s := after_second + 1 - time.time()) > 0:
                time.sleep(wait_s)  # until the next whole second (again if the sleep ends early)
            self._writer, self._current = open_event_file(folder)
        self._opened_second = int(time.time())

    @classmethod
    def open(cls, root_folder: str, job: str) -> MetricsWriter:
        """The writer of ``job`` under ``root_folder`` (created); :class:`ConfigError` naming the folder if unusable."""
        folder = os.path.join(root_folder, job)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"metrics folder {folder}: cannot create it ({error.strerror or error}); set "
                f"metrics.folder to a writable local folder, or metrics.enabled=false"
            ) from None
        if not os.access(folder, os.W_OK):
            raise ConfigError(
                f"metrics folder {folder} is not writable; set metrics.folder to a writable local "
                f"folder, or metrics.enabled=false"
            )
        written = written_steps(folder)
        log_appending(job, folder, written)
        return cls(folder, written, after_second=newest_event_second(os.listdir(folder)))

    @classmethod
    def open_remote(cls, root: ExperimentRoot, job: str) -> MetricsWriter:
        """The writer of ``job`` for an experiment on a remote store: staged in a local temporary folder and
        uploaded into ``EXP/tensorboard/<job>/`` (see the module docstring); the store's errors if the job's
        earlier event files cannot be read."""
        staging = tempfile.mkdtemp(prefix=f"advprover-{job}-tensorboard-")
        earlier = os.path.join(staging, "earlier")
        try:
            earlier_files = root.download_metric_files(job, earlier)
            written = written_steps(earlier)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(earlier, ignore_errors=True)
        log_appending(job, f"{root.metrics_url}/{job}", written)
        logger.info("%s: TensorBoard events staged in %s, uploaded to %s/%s", job, staging, root.metrics_url, job)
        newest = newest_event_second(os.path.basename(path) for path in earlier_files)
        writer = cls(os.path.join(staging, "run"), written, Upload(root, job, staging), after_second=newest)
        writer.flush()  # the run shows in the experiment at once
        return writer

    @classmethod
    def disabled(cls) -> MetricsWriter:
        """A writer that writes nothing."""
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def scalars(self, values: Mapping[str, float | int | None], step: int) -> int:
        """Write each finite value at ``step``; returns how many were written. A point is dropped when its tag
        already has one at a step >= ``step``: TensorBoard's loader takes a step that goes back for a restart and
        discards the later points it holds, so each tag's steps must only grow."""
        if self._writer is None:
            return 0
        written = 0
        now = time.time()
        with self._lock:
            for tag, value in values.items():
                if value is None or not math.isfinite(float(value)):
                    continue
                if step <= self.last_step.get(tag, -1):
                    self.dropped += 1
                    continue
                self._writer.add_scalar(tag, float(value), step, walltime=now)
                self.last_step[tag] = step
                written += 1
            self._publish(force=False)
        return written

    def flush(self) -> None:
        """Write the pending points to the event file; upload it if the run is remote and an upload is due."""
        with self._lock:
            if self._writer is not None:
                self._writer.flush()
                self._publish(force=False)

    def close(self) -> None:
        """Close the event file; a remote run uploads it a last time and removes its staging folder (kept,
        with a warning, if the upload fails)."""
        with self._lock:
            if self._writer is None:
                return
            self._writer.close()
            self._writer = None
            if self._upload is not None:
                self._upload.finish()

    def _publish(self, force: bool) -> None:
        """Upload a remote run's grown event files when due; roll to a new event file past :data:`ROLL_BYTES`."""
        if self._upload is None or self.folder is None or not (force or self._upload.due()):
            return
        self._writer.flush()
        self._upload.upload()
        if self._current is not None and os.path.getsize(self._current) >= ROLL_BYTES and self._roll_may_name():
            self._writer.close()
            self._upload.upload()  # the finished file, whole
            self._upload.remove_uploaded(self._current)
            self._writer, self._current = open_event_file(self.folder)
            self._opened_second = int(time.time())

    def _roll_may_name(self) -> bool:
        """Whether a new event file's name now sorts after the current one's: TensorBoard reads a run's files
        in name order, and a name starts with the whole second it was made in (then its process's counter,
        which does not sort as a number)."""
        return int(time.time()) > self._opened_second


class Upload:
    """Uploads the event files of a run staged in ``STAGING/run`` into ``EXP/tensorboard/<job>/``."""

    def __init__(self, root: ExperimentRoot, job: str, staging: str) -> None:
        self.root = root
        self.job = job
        self.staging = staging
        self.run = os.path.join(staging, "run")
        self.uploaded: dict[str, int] = {}
        """bytes uploaded of each event file, by name"""
        self._last = -math.inf

    def due(self) -> bool:
        return time.monotonic() - self._last >= PUBLISH_SECONDS

    def upload(self) -> bool:
        """Upload each event file that grew since its last upload; False (logged) when one fails."""
        self._last = time.monotonic()
        for path in sorted(glob.glob(os.path.join(glob.escape(self.run), EVENT_FILE_PATTERN))):
            name = os.path.basename(path)
            if self.uploaded.get(name) == os.path.getsize(path):
                continue
            try:
                self.uploaded[name] = self.root.upload_metric_file(self.job, path)
            except Exception as error:  # noqa: BLE001 - live metrics must never stop the job
                logger.warning(
                    "%s: cannot upload its TensorBoard events to %s/%s (%s); retried at the next upload",
                    self.job,
                    self.root.metrics_url,
                    self.job,
                    error,
                )
                return False
        return True

    def remove_uploaded(self, path: str) -> None:
        """Delete a finished local event file once it is uploaded whole (else it stays, for the next upload)."""
        if self.uploaded.get(os.path.basename(path)) == os.path.getsize(path):
            os.remove(path)

    def finish(self) -> None:
        """The last upload; the staging folder is removed when it succeeds, kept (with a warning) when not."""
        if self.upload():
            shutil.rmtree(self.staging, ignore_errors=True)
        else:
            logger.warning("%s: its last TensorBoard events were not uploaded; they stay in %s", self.job, self.run)


def newest_event_second(names: Iterable[str]) -> int | None:
    """The latest whole second in which one of the event files ``names`` was named (``None``: no event file)."""
    seconds = [int(part) for name in names if fnmatch(name, EVENT_FILE_PATTERN)
               for part in name.split(".")[3:4] if part.isdigit()]  # fmt: skip
    return max(seconds, default=None)


def open_event_file(folder: str) -> tuple[Any, str | None]:
    """A ``SummaryWriter`` on a new event file in ``folder``, and that file's path (None if it cannot be told)."""
    from torch.utils.tensorboard import SummaryWriter

    pattern = os.path.join(glob.escape(folder), EVENT_FILE_PATTERN)
    before = set(glob.glob(pattern))
    writer = SummaryWriter(folder, flush_secs=FLUSH_SECONDS)
    writer.flush()  # the file exists from here
    new = set(glob.glob(pattern)) - before
    return writer, new.pop() if len(new) == 1 else None


def log_appending(job: str, where: str, written: Mapping[str, int]) -> None:
    if written:
        logger.info(
            "%s: appending to its TensorBoard run %s (points up to step %d already written)",
            job,
            where,
            max(written.values()),
        )


def written_steps(folder: str) -> dict[str, int]:
    """The highest step of each scalar tag in the event files of ``folder``."""
    last: dict[str, int] = {}
    for tag, step in scalar_points(folder):
        last[tag] = max(last.get(tag, -1), step)
    return last


def scalar_points(folder: str) -> Iterator[tuple[str, int]]:
    """(tag, step) of each scalar in the event files of ``folder``, file by file (a truncated file's tail is
    ignored; an unreadable file is skipped with a warning)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    for path in sorted(glob.glob(os.path.join(folder, EVENT_FILE_PATTERN))):
        try:
            for event in EventFileLoader(path).Load():
                for value in event.summary.value:
                    yield value.tag, int(event.step)
        except Exception as error:  # noqa: BLE001 - a damaged event file must not stop the job
            logger.warning("metrics: cannot read %s to the end (%s); its later points are not known", path, error)


def device_scalars() -> dict[str, float]:
    """GPU memory in use and at peak (MiB) when this process uses CUDA; empty otherwise."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    mib = 2.0**20
    return {
        "system/gpu_memory_allocated_mib": torch.cuda.memory_allocated() / mib,
        "system/gpu_memory_peak_mib": torch.cuda.max_memory_allocated() / mib,
    }


def seconds_step(origin: float, now: float | None = None) -> int:
    """Whole seconds since ``origin`` (an actor's x-axis: grows across restarts of the job)."""
    return max(int((time.time() if now is None else now) - origin), 0)


def metrics_root(experiment_folder: str | None, configured: str) -> str | None:
    """The local folder the jobs write their runs in: ``configured`` if set, else ``EXPERIMENT/tensorboard``
    for a local experiment; None for a remote experiment without ``configured`` (its jobs upload their runs
    to the store: :meth:`MetricsWriter.open_remote`, :func:`remote_runs`)."""
    if configured:
        return os.path.abspath(os.path.expanduser(configured.removeprefix("file://")))
    if experiment_folder is None:
        return None
    return os.path.join(experiment_folder, "tensorboard")


def runs_in(folder: str) -> list[str]:
    """The runs (job sub-folders holding event files) under ``folder``; empty if it does not exist."""
    if not os.path.isdir(folder):
        return []
    return sorted(
        name for name in os.listdir(folder) if glob.glob(os.path.join(folder, glob.escape(name), EVENT_FILE_PATTERN))
    )


def remote_runs(root: ExperimentRoot) -> list[str]:
    """The runs (job folders holding event files) under ``root``'s ``tensorboard/`` on its store."""
    return [job for job in root.metric_jobs() if any(fnmatch(n, EVENT_FILE_PATTERN) for n in root.metric_files(job))]


def mean(values: Iterable[Any]) -> float | None:
    """The mean of the numbers among ``values`` (None when there is none: the point is then not written)."""
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(numbers) / len(numbers) if numbers else None
