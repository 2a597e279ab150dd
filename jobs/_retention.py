"""Bounded disk: the producer of a stream prunes the shards every consumer is done with (docs/PROTOCOL.md, P28).

A consumer needs a stream from its *floor* on: a prover actor from the cursor committed in its own stream's
headers; a trainer from the lowest position any kept checkpoint version would resume from (its cursor, or the
first shard of its replay window, which a resumed trainer reads again to refill its buffer). The producer
prunes below the smallest floor of all the stream's consumers, as observed at least ``retention.grace_s``
ago, keeping the newest ``retention.keep_shards`` shards whatever the floors say. A stream no consumer reads
is kept whole, as is every stream when ``retention.keep_all`` is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from configs.experiment import ExperimentConfig, RetentionConfig
from core.adversarial.topology import IN_STREAM, Consumer, wiring_of
from core.errors import StorageError
from core.storage import (
    CheckpointStore,
    Cursor,
    ExperimentRoot,
    committed_cursor,
    group_cursor,
    prune_stream,
    stream_bounds,
)

logger = logging.getLogger(__name__)


def stream_consumers(config: ExperimentConfig, stream: str) -> list[tuple[str, str]]:
    """Who reads ``stream`` (from the wiring table): (kind, name) pairs, kind ``stream`` (a consumer committing
    in that stream's headers) or ``checkpoint`` (a trainer committing in that checkpoint's metadata)."""
    return [(consumer.cursor_in, consumer.cursor_name) for consumer in wiring_of(config).consumers_of(stream)]


def consumer_cursor(root: ExperimentRoot, consumer: Consumer) -> Cursor:
    """What ``consumer`` has committed now: the newest cursor in its stream's headers, or its group's cursor in
    the newest checkpoint's metadata (empty if there is none)."""
    if consumer.cursor_in == IN_STREAM:
        return committed_cursor(root, consumer.cursor_name)
    latest = CheckpointStore(root, consumer.cursor_name).latest()
    return group_cursor(latest.meta) if latest is not None else Cursor()


def checkpoint_floor(root: ExperimentRoot, checkpoint: str, stream: str) -> int:
    """The lowest shard of ``stream`` a trainer resuming from any kept version of ``checkpoint`` reads: the
    group's committed cursor (:func:`core.storage.group_cursor`), or the first shard of a rank's replay
    window if that is lower."""
    store = CheckpointStore(root, checkpoint)
    floor: int | None = None
    for version in store.versions():
        try:
            meta = store.info(version).meta
        except StorageError:  # damaged: no trainer resumes from it
            continue
        cursor = group_cursor(meta)
        if stream not in cursor:
            continue
        windows = [
            int(window[stream][0]) for window in (meta.get("windows") or {}).values() if (window or {}).get(stream)
        ]
        needed = min([cursor[stream], *windows])
        floor = needed if floor is None else min(floor, needed)
    return floor or 0


def consumers_floor(root: ExperimentRoot, config: ExperimentConfig, stream: str) -> int | None:
    """The lowest shard any consumer of ``stream`` still needs; None if nothing reads it."""
    floors = [
        consumer_cursor(root, consumer).get(stream, 0)
        if consumer.cursor_in == IN_STREAM
        else checkpoint_floor(root, consumer.cursor_name, stream)
        for consumer in wiring_of(config).consumers_of(stream)
    ]
    return min(floors) if floors else None


class Pruner:
    """Prunes a producer's streams now and then, below what every consumer committed ``grace_s`` ago."""

    def __init__(
        self,
        root: ExperimentRoot,
        config: ExperimentConfig,
        streams: list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.config = config
        self.settings: RetentionConfig = config.retention
        self.streams = list(streams)
        self.clock = clock
        self.last_check: float | None = None
        self.observed: dict[str, list[tuple[float, int]]] = {stream: [] for stream in streams}
        self.pruned_shards = 0

    def maybe_prune(self) -> int:
        """Every ``prune_every_s``: observe the consumers' floors and prune what is due; returns shards removed."""
        now = self.clock()
        if self.settings.keep_all or (
            self.last_check is not None and now - self.last_check < self.settings.prune_every_s
        ):
            return 0
        self.last_check = now
        removed = sum(self._prune_or_warn(stream, now) for stream in self.streams)
        self.pruned_shards += removed
        return removed

    def _prune_or_warn(self, stream: str, now: float) -> int:
        """Prune one stream; a storage error is logged, not raised: pruning is housekeeping, and the
        producer's work goes on (the next look tries again)."""
        try:
            return self._prune(stream, now)
        except StorageError as error:
            logger.warning("stream %s: not pruned this time: %s", stream, error)
            return 0

    def _prune(self, stream: str, now: float) -> int:
        floor = consumers_floor(self.root, self.config, stream)
        if floor is None:
            return 0
        history = self.observed[stream]
        history.append((now, floor))
        settled = [seen for when, seen in history if now - when >= self.settings.grace_s]
        if not settled:
            return 0
        # keep the newest observation older than the grace period, and everything after it
        del history[: len(settled) - 1]
        _, end = stream_bounds(self.root, stream)
        target = min(settled[-1], floor, end - self.settings.keep_shards)
        return prune_stream(self.root, stream, target) if target > 0 else 0

    def summary(self) -> dict[str, Any]:
        """Counters for the producer's heartbeat."""
        return {"pruned_shards": self.pruned_shards}
