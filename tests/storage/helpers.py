"""Helpers shared by the storage tests: the test configuration, and a backend wrapper counting storage calls."""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.storage.backend import Backend

CONFIG = {"preset": "test", "model": {"dim": 8, "layers": 1}, "seed": 0}


class CountingBackend:
    """Wraps a root's backend and counts the storage calls made through it, by method."""

    METHODS = ("read", "exists", "create", "replace", "remove", "listdir", "age_s", "size", "open_read")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (method, path) of every call with a path
        for name in self.METHODS:
            setattr(self, name, self._counted(name))

    def _counted(self, name: str) -> Any:
        method = getattr(self.backend, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if args:
                self.log.append((name, str(args[0])))
            return method(*args, **kwargs)

        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    @property
    def paths(self) -> list[str]:
        return [path for _, path in self.log]

    def read_paths(self) -> list[str]:
        """Every path whose content was read."""
        return [path for method, path in self.log if method in ("read", "open_read")]

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.log.clear()
