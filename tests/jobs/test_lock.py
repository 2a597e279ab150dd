"""The launcher's lock across hosts, local jobs that outlive their launcher, and resumes beside live jobs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from core.errors import UsageError
from jobs import _lock
from jobs._lock import LOCK_FILE, LOCK_STALE_S, LauncherLock, holder_alive, launcher_gone, wait_for_earlier_jobs


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_launcher_on_another_host_holds_the_lock_until_its_beat_is_stale(tmp_path: Path) -> None:
    now = time.time()
    other = {"host": "some-other-node", "pid": 1, "beat": now - 1}
    assert holder_alive(other, now)
    assert not holder_alive({**other, "beat": now - LOCK_STALE_S - 1}, now)  # its launcher died
    assert not holder_alive({"host": "some-other-node", "pid": 1}, now)  # an old lock without beats
    assert holder_alive({"host": socket.gethostname(), "pid": os.getpid()}, now)
    assert not holder_alive({"host": socket.gethostname(), "pid": dead_pid()}, now)
    (tmp_path / LOCK_FILE).write_text(json.dumps(other))
    with pytest.raises(UsageError, match="some-other-node.*already running"):
        LauncherLock(tmp_path, "EXP", {}).acquire()


def test_a_dead_launchers_lock_is_taken_over_and_beaten(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "some-other-node", "pid": 1, "beat": 0.0}))
    lock = LauncherLock(tmp_path, "EXP", {"started": 1.0})
    lock.acquire()
    held = json.loads((tmp_path / LOCK_FILE).read_text())
    assert held["host"] == socket.gethostname() and held["token"] == lock.token
    lock.beat(every_s=0)
    assert json.loads((tmp_path / LOCK_FILE).read_text())["beat"] >= held["beat"]
    assert sorted(os.listdir(tmp_path)) == [LOCK_FILE]  # no temporary left


def test_a_launcher_never_removes_another_launchers_lock(tmp_path: Path) -> None:
    first = LauncherLock(tmp_path, "EXP", {})
    first.acquire()
    second = {"host": "some-other-node", "pid": 1, "token": "theirs", "beat": time.time()}
    (tmp_path / LOCK_FILE).write_text(json.dumps(second))  # taken over meanwhile
    first.beat(every_s=0)
    first.release()
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == second
    mine = LauncherLock(tmp_path / "b", "EXP", {})
    mine.acquire()
    mine.release()
    assert not (tmp_path / "b" / LOCK_FILE).exists()  # the twin: its own lock is removed


def test_a_local_job_notices_when_its_launcher_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_lock.LAUNCHER_PID_ENV, raising=False)
    assert launcher_gone() is None  # SLURM jobs have no launcher to watch
    monkeypatch.setenv(_lock.LAUNCHER_PID_ENV, str(os.getpid()))
    assert launcher_gone() is None
    pid = dead_pid()
    monkeypatch.setenv(_lock.LAUNCHER_PID_ENV, str(pid))
    assert launcher_gone() == pid


def test_a_runtime_stops_when_its_launcher_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs import launch
    from jobs._role import Runtime

    exp = str(tmp_path / "exp")
    launch.prepare("local", "tiny", exp, [], 1.0)
    monkeypatch.setenv(_lock.LAUNCHER_PID_ENV, str(os.getpid()))
    runtime = Runtime.start("evaluator", exp, 0, 1.0)
    try:
        assert runtime.running()
        monkeypatch.setenv(_lock.LAUNCHER_PID_ENV, str(dead_pid()))
        runtime._stop_checked = 0.0
        assert not runtime.running()
    finally:
        runtime.finish()


def test_a_resume_asks_live_earlier_jobs_to_stop_and_waits(capsys: pytest.CaptureFixture[str]) -> None:
    alive = [["prover-actor-00"], ["prover-actor-00"], []]
    asked: list[list[str]] = []
    wait_for_earlier_jobs("EXP", lambda: alive.pop(0), asked.append, wait_s=5, poll_s=0)
    assert asked == [["prover-actor-00"]] and "still running (prover-actor-00)" in capsys.readouterr().out
    asked.clear()
    wait_for_earlier_jobs("EXP", lambda: [], asked.append, wait_s=5, poll_s=0)
    assert asked == []  # nothing running: nothing asked, no wait
    with pytest.raises(UsageError, match="prover-actor-00 of an earlier launcher of EXP are still running"):
        wait_for_earlier_jobs("EXP", lambda: ["prover-actor-00"], asked.append, wait_s=0.01, poll_s=0)


def test_a_fresh_heartbeat_of_a_dead_local_pid_is_not_a_live_job() -> None:
    host = socket.gethostname()
    assert _lock.job_alive({"alive": True, "host": host, "pid": os.getpid()})
    assert not _lock.job_alive({"alive": True, "host": host, "pid": dead_pid()})
    assert _lock.job_alive({"alive": True, "host": "some-other-node", "pid": 1})
    assert not _lock.job_alive({"alive": False, "host": host, "pid": os.getpid()})


class _FailingSupervisor:
    """Stands in for the supervisor: its poll fails as a full disk would."""

    instances: ClassVar[list[_FailingSupervisor]] = []

    def __init__(self, *args: object, fail: bool = True, **kwargs: object) -> None:
        self.killed = False
        self.fatal = None
        self.slots: dict = {}
        _FailingSupervisor.instances.append(self)

    running = True

    def start_due(self) -> None:
        pass

    def poll(self) -> None:
        raise OSError(28, "No space left on device")

    def kill_all(self) -> None:
        self.killed = True


def test_a_failing_launcher_stops_its_jobs_and_says_how_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs import launch

    run = launch.prepare("local", "tiny", str(tmp_path / "exp"), [], 1.0)
    monkeypatch.setattr(launch, "Supervisor", _FailingSupervisor)
    code = launch.launch(run, max_failures=1, progress_s=3600, log_level="INFO", main_job=False)
    err = capsys.readouterr().err
    assert code == 1 and _FailingSupervisor.instances[-1].killed
    assert "No space left on device" in err and "resume with" in err and "Traceback" not in err
    assert not (tmp_path / "exp" / "runs" / LOCK_FILE).exists()


def test_the_launch_folder_is_private_to_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's pickles live in runs/<launch>/: nobody but the user may write (or read) there."""
    from jobs import launch

    run = launch.prepare("local", "tiny", str(tmp_path / "exp"), [], 1.0)
    (tmp_path / "exp" / "runs").mkdir(mode=0o777, exist_ok=True)
    os.chmod(tmp_path / "exp" / "runs", 0o777)  # as a permissive umask would leave it
    monkeypatch.setattr(launch, "Supervisor", _FailingSupervisor)
    launch.launch(run, max_failures=1, progress_s=3600, log_level="INFO", main_job=False)
    for folder in (run.folder.parent, run.folder):
        assert folder.stat().st_mode & 0o777 == 0o700, oct(folder.stat().st_mode)


ROLES = ["generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator"]
BAD_FLAGS = [
    (["--rank", "-1"], "--rank must be a whole number >= 0"),
    (["--minutes", "-1"], "--minutes must be a finite number > 0"),
    (["--minutes", "0"], "--minutes must be a finite number > 0"),
]


def test_every_role_refuses_negative_ranks_and_minutes_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each role's command line, its ``main`` through jobs._cli as ``python -m jobs.<role>`` runs it, in this
    process (a subprocess per case only adds an interpreter's start-up; the module wiring: the test below),
    exits 2 with the message and writes nothing. The job's first work (giving torch its threads) is replaced
    by a failure here, so a check that let a bad value through fails this test instead of running the job."""
    import importlib

    from jobs import _cli, _role, launch

    def work_started() -> int:
        raise RuntimeError("the job started working")

    monkeypatch.setattr(_role, "set_threads", work_started)
    exp = tmp_path / "exp"
    launch.prepare("local", "tiny", str(exp), [], 1.0)
    before = sorted(p.relative_to(exp) for p in exp.rglob("*"))
    for role in ROLES:
        entry = importlib.import_module(f"jobs.{role}").main
        for flags, message in BAD_FLAGS:
            code = _cli.main(entry, [str(exp), *flags], prog=f"python -m jobs.{role}")
            err = capsys.readouterr().err
            assert code == 2 and message in err and "Traceback" not in err, (role, flags, err)
            assert sorted(p.relative_to(exp) for p in exp.rglob("*")) == before, (role, flags)  # no heartbeat
        # the accepted twin: a good rank and minutes pass the checks and reach the job's work
        assert _cli.main(entry, [str(exp), "--rank", "0", "--minutes", "1"]) == 1
        assert "the job started working" in capsys.readouterr().err


def test_a_role_run_as_a_module_exits_2_on_a_bad_flag(tmp_path: Path) -> None:
    """``python -m jobs.<role>`` is wired to the same command line (one subprocess; the rest run in-process)."""
    from jobs import launch

    exp = tmp_path / "exp"
    launch.prepare("local", "tiny", str(exp), [], 1.0)
    before = sorted(p.relative_to(exp) for p in exp.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-m", "jobs.prover_actor", str(exp), "--rank", "-1"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.returncode == 2 and "--rank must be a whole number >= 0" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.relative_to(exp) for p in exp.rglob("*")) == before


def test_a_read_only_experiment_folder_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tests run as root, which ignores file modes: the storage refuses writes as a read-only mount would."""
    from core.storage.backend import LocalBackend
    from jobs import launch

    exp = tmp_path / "exp"
    launch.prepare("local", "tiny", str(exp), [], 1.0)

    def refuse(self: LocalBackend, rel: str, data: object) -> int:
        raise PermissionError(13, "Permission denied", self.location(rel))

    monkeypatch.setattr(LocalBackend, "replace", refuse)
    monkeypatch.setattr(LocalBackend, "create", refuse)
    fresh = str(tmp_path / "fresh")
    for argv in (
        ["stop", "--exp", str(exp), "--wait", "0"],
        ["local", "--preset", "tiny", "--exp", fresh, "--minutes", "0.05"],
    ):
        code = launch.main(argv)
        err = capsys.readouterr().err
        assert code == 1 and "Permission denied" in err and "must be writable" in err and "Traceback" not in err
    monkeypatch.undo()
    assert launch.main(["stop", "--exp", str(exp), "--wait", "0"]) == 0  # the twin: a writable folder


def test_a_bad_thread_count_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs._role import set_threads

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    for bad in ("abc", "0", "-2", "1.5"):
        monkeypatch.setenv("ADVPROVER_THREADS", bad)
        with pytest.raises(UsageError, match=r"\$ADVPROVER_THREADS must be a whole number"):
            set_threads()
    monkeypatch.setenv("ADVPROVER_THREADS", "1")
    assert set_threads() == 1


def test_an_experiment_frozen_before_settings_were_added_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Settings added since an experiment was created are read at their defaults: it resumes; a new setting
    given another value is named as a difference (its twin)."""
    from jobs import launch

    exp = tmp_path / "exp"
    launch.prepare("local", "tiny", str(exp), [], 1.0)
    frozen = json.loads((exp / "config.json").read_text())
    del frozen["retention"]  # as written by an older advprover
    del frozen["prover_trainer"]["device"]
    (exp / "config.json").write_text(json.dumps(frozen))
    assert launch.prepare("local", "tiny", str(exp), [], 1.0).resumed
    assert json.loads((exp / "config.json").read_text()) == frozen  # left as it was
    code = launch.main(["local", "--preset", "tiny", "--exp", str(exp), "--set", "prover_trainer.device=cpu"])
    assert code == 2 and "prover_trainer.device" in capsys.readouterr().err
