"""benchmarks/provers_gpu.sh at a tiny scale on the CPU (``DEVICE=cpu``): every step writes its own file with a
full table, and a missing checkpoint makes the learned steps fail without hiding the baselines' rows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from core.metamath.embedded import embedded_database_path
from tests.benchmarks.scripts import BENCHMARKS

TINY = {"DEVICE": "cpu", "BATCH": "2", "THEOREMS": "2", "TAUTOLOGIES": "2", "LOW": "2", "HIGH": "4"}
TINY |= {"SPEED_THEOREMS": "2", "SPEED_EXPANSIONS": "2", "LIMIT_S": "120", "PYTHON": sys.executable}


def baseline_rows(table: str) -> int:
    return len(re.findall(r"^.+\d+ expans\s+baseline\s", table, re.M))


def run_script(checkpoint: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **TINY, OMP_NUM_THREADS="1")
    command = [str(BENCHMARKS / "provers_gpu.sh"), str(checkpoint), str(embedded_database_path()), str(out)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=BENCHMARKS.parent, timeout=300)


def tiny_checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "tiny.safetensors"
    train = [sys.executable, "-m", "core.models.supervised", str(embedded_database_path()), "--out", str(out)]
    train += ["--size", "tiny", "--steps", "2", "--device", "cpu", "--threads", "1"]
    done = subprocess.run(train, capture_output=True, text=True, cwd=BENCHMARKS.parent, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_each_step_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_script(tiny_checkpoint(tmp_path), out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "search: exit 0" in done.stdout and "learned test: exit 0" in done.stdout
    assert "learned tautologies: exit 0" in done.stdout
    tables = {p.name: p.read_text() for p in out.glob("*.txt")}
    assert set(tables) == {
        "env.txt",
        "search.txt",
        "baseline-test.txt",
        "baseline-tautologies.txt",
        "learned-test.txt",
        "learned-tautologies.txt",
    }
    assert "torch" in tables["env.txt"] and "backward merged on cpu: batched / alone" in tables["search.txt"]
    for name, prover in [("baseline-test.txt", "baseline"), ("learned-test.txt", "best-first learned")]:
        assert f"{embedded_database_path().name} test" in tables[name]  # the database given, its test split
        assert prover in tables[name] and "HTPS" in tables["learned-tautologies.txt"]
    assert baseline_rows(tables["baseline-test.txt"]) == 2  # at LOW and at HIGH


def test_a_missing_checkpoint_fails_the_learned_steps_and_keeps_the_baselines(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_script(tmp_path / "missing.safetensors", out)
    assert "learned test: exit 0" not in done.stdout and "learned tautologies: exit 0" not in done.stdout
    assert "missing.safetensors" in (out / "learned-test.txt").read_text()
    assert baseline_rows((out / "baseline-tautologies.txt").read_text()) == 2
