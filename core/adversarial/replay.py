"""A replay buffer for the trainers: FIFO with a maximum size, uniform or reward-weighted sampling.

Each item remembers where it was read (stream, shard sequence number, index in the shard). The buffer's
:meth:`ReplayBuffer.window` gives, per stream, the position of the oldest record still held: a trainer
commits it with its checkpoint and, after a restart, refills the buffer by re-reading from there. Nothing
is counted as consumed twice: only records past the committed cursor are new.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError

Position = tuple[int, int]  # (shard sequence number, index of the record in the shard)


@dataclass(frozen=True, slots=True)
class ReplayItem:
    stream: str
    position: Position
    record: dict[str, Any]
    weight: float


class ReplayBuffer:
    """Holds the most recent ``max_size`` records; samples them uniformly or by reward."""

    def __init__(self, max_size: int, sampling: str = "uniform", seed: int = 0) -> None:
        if max_size < 1:
            raise ConfigError(f"replay buffer max_size must be >= 1, got {max_size}")
        if sampling not in ("uniform", "reward"):
            raise ConfigError(f"replay sampling must be 'uniform' or 'reward', got {sampling!r}")
        self.max_size = max_size
        self.sampling = sampling
        self._items: deque[ReplayItem] = deque()
        self._rng = random.Random(seed)
        self.added = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ReplayItem]:
        return iter(self._items)

    def add(self, stream: str, position: Position, record: dict[str, Any], weight: float = 1.0) -> None:
        """Append a record (evicting the oldest when full). ``weight`` is used by reward sampling."""
        self._items.append(ReplayItem(stream, position, record, float(weight)))
        self.added += 1
        while len(self._items) > self.max_size:
            self._items.popleft()
            self.evicted += 1

    def sample(self, n: int) -> list[dict[str, Any]]:
        """``n`` records drawn with replacement (empty if the buffer is empty)."""
        if not self._items or n <= 0:
            return []
        items = list(self._items)
        if self.sampling == "reward":
            weights = [max(item.weight, 0.0) for item in items]
            if sum(weights) > 0:
                return [item.record for item in self._rng.choices(items, weights=weights, k=n)]
        return [item.record for item in self._rng.choices(items, k=n)]

    def window(self) -> dict[str, list[int]]:
        """Per stream, the position ``[seq, index]`` of the oldest record still in the buffer."""
        oldest: dict[str, list[int]] = {}
        for item in self._items:
            if item.stream not in oldest:
                oldest[item.stream] = list(item.position)
        return oldest
