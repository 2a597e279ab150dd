"""Fixtures of the storage tests: every protocol test runs on a local folder, on ``memory://``, and on ``s3://``
(a local S3-compatible server, the session's ``s3_bucket``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.storage import ExperimentRoot

from .helpers import CONFIG, CountingBackend


@pytest.fixture(params=["local", "memory", "s3"])
def root_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An experiment root URL that does not exist yet: a local folder, a fresh ``memory://`` path, or a fresh
    path in the local S3 server's bucket (its objects go with the server at the end of the session)."""
    if request.param == "local":
        yield str(tmp_path / "exp")
        return
    if request.param == "s3":
        yield f"{request.getfixturevalue('s3_bucket')}/{uuid.uuid4().hex}/exp"
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
