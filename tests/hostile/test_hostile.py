"""Hostile and careless hands on a real short run: every case ends in a clear message or the right verdict,
and nothing already written is lost. Each test names the damage, then checks what the tools say and that
the run's data survive (the list and the counts are in the README's reliability section)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.storage import CheckpointStore, ExperimentRoot, read_shard, stream_bounds
from core.storage.shards import ShardEncoder
from tests.roles import launch_command

from .conftest import GENERATIONS, RESULTS, run_role

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def command(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=timeout
    )


def status(run: Path) -> tuple[int, dict]:
    done = command("jobs.status", str(run), "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else {})


def failed_checks(report: dict) -> list[str]:
    return [c["check"] for c in report.get("checks", []) if not c["ok"]]


def all_records(run: Path, stream: str) -> list[dict]:
    root = ExperimentRoot.open(str(run))
    low, end = stream_bounds(root, stream)
    return [r for seq in range(low, end) for r in read_shard(root, stream, seq, quarantine=False)[1]]


def database_of(run: Path) -> Path:
    return Path(ExperimentRoot.open(str(run)).config["database"]["path"])


# --- files outside the experiment ---------------------------------------------------------------------------


def test_a_sidecar_naming_a_file_outside_the_experiment_never_deletes_it(run: Path) -> None:
    victim = run.parent / "victim.txt"
    victim.write_text("the user's file")
    store = CheckpointStore(ExperimentRoot.open(str(run)), "prover")
    tensors, info = store.load()
    for _ in range(2):
        store.publish(tensors, info.meta)
    sidecar = run / "checkpoints" / "prover" / "00000000.json"
    document = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**document, "weights": "../../../victim.txt"}))
    store.retain(keep_last=1, grace_s=0)
    assert victim.read_text() == "the user's file"
    _code, report = status(run)
    assert "0" in report["checkpoints"]["prover"]["damaged"]  # reported, not followed


@pytest.mark.parametrize(
    "argv",
    [
        ["core.metamath", "holes", "{db}", "--out", "{db}", "--split", "test"],
        ["core.metamath", "reprove", "{db}", "--out", "{db}"],
        ["jobs.prove", "{db}", "--out", "{db}"],
    ],
)
def test_the_users_database_is_never_overwritten_without_in_place(run: Path, tmp_path: Path, argv: list[str]) -> None:
    db = tmp_path / "mine.mm"
    db.write_bytes(database_of(run).read_bytes())
    os.chmod(db, 0o600)
    done = command(*[a.format(db=db) for a in argv])
    assert done.returncode == 2 and "--in-place" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert db.read_bytes() == database_of(run).read_bytes() and (db.stat().st_mode & 0o777) == 0o600


# --- streams: holes, strays, special files, versions ------------------------------------------------------


def test_a_lost_generation_shard_fails_status_until_the_restarted_writer_closes_it(run: Path) -> None:
    assert status(run)[0] == 0
    assert run_role("generator_actor", run, max_records=8) == "finished"  # two shards no one consumed yet
    root = ExperimentRoot.open(str(run))
    _, end = stream_bounds(root, GENERATIONS)
    lost = end - 2
    lost_ids = {r["id"] for r in read_shard(root, GENERATIONS, lost)[1]}
    (run / "streams" / GENERATIONS / f"{lost:012d}.zst").unlink()
    code, report = status(run)
    assert code == 1 and f"{GENERATIONS}: no gap" in failed_checks(report)
    assert run_role("generator_actor", run, max_records=4) == "finished"  # a restart closes the hole
    assert run_role("prover_actor", run, max_records=8) == "finished"  # and its consumer goes past it
    code, report = status(run)
    assert code == 0, failed_checks(report)
    assert any(note.get("lost") for note in report["quarantined"])
    kept = {r["id"] for r in all_records(run, GENERATIONS)}
    assert not (kept & lost_ids) and len(kept) >= 12  # only the lost shard's records are gone


def test_a_stray_shard_far_ahead_stops_the_writer_naming_it(run: Path) -> None:
    stray = run / "streams" / GENERATIONS / f"{10**6:012d}.zst"
    stray.write_bytes((run / "streams" / GENERATIONS / f"{0:012d}.zst").read_bytes())
    done = command("jobs.generator_actor", str(run), "--max-records", "4", "--minutes", "1")
    assert done.returncode != 0 and stray.name in done.stderr and "Move it out" in done.stderr
    assert "Traceback" not in done.stderr[-2000:]
    assert sorted(p.name for p in stray.parent.glob("*.zst"))[:3] == [f"{i:012d}.zst" for i in range(3)]


def test_a_shard_of_a_newer_version_is_refused_by_status_and_left_alone(run: Path) -> None:
    path = run / "streams" / RESULTS / f"{0:012d}.zst"
    root = ExperimentRoot.open(str(run))
    header, records = read_shard(root, RESULTS, 0)
    path.write_bytes(ShardEncoder().encode({**header, "schema": 99}, [json.dumps(r) for r in records]))
    before = path.read_bytes()
    done = command("jobs.status", str(run))
    assert done.returncode != 0 and "upgrade" in done.stderr and "Traceback" not in done.stderr
    assert path.read_bytes() == before and not (run / "quarantine").exists()


def test_a_fifo_in_place_of_a_shard_is_named_not_waited_on(run: Path) -> None:
    path = run / "streams" / RESULTS / f"{1:012d}.zst"
    path.unlink()
    os.mkfifo(path)
    done = command("jobs.prover_trainer", str(run), "--max-steps", "1", "--minutes", "1", timeout=120)
    assert done.returncode != 0 and "is not a regular file" in done.stderr and path.name in done.stderr


def test_a_truncated_shard_is_reported_by_status_without_being_moved(run: Path) -> None:
    path = run / "streams" / GENERATIONS / f"{1:012d}.zst"
    path.write_bytes(path.read_bytes()[:-3])
    before = path.read_bytes()
    code, report = status(run)
    assert code == 1 and f"{GENERATIONS}: every shard readable" in failed_checks(report)
    assert path.read_bytes() == before and not (run / "quarantine").exists()


# --- checkpoints ------------------------------------------------------------------------------------------


def test_a_truncated_newest_checkpoint_is_skipped_by_the_jobs_and_reported(run: Path) -> None:
    store = CheckpointStore(ExperimentRoot.open(str(run)), "prover")
    tensors, info = store.load()
    newest = store.publish(tensors, info.meta)
    Path(newest.path).write_bytes(Path(newest.path).read_bytes()[:100])
    assert run_role("generator_actor", run, max_records=4) == "finished"
    assert run_role("prover_actor", run, max_records=4) == "finished"  # on the version before
    code, report = status(run)
    assert code == 0 and str(newest.version) in report["checkpoints"]["prover"]["damaged"]


def test_a_checkpoint_with_non_finite_weights_is_refused_by_prove(run: Path, tmp_path: Path) -> None:
    store = CheckpointStore(ExperimentRoot.open(str(run)), "prover")
    tensors, info = store.load()
    poisoned = {name: t.clone() for name, t in tensors.items()}
    first = next(name for name, t in poisoned.items() if t.is_floating_point())
    poisoned[first].view(-1)[0] = float("nan")
    bad = store.publish(poisoned, info.meta)
    holes, out = tmp_path / "holes.mm", tmp_path / "out.mm"
    made = command("core.metamath", "holes", str(database_of(run)), "--out", str(holes), "--only", "a1i")
    assert made.returncode == 0, made.stderr
    done = command("jobs.prove", str(holes), "--out", str(out), "--checkpoint", bad.path)
    assert done.returncode == 1 and "not finite" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    good = command("jobs.prove", str(holes), "--out", str(out), "--checkpoint", info.path, "--expansions", "1")
    assert good.returncode == 0 and out.exists(), good.stderr  # the intact twin


# --- heartbeats, configuration, databases -------------------------------------------------------------------


def test_heartbeats_with_garbage_times_or_from_the_future_are_handled(run: Path) -> None:
    beats = sorted((run / "heartbeats").glob("*.json"))
    garbage = json.loads(beats[0].read_text())
    beats[0].write_text(json.dumps({**garbage, "updated": "yesterday"}))
    future = json.loads(beats[1].read_text())
    beats[1].write_text(json.dumps({**future, "updated": future["updated"] + 86400}))
    code, report = status(run)
    assert code == 0 and len(report["jobs"]) >= 5


@pytest.mark.parametrize("content", [b"", b"$c wff |- $. this is not metamath", b"\x00\xff" * 10])
def test_a_run_on_an_unusable_database_is_refused_before_anything_is_created(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mm"
    bad.write_bytes(content)
    exp = tmp_path / "exp"
    done = command(
        "jobs.launch", "local", "--preset", "tiny", "--exp", str(exp), "--set", f"database.path={bad}", "--minutes", "1"
    )
    assert done.returncode == 2 and "database.path" in done.stderr and "Traceback" not in done.stderr
    assert not exp.exists()


@pytest.mark.parametrize(
    "override",
    [
        "prover_trainer.lr=nan",
        "prover_actor.search.timeout_s=inf",
        "slurm.prover_trainer.partition=gpu;rm -rf ~",
        "prover_actor.count=-1",
    ],
)
def test_bad_settings_are_refused_before_anything_is_created(tmp_path: Path, override: str) -> None:
    exp = tmp_path / "exp"
    done = command("jobs.launch", "local", "--preset", "tiny", "--exp", str(exp), "--set", override)
    assert done.returncode == 2 and override.split("=")[0] in done.stderr and "Traceback" not in done.stderr
    assert not exp.exists()


def test_an_include_of_a_device_is_a_message(tmp_path: Path) -> None:
    db = tmp_path / "zero.mm"
    db.write_text("$[ /dev/zero $]\n")
    done = command("core.metamath", "verify", str(db), timeout=60)
    assert done.returncode != 0 and "/dev/zero" in done.stderr and "Traceback" not in done.stderr


def test_the_short_run_itself_reconciles(short_run: Path) -> None:
    """The twin of every case above: the undamaged run passes every check."""
    code, report = status(short_run)
    assert code == 0 and not failed_checks(report)
    assert report["totals"]["results"] > 0 and torch.__version__


# --- temporaries and the launcher's death ---------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["holes", "prove"])
def test_symlinks_planted_where_temporaries_used_to_go_redirect_nothing(run: Path, tmp_path: Path, tool: str) -> None:
    """The old predictable temporary `OUT.tmp-<pid>` (this process's pid, as the tools run in-process here)."""
    from core.metamath.__main__ import main as kernel_main
    from jobs.prove import prove

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    holes, out = tmp_path / "holes.mm", tmp_path / "out.mm"
    for target in (holes, out):
        (tmp_path / f"{target.name}.tmp-{os.getpid()}").symlink_to(victim)
    assert kernel_main(["holes", str(database_of(run)), "--out", str(holes), "--only", "a1i"]) == 0
    if tool == "prove":
        assert prove(str(holes), out=str(out), expansions=16) == 0
        assert out.is_file() and not out.is_symlink()
    assert victim.read_text() == "precious\n" and holes.is_file() and not holes.is_symlink()


@pytest.mark.slow
def test_jobs_of_a_killed_launcher_stop_and_a_resume_starts_no_twin(tmp_path: Path) -> None:
    """kill -9 of the launcher: its local jobs notice, commit and exit (no orphans); the same command resumes
    the run, starts one job per slot, and the counts reconcile."""
    import signal
    import time

    from core.storage import read_heartbeats

    exp = tmp_path / "exp"
    settings = [
        "--set",
        "evaluator.max_theorems=3",
        "--set",
        "prover_trainer.bootstrap_steps=10",
        "--set",
        "generator_trainer.bootstrap_steps=10",
    ]

    def launch(minutes: float) -> list[str]:
        return launch_command(exp, minutes, *settings)

    env = dict(os.environ, ADVPROVER_THREADS="1")
    launcher = subprocess.Popen(
        launch(3),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 150
    while time.time() < deadline and not (exp / "streams" / RESULTS).exists():
        time.sleep(1)
    assert (exp / "streams" / RESULTS).exists(), "the run made no results in time"
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()

    def live_pids() -> list[int]:
        beats = read_heartbeats(ExperimentRoot.open(str(exp)))
        return [b["pid"] for b in beats if b.get("status") not in ("finished", "interrupted") and _alive(b["pid"])]

    stop_by = time.time() + 90
    while live_pids() and time.time() < stop_by:
        time.sleep(2)
    assert not live_pids(), "jobs of the killed launcher are still running"
    resumed = subprocess.run(launch(0.75), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and "FAILED" not in resumed.stdout
    code, report = status(exp)
    assert code == 0, failed_checks(report)


def _alive(pid: int) -> bool:
    from jobs._lock import pid_alive

    return pid_alive(pid)
