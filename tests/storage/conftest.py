"""Fixtures of the storage tests: every protocol test runs on a local folder and on ``memory://``."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, Iterator

import pytest

from core.storage import ExperimentRoot
from core.storage.backend import Backend

CONFIG = {"preset": "test", "model": {"dim": 8, "layers": 1}, "seed": 0}


@pytest.fixture(params=["local", "memory"])
def root_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An experiment root URL that does not exist yet: a local folder, or a fresh ``memory://`` path."""
    if request.param == "local":
        yield str(tmp_path / "exp")
        return
    import fsspec

    path = f"/advprover-test-{uuid.uuid4().hex}"
    yield f"memory://{path}"
    fs = fsspec.filesystem("memory")
    for name in [p for p in fs.store if p.startswith(path + "/")]:
        fs.store.pop(name, None)


@pytest.fixture
def root(root_url: str) -> ExperimentRoot:
    return ExperimentRoot.create_or_open(root_url, CONFIG)


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


@pytest.fixture
def counted(root: ExperimentRoot) -> CountingBackend:
    """The root's backend, wrapped to count calls (the root uses the wrapper from now on)."""
    counter = CountingBackend(root.backend)
    root.backend = counter  # type: ignore[assignment]
    return counter
