"""The ``python -m core.metamath verify FILE.mm`` contract, run as external checks run it (a subprocess).

exit 0: well formed and every complete proof verifies; 1: it is not (stderr's first line says where and
why); 2: usage or I/O error. The last stdout line reads ``verified N proofs, M incomplete, in T s``.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_verifier import MINI, line_of, replace_proof

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(r"verified (\d+) proofs, (\d+) incomplete, in \d+\.\d\d s")


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.metamath", "verify", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    """(verified, incomplete) from the last stdout line, which must follow the contract exactly."""
    lines = done.stdout.strip().splitlines()
    assert lines, (done.stdout, done.stderr)
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    return int(match.group(1)), int(match.group(2))


def write(tmp_path: Path, text: str, name: str = "db.mm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_database_exits_0(tmp_path: Path) -> None:
    done = verify(str(write(tmp_path, MINI)))
    assert done.returncode == 0, done.stderr
    assert last_line(done) == (5, 0)
    assert done.stderr == ""  # no progress lines for a short run
    assert "incomplete:" not in done.stdout


def test_broken_proof_exits_1_and_says_where(tmp_path: Path) -> None:
    text = replace_proof(MINI, "a1i", "wph ax-mp")
    path = write(tmp_path, text)
    done = verify(str(path))
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    line = line_of(text, "a1i $p")
    assert first.startswith(f"error: {path}:{line}, label a1i: proof step 2: ax-mp needs 4 hypotheses"), first
    assert "1 proof(s) FAILED" in done.stdout
    assert last_line(done) == (4, 0)


def test_malformed_database_exits_1_and_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, MINI + "bad $a |- ph $. $}\n")
    done = verify(str(path))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == f"error: {path}:{MINI.count(chr(10)) + 1}: `$}}` without a matching `${{`"
    assert last_line(done) == (0, 0)
    assert "Traceback" not in done.stderr


def test_incomplete_proofs_are_counted_named_and_exit_0(tmp_path: Path) -> None:
    text = replace_proof(replace_proof(MINI, "id", "?"), "th-dummy-c", "( vx ) A ? ?")
    done = verify(str(write(tmp_path, text)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2] == "incomplete: id, th-dummy-c"
    assert last_line(done) == (3, 2)


# --- --only: labels and patterns, as metamath's `verify proof` ---------------------------------------


@pytest.mark.parametrize(
    "patterns, verified",
    [
        ("a1i", 1),
        ("id*", 2),
        ("th-dummy?c", 1),
        ("*", 5),
        ("a1i,th-*", 3),
        ("id-c, a1i", 2),
    ],
)
def test_only_verifies_the_matching_theorems(tmp_path: Path, patterns: str, verified: int) -> None:
    done = verify(str(write(tmp_path, MINI)), "--only", patterns)
    assert done.returncode == 0, done.stderr
    assert last_line(done) == (verified, 0)


def test_only_skips_a_broken_proof_it_does_not_name(tmp_path: Path) -> None:
    path = write(tmp_path, replace_proof(MINI, "a1i", "wph ax-mp"))
    done = verify(str(path), "--only", "id*,th-*")
    assert done.returncode == 0, done.stderr
    assert last_line(done) == (4, 0)
    twin = verify(str(path), "--only", "a*")
    assert twin.returncode == 1 and "label a1i" in twin.stderr
    assert last_line(twin) == (0, 0)


@pytest.mark.parametrize("patterns", ["nosuch", "ax-*", "id,zz*", ","])
def test_only_patterns_matching_no_theorem_exit_2(tmp_path: Path, patterns: str) -> None:
    done = verify(str(write(tmp_path, MINI)), "--only", patterns)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: --only: ") and "Traceback" not in done.stderr
    assert patterns.split(",")[-1] in done.stderr


# --- progress on long runs ------------------------------------------------------------------------------


def test_progress_lines_name_the_phase_share_and_rate(tmp_path: Path) -> None:
    """With a tiny interval every step is reported (the default, 5 s, prints nothing for MINI)."""
    done = verify(str(write(tmp_path, MINI)), "--progress-every", "1e-9")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    verifying = [line for line in lines if line.startswith("verifying: ")]
    assert verifying and all(
        re.fullmatch(r"verifying: \d/5 proofs \(\d+%\), \d+ proofs/s, about \d+ s left", line) for line in verifying
    )
    assert all(
        re.fullmatch(r"reading .*db\.mm: \d+\.\d/0\.0 MB \(\d+%\), \d+\.\d MB/s, about \d+ s left", line)
        for line in lines
        if not line.startswith("verifying: ")
    )
    off = verify(str(write(tmp_path, MINI)), "--progress-every", "0")
    assert off.returncode == 0 and off.stderr == ""


def test_progress_prints_at_most_one_line_per_interval() -> None:
    from core.metamath.__main__ import Progress

    now = [100.0]
    lines = io.StringIO()
    progress = Progress("verifying", 1000, "proofs", 5.0, clock=lambda: now[0], stream=lines)
    for done in range(1, 1001):
        now[0] += 0.01  # 10 s in all: two lines
        progress.update(done)
    assert lines.getvalue().splitlines() == [
        "verifying: 500/1000 proofs (50%), 100 proofs/s, about 5 s left",
        "verifying: 1000/1000 proofs (100%), 100 proofs/s, about 0 s left",
    ]
    silent = io.StringIO()
    quiet = Progress("verifying", 1000, "proofs", 0.0, clock=lambda: now[0], stream=silent)
    now[0] += 100
    quiet.update(10)
    assert silent.getvalue() == ""


def test_reading_reports_its_progress_in_bytes(tmp_path: Path) -> None:
    from core.metamath.reader import read_database

    path = write(tmp_path, MINI + "$( padding $)\n" * 20000)
    calls: list[tuple[str, int]] = []
    read_database(path, progress=lambda name, read: calls.append((name, read)))
    assert len(calls) > 1 and all(name == str(path) for name, _ in calls)
    sizes = [read for _, read in calls]
    assert sizes == sorted(sizes) and sizes[-1] == path.stat().st_size


def test_errors_are_capped_by_max_errors(tmp_path: Path) -> None:
    text = MINI
    for label in ("a1i", "id", "th-dummy"):
        text = replace_proof(text, label, "wph wph")
    done = verify(str(write(tmp_path, text)), "--max-errors", "1")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [done.stderr.splitlines()[0], "error: ... and 2 more failures"]
    assert "3 proof(s) FAILED" in done.stdout and last_line(done) == (2, 0)


def test_stop_at_verifies_the_prefix(tmp_path: Path) -> None:
    path = write(tmp_path, MINI + "garbage $}\n")
    done = verify(str(path), "--stop-at", "id")
    assert done.returncode == 0, done.stderr
    assert last_line(done) == (1, 0)
    never = verify(str(write(tmp_path, MINI, "clean.mm")), "--stop-at", "nosuch")
    assert never.returncode == 1 and "'nosuch' was never reached" in never.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "usage"),
        (["--max-errors", "many", "x.mm"], "invalid int value"),
        (["--max-errors", "-1", "x.mm"], "--max-errors must be 0 or more"),
        (["x.mm", "--bogus"], "unrecognized arguments"),
        (["x.mm", "--progress-every", "-1"], "--progress-every must be a finite number"),
        (["x.mm", "--progress-every", "nan"], "--progress-every must be a finite number"),
    ],
    ids=["no file", "bad number", "negative number", "unknown flag", "negative interval", "nan interval"],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    write(tmp_path, MINI, "x.mm")
    done = subprocess.run(
        [sys.executable, "-m", "core.metamath", "verify", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    done = verify(str(tmp_path / "absent.mm"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'absent.mm'}: no such file"


def test_directory_exits_2(tmp_path: Path) -> None:
    done = verify(str(tmp_path))
    assert done.returncode == 2 and "not a regular file" in done.stderr


def test_no_command_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "core.metamath"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "usage" in done.stderr


def test_help_exits_0() -> None:
    done = verify("--help")
    assert done.returncode == 0 and "--stop-at" in done.stdout


def test_missing_include_is_invalid_not_usage(tmp_path: Path) -> None:
    path = write(tmp_path, MINI + "$[ absent.mm $]\n")
    done = verify(str(path))
    assert done.returncode == 1
    assert "included file 'absent.mm' not found" in done.stderr.splitlines()[0]
