"""Live scalars of a job as TensorBoard event files: ``FOLDER/<job>/events.out.tfevents.*``.

    metrics = MetricsWriter.open("/exp/tensorboard", "prover-trainer-00")
    metrics.scalars({"train/loss": 0.7, "train/lr": 3e-4}, step=120)
    metrics.close()

Each job writes one TensorBoard *run* (its own sub-folder), so ``tensorboard --logdir FOLDER`` shows every
job of an experiment side by side. Every process opens a new event file; to keep a restarted job from
repeating points, the writer first reads the job's earlier event files and remembers, per tag, the
highest step already written: a later point at or below it is dropped. A trainer's axis is its optimizer
step (a restarted trainer resumes from its committed step, so the steps it trains again after a crash
are not written twice); actors use whole seconds since the experiment was created (:func:`seconds_step`).

Event files are written with ``torch.utils.tensorboard`` to a *local* folder (a local or NFS path):
TensorBoard's writer cannot publish atomically to object stores. :meth:`MetricsWriter.disabled` is the
writer that writes nothing (metrics switched off, or no local folder for a remote experiment).
"""

from __future__ import annotations

import glob
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from core.errors import ConfigError

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
EVENT_FILE_PATTERN = "events.out.tfevents.*"


class MetricsWriter:
    """One job's scalars; points whose step is not above the tag's last written step are dropped."""

    def __init__(self, folder: str | None, written: dict[str, int] | None = None) -> None:
        self.folder = folder
        self.last_step: dict[str, int] = dict(written or {})
        self.dropped = 0
        self._writer: Any = None
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(folder, flush_secs=FLUSH_SECONDS)

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
        if written:
            logger.info(
                "%s: appending to its TensorBoard run %s (points up to step %d already written)",
                job,
                folder,
                max(written.values()),
            )
        return cls(folder, written)

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
        for tag, value in values.items():
            if value is None or not math.isfinite(float(value)):
                continue
            if step <= self.last_step.get(tag, -1):
                self.dropped += 1
                continue
            self._writer.add_scalar(tag, float(value), step, walltime=now)
            self.last_step[tag] = step
            written += 1
        return written

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
    """Where the jobs' runs go: ``configured`` if set, else ``EXPERIMENT/tensorboard`` for a local experiment;
    None for a remote experiment without ``configured`` (no local folder to write to)."""
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


def mean(values: Iterable[Any]) -> float | None:
    """The mean of the numbers among ``values`` (None when there is none: the point is then not written)."""
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(numbers) / len(numbers) if numbers else None
