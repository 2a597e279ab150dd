"""Shared fixtures: where the shared test data and Debian's Metamath databases live.

Tests that need data outside the project skip with a message saying what is missing and how to get it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ADVPROVER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
DEBIAN_DATABASES = Path("/usr/share/metamath/databases")
S3_BUCKET = "advprover-test"
S3_SERVER_START_S = 60.0


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


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[str]:
    """``s3://advprover-test`` on a local S3-compatible server (tests/s3_server.py, moto) started for the session
    and stopped after it. s3fs finds the server through fsspec's configuration: in this process, and, by the
    ``FSSPEC_S3_*`` variables, in the jobs the tests start. Skips only where moto or s3fs is not installed."""
    for package in ("moto", "s3fs"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(
                f"{package} is not installed: the S3 tests need the test extra's moto[server] and s3fs "
                "(`scripts/bootstrap.sh test` installs them)"
            )
    import fsspec.config

    server = subprocess.Popen(
        [sys.executable, "-m", "tests.s3_server"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,  # it stops when this closes: when this process ends, however it ends
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{_port_of(server)}", "key": "test", "secret": "test"}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in options.items():
                patch.setenv(f"FSSPEC_S3_{name.upper()}", value)
            patch.setitem(fsspec.config.conf, "s3", options)
            fsspec.filesystem("s3").mkdir(S3_BUCKET)
            yield f"s3://{S3_BUCKET}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _port_of(server: subprocess.Popen[str]) -> int:
    """The port the S3 server announces on its first line; RuntimeError if it does not within a minute."""
    ready, _, _ = select.select([server.stdout], [], [], S3_SERVER_START_S)
    line = server.stdout.readline() if ready and server.stdout is not None else ""
    if not line.startswith("port "):
        raise RuntimeError(f"the local S3 server (python -m tests.s3_server) did not start: {line!r}")
    return int(line.split()[1])


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
