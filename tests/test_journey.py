"""The user's journey end to end: a short real run of the ``tiny`` preset, then ``python -m jobs.prove`` with
``--checkpoint`` set to that experiment folder and to one of its ``.safetensors`` weights files, on a holes copy
of the database; the reference ``metamath`` accepts what it writes (where it is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.metamath.embedded import embedded_database_path
from core.storage import CheckpointStore, ExperimentRoot

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOLES = "mp2,syl,com12"
FAST = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_trainer.checkpoint_every_steps=10",
    "prover_trainer.checkpoint_every_steps=10",
    "generator_trainer.checkpoint_every_minutes=0.1",
    "prover_trainer.checkpoint_every_minutes=0.1",
    "evaluator.count=0",
    "generator_actor.mix=1,generator;1,dataset",
    "database.path=embedded",
]


def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ADVPROVER_THREADS="1")
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished short run of the tiny preset whose prover trainer published trained versions."""
    exp = tmp_path_factory.mktemp("journey") / "exp"
    command = ["-m", "jobs.launch", "local", "--preset", "tiny", "--exp", exp, "--minutes", "0.7", "--progress", "10"]
    for override in FAST:
        command += ["--set", override]
    done = run(*command)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return exp


def check_with_metamath(out: Path) -> None:
    exe = shutil.which("metamath")
    if exe is None:
        print(f"metamath is not installed (apt-get install metamath): {out} is not checked by it")
        return
    check = subprocess.run([exe, f'read "{out}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=60)
    assert "?Error" not in check.stdout and "?Error" not in check.stderr, check.stdout[-2000:]


@pytest.mark.slow
def test_a_short_run_then_prove_with_its_checkpoints(experiment: Path, tmp_path: Path) -> None:
    store = CheckpointStore(ExperimentRoot.open(str(experiment)), "prover")
    latest = store.latest()
    assert latest is not None and latest.version >= 1 and latest.meta["step"] > 0  # trained beyond version 0
    assert latest.path.endswith(".safetensors") and latest.extras_path is not None  # trainer state apart
    holes = tmp_path / "holes.mm"
    made = run("-m", "core.metamath", "holes", embedded_database_path(), "--out", holes, "--only", HOLES)
    assert made.returncode == 0, made.stderr
    for checkpoint in (experiment, Path(latest.path)):
        out = tmp_path / f"filled-{checkpoint.name}.mm"
        proved = run(
            "-m",
            "jobs.prove",
            holes,
            "--out",
            out,
            "--checkpoint",
            checkpoint,
            "--expansions",
            "32",
            "--timeout-s",
            "10",
        )
        assert proved.returncode == 0, proved.stderr[-3000:]
        assert proved.stdout.splitlines()[-1].startswith("proved ") and " of 3 in " in proved.stdout
        assert out.is_file()
        check_with_metamath(out)
    # the twin: a damaged weights file given to jobs.prove fails with one line and a non-zero status
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(Path(latest.path).read_bytes()[:-100])
    failed = run("-m", "jobs.prove", holes, "--out", tmp_path / "never.mm", "--checkpoint", damaged)
    assert failed.returncode == 1 and "truncated" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "never.mm").exists()
