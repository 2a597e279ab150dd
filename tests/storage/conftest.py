"""Fixtures of the storage tests: every protocol test runs on a local folder and on ``memory://``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.storage import ExperimentRoot

from .helpers import CONFIG, CountingBackend


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


@pytest.fixture
def counted(root: ExperimentRoot) -> CountingBackend:
    """The root's backend, wrapped to count calls (the root uses the wrapper from now on)."""
    counter = CountingBackend(root.backend)
    root.backend = counter  # type: ignore[assignment]
    return counter
