"""Conformance: the metamath-test suite and Debian's real databases, through the exact CLI contract.

``python -m core.metamath verify FILE.mm`` in a subprocess: a case expected to pass exits 0, one expected to
fail exits 1 with stderr saying where and why; the last stdout line reads
``verified N proofs, M incomplete, in T s``. Cases skip with a clear message when the data is absent.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.metamath import read_database

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# the same place tests/conftest.py looks (its fixtures do the skipping; this only names the cases)
SUITE = Path(os.environ.get("ADVPROVER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")) / "metamath-test"
LAST_LINE = re.compile(r"verified (\d+) proofs, (\d+) incomplete, in \d+\.\d\d s")
DEBIAN_FAST = ["big-unifier.mm", "demo0.mm", "hol.mm", "iset.mm", "miu.mm", "nf.mm", "peano.mm", "ql.mm"]


def expected_cases() -> list[tuple[str, str]]:
    table = SUITE / "EXPECTED.tsv"
    if not table.exists():
        return [("EXPECTED.tsv", "absent")]  # the fixture skips it, saying why
    with table.open() as file:
        return [(row["file"], row["expected"]) for row in csv.DictReader(file, delimiter="\t")]


def run_verify(path: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], int, int]:
    done = subprocess.run(
        [sys.executable, "-m", "core.metamath", "verify", str(path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, (done.stdout, done.stderr)
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, f"last stdout line breaks the contract: {lines[-1]!r}"
    assert "Traceback" not in done.stderr, done.stderr
    return done, int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("name, expected", expected_cases(), ids=[c[0] for c in expected_cases()])
def test_conformance_case(conformance_dir: Path, name: str, expected: str) -> None:
    assert expected in ("pass", "fail"), f"EXPECTED.tsv: unknown expectation {expected!r} for {name}"
    path = conformance_dir / name
    done, verified, incomplete = run_verify(path)
    if expected == "pass":
        assert done.returncode == 0, done.stderr
        assert verified == len(read_database(path).theorems()) and incomplete == 0
        assert done.stderr == ""
    else:
        assert done.returncode == 1, done.stdout
        first = done.stderr.splitlines()[0]
        assert re.match(rf"error: {re.escape(str(path))}:\d+(, label \S+)?: \S", first), first


def test_conformance_suite_lists_both_outcomes(conformance_dir: Path) -> None:
    outcomes = [expected for _, expected in expected_cases()]
    assert outcomes.count("pass") >= 5 and outcomes.count("fail") >= 3


@pytest.mark.parametrize("name", DEBIAN_FAST)
def test_debian_database_verifies(debian_databases: Path, name: str) -> None:
    path = debian_databases / name
    if not path.exists():
        pytest.skip(f"{path} is not in this metamath-databases package")
    done, verified, incomplete = run_verify(path)
    assert done.returncode == 0, done.stderr[:2000]
    assert verified == len(read_database(path).theorems()) - incomplete


@pytest.mark.slow
def test_set_mm_verifies(set_mm: Path) -> None:
    done, verified, incomplete = run_verify(set_mm, timeout=900)
    assert done.returncode == 0, done.stderr[:2000]
    assert verified > 30000 and incomplete == 0


def test_every_debian_database_is_covered(debian_databases: Path) -> None:
    """A new database in the package must be added to the fast list (or be set.mm, the slow test)."""
    present = {p.name for p in debian_databases.glob("*.mm")}
    assert present - {"set.mm"} <= set(DEBIAN_FAST), sorted(present - {"set.mm"} - set(DEBIAN_FAST))
