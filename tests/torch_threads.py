"""One torch thread for a test's duration, the caller's count restored afterwards.

Tiny models train and decode fastest on one thread, and torch's default (a thread per core) spins against the
other processes of a busy machine: a benchmark test took 139 s with it beside two busy processes, 4 s with one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
