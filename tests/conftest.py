"""Shared fixtures: where the shared test data and Debian's Metamath databases live.

Tests that need data outside the project skip with a message saying what is missing and how to get it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ADVPROVER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
DEBIAN_DATABASES = Path("/usr/share/metamath/databases")


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}: {_HOW_TO_GET.get(what, '')}")
    return path


_HOW_TO_GET = {
    "shared data": "the project's ../shared/data folder is absent on this machine",
    "prop.mm": "the project's ../shared/data/metamath/prop.mm is absent on this machine",
    "metamath-test suite": "the project's ../shared/data/metamath-test folder is absent",
    "Debian metamath-databases": "install it with `apt-get install metamath-databases` (CI does)",
}


@pytest.fixture(scope="session")
def prop_mm() -> Path:
    """The propositional part of set.mm (998 theorems), read in place."""
    return _need(SHARED_DATA / "metamath" / "prop.mm", "prop.mm")


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The metamath-test verifier conformance suite (with EXPECTED.tsv)."""
    return _need(SHARED_DATA / "metamath-test", "metamath-test suite")


@pytest.fixture(scope="session")
def debian_databases() -> Path:
    """Debian's metamath-databases folder (set.mm, iset.mm, ...)."""
    return _need(DEBIAN_DATABASES, "Debian metamath-databases")


@pytest.fixture(scope="session")
def set_mm(debian_databases: Path) -> Path:
    return _need(debian_databases / "set.mm", "Debian metamath-databases")


@pytest.fixture(scope="session")
def metamath_exe() -> str:
    """The reference C verifier from Debian's `metamath` package."""
    exe = shutil.which("metamath")
    if exe is None:
        pytest.skip("the reference verifier `metamath` is not installed: `apt-get install metamath` (CI does)")
    return exe


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """An entry point run in-process configures the root logger (onto a captured stream that is closed
    afterwards): put it back as it was after each test, so tests do not see each other's logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    """Roles called in-process install SIGTERM/SIGINT handlers: give pytest its own back after each test."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)
