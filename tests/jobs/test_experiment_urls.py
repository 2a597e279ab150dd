"""Experiment roots as URLs: a short tiny run's roles on ``memory://`` (in one process) and on ``s3://`` (the
local S3 server of the ``s3_bucket`` fixture) read back by status (on s3, as a command in another process; the
jobs' TensorBoard runs uploaded under the experiment) and
export from the same URL; the launcher on ``file://`` and on an object-store-like URL (its runs in a local
folder); ``memory://`` refused by the launcher (its jobs are other processes); and a URL whose filesystem
package is not installed (``s3://`` with s3fs hidden) refused by every command in one line naming the extra."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from configs.databases import resolve_database
from configs.presets import preset
from core.errors import StorageError
from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.metamath.verifier import verify_database
from core.metamath.writer import rewrite_proofs
from core.storage import ExperimentRoot, inspect_root, read_shard, stream_bounds
from jobs import export as export_job
from jobs import launch
from jobs import status as status_job
from tests import roles

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_actor.mix=6,generator;1,dataset",
    "generator_actor.shard_records=4",
    "prover_actor.shard_records=4",
    "evaluator.max_theorems=3",
    "database.path=embedded",
    "prover_actor.search.expansions=8",
]
RECORDS = 8
GENERATIONS = "generator-actor-00-to-00"
S3_HINT = "pip install 'advprover[s3]'"
JOBS = ["generator-actor-00", "generator-trainer-00", "prover-actor-00", "prover-trainer-00"]


class SharedMemory(MemoryFileSystem):
    """An object-store-like URL (``sharedmem://``) for the launcher's checks: any protocol but local and memory."""

    protocol = ("sharedmem",)


def run_role(role: str, exp: str, **bounds: Any) -> str:
    return roles.run_role(role, exp, minutes=2.0, **bounds)


def tiny_run(url: str) -> None:
    """A tiny run at ``url``: both trainers' version 0, RECORDS generations, the prover actor's results."""
    config = preset("tiny").with_overrides(OVERRIDES)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    ExperimentRoot.create_or_open(url, config.to_dict())
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        for role in ("prover_trainer", "generator_trainer"):
            assert run_role(role, url, max_steps=0) == "finished"
        assert run_role("generator_actor", url, max_records=RECORDS) == "finished"
        assert run_role("prover_actor", url, max_records=RECORDS) == "finished"
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


@pytest.fixture(scope="module")
def memory_experiment() -> Iterator[str]:
    url = f"memory://url-test-{uuid.uuid4().hex}/exp"
    tiny_run(url)
    yield url
    fsspec.filesystem("memory").rm(url.removeprefix("memory://").rsplit("/", 1)[0], recursive=True)


@pytest.fixture(scope="module")
def s3_experiment(s3_bucket: str) -> str:
    url = f"{s3_bucket}/url-test-{uuid.uuid4().hex}/exp"
    tiny_run(url)
    return url


def generation_records(url: str) -> list[dict[str, Any]]:
    root = ExperimentRoot.open(url)
    low, end = stream_bounds(root, GENERATIONS)
    return [r for seq in range(low, end) for r in read_shard(root, GENERATIONS, seq)[1]]


def test_status_reads_a_memory_run_from_its_url(memory_experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = status_job.collect(ExperimentRoot.open(memory_experiment))
    assert status["experiment"] == ExperimentRoot.open(memory_experiment).url  # memory:///url-test-...
    assert status["totals"]["generations"] == len(generation_records(memory_experiment)) >= RECORDS
    assert status["totals"]["results"] >= RECORDS and status["disk_bytes"] is None  # no disk use off local storage
    assert all(c["ok"] for c in status["checks"]), status["checks"]
    assert status["tensorboard"] == {"logdir": f"{status['experiment']}/tensorboard", "runs": JOBS}  # uploaded
    assert status_job.main(memory_experiment) == 0
    assert ExperimentRoot.open(memory_experiment).url in capsys.readouterr().out


def test_status_reads_an_s3_run_from_another_process(s3_experiment: str) -> None:
    """The jobs wrote through s3fs to the local S3 server; ``jobs.status`` in a new process reads it back."""
    status = status_job.collect(ExperimentRoot.open(s3_experiment))
    assert status["totals"]["generations"] == len(generation_records(s3_experiment)) >= RECORDS
    assert status["totals"]["results"] >= RECORDS and all(c["ok"] for c in status["checks"]), status["checks"]
    assert [p["versions"] for p in status["checkpoints"].values()] == [[0], [0]], status["checkpoints"]
    shown = subprocess.run(
        [sys.executable, "-m", "jobs.status", s3_experiment, "--json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["totals"] == status["totals"]
    assert json.loads(shown.stdout)["tensorboard"] == {"logdir": f"{s3_experiment}/tensorboard", "runs": JOBS}


def test_prove_takes_its_checkpoint_from_an_s3_experiment(s3_experiment: str, tmp_path: Path) -> None:
    """``jobs.prove --checkpoint s3://...``, in another process: the prover trainer's version there proves."""
    holes, out = tmp_path / "holes.mm", tmp_path / "proved.mm"
    rewrite_proofs(embedded_database_path(), {"mp2": ["?"]}, holes)
    command = ["jobs.prove", holes, "--out", out, "--checkpoint", s3_experiment, "--expansions", "4"]
    run = subprocess.run(
        [sys.executable, "-m", *map(str, command)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("proved ") and out.is_file()


def test_export_reads_a_memory_run_from_its_url(
    memory_experiment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated.mm"
    assert export_job.export(memory_experiment, out=str(out)) == 0
    assert "written" in capsys.readouterr().out
    report = verify_database(read_database(str(out)))
    assert report.ok and not report.incomplete, report


def test_status_of_a_memory_url_without_an_experiment_says_so() -> None:
    """The twin of the tests above: the same kind of URL, no experiment there."""
    with pytest.raises(StorageError, match="no experiment at memory://"):
        status_job.main(f"memory://url-test-{uuid.uuid4().hex}/none")


def test_the_launcher_creates_and_resumes_a_file_url_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(launch.THREADS_VARIABLE, "1")
    url = f"file://{tmp_path}/exp"
    run = launch.prepare("local", "tiny", url, ["database.path=embedded"], 1.0)
    assert run.exp == str(tmp_path / "exp") and not run.resumed
    assert run.folder.parent == tmp_path / "exp" / "runs"
    assert inspect_root(url).kind == "experiment"
    assert launch.prepare("local", "tiny", url, ["database.path=embedded"], 1.0).resumed
    assert launch.main(["stop", "--exp", url, "--wait", "0"]) == 0
    assert ExperimentRoot.open(url).stop_request() is not None
    shown = subprocess.run(
        [sys.executable, "-m", "jobs.status", url], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert str(tmp_path / "exp") in shown.stdout


def test_a_url_experiment_keeps_its_runs_in_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fsspec.register_implementation("sharedmem", SharedMemory, clobber=True)
    monkeypatch.setenv(launch.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(launch.THREADS_VARIABLE, "1")
    name = f"url-test-{uuid.uuid4().hex}"
    url = f"sharedmem://{name}/exp"
    run = launch.prepare("local", "tiny", url, ["database.path=embedded"], 1.0)
    assert run.exp == url and not run.resumed
    assert run.folder.parent == tmp_path / "runs" / f"sharedmem_{name}_exp"
    assert ExperimentRoot.open(url).config["preset"] == "tiny"
    assert launch.prepare("local", "tiny", url, ["database.path=embedded"], 1.0).resumed
    assert launch.main(["stop", "--exp", url, "--wait", "0"]) == 0
    assert ExperimentRoot.open(url).stop_request()["reason"] == "./launch.sh stop"
    assert launch.main(["local", "--preset", "tiny", "--exp", f"memory://{name}/exp"]) == 2  # its twin, refused
    assert "a memory:// experiment lives in one process" in capsys.readouterr().err


@pytest.fixture
def no_s3fs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """s3fs hidden, as on a machine without it (the test extra installs it): in this process, and in the
    commands run with the returned environment (a module of that name that fails to import comes first)."""
    shadow = tmp_path_factory.mktemp("no-s3fs")
    (shadow / "s3fs.py").write_text("raise ImportError(\"No module named 's3fs' (hidden by the test)\")\n")
    monkeypatch.setitem(sys.modules, "s3fs", None)  # type: ignore[arg-type] # None makes `import s3fs` fail
    monkeypatch.delitem(importlib.import_module("fsspec.registry")._registry, "s3", raising=False)  # its class
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(PROJECT_ROOT)])}


@pytest.mark.parametrize(
    "command",
    [
        ["jobs.status", "s3://bucket/exp"],
        ["jobs.export", "s3://bucket/exp", "--out", "{tmp}/generated.mm"],
        ["jobs.prove", "{database}", "--out", "{tmp}/out.mm", "--checkpoint", "s3://bucket/exp"],
        ["jobs.evaluator", "s3://bucket/exp"],
    ],
)
def test_a_missing_s3fs_is_one_line_naming_the_extra(
    command: list[str], tmp_path: Path, no_s3fs: dict[str, str]
) -> None:
    words = [w.format(tmp=tmp_path, database=embedded_database_path()) for w in command]
    run = subprocess.run(
        [sys.executable, "-m", *words], cwd=PROJECT_ROOT, env=no_s3fs, capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0, run.stdout
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: "), run.stderr
    assert S3_HINT in run.stderr and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_launcher_refuses_an_s3_experiment_without_s3fs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_s3fs: dict[str, str]
) -> None:
    monkeypatch.setenv(launch.RUNS_ENV, str(tmp_path / "runs"))
    assert launch.main(["local", "--preset", "tiny", "--exp", "s3://bucket/exp"]) == 1
    assert launch.main(["stop", "--exp", "s3://bucket/exp"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: s3://bucket/exp: the s3:// filesystem is not installed; {S3_HINT}"] * 2
    assert not (tmp_path / "runs").exists()
