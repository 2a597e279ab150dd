"""The benchmark scripts set torch's thread count for their process (``--threads``): each test runs on one thread
and gets the count back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.torch_threads import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield
