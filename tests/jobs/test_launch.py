"""The launcher: bad input is refused before anything starts; a local run is supervised, stops cleanly on
``launch.sh stop``, and the same command resumes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.storage import CheckpointStore, ExperimentRoot
from jobs import launch
from tests import roles, sample_records

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Small enough to show progress within a minute on 2 shared cores.
FAST = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_trainer.checkpoint_every_steps=10",
    "prover_trainer.checkpoint_every_steps=10",
    "evaluator.max_theorems=3",
    "generator_actor.mix=1,generator;1,dataset",
]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = launch.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_help_lists_presets_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_main(["--help"], capsys)
    assert code == 0
    for word in ("local", "slurm", "stop", "default", "tiny", "supervised_only", "jobs.status"):
        assert word in text
    code, text = run_main(["local", "--help"], capsys)
    assert code == 0 and "--preset" in text and "--set" in text and "--minutes" in text and "tiny" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["local", "--preset", "nope", "--exp", "{dir}"], "unknown preset 'nope'; presets: default, tiny"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--set", "prover_actor.count"], "must read key=value"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--set", "prover_actor.cout=2"], "unknown setting"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--set", "prover_actor.count=two"], "takes an integer"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--set", "setup=supervised-only"], "runs no generator_actor"),
        (["local", "--preset", "tiny"], "--exp"),
        (["local", "--exp", "{dir}"], "--preset"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--minutes", "0"], "--minutes must be > 0"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--minutes", "soon"], "invalid float"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--bogus"], "unrecognized arguments"),
        (["local", "--preset", "tiny", "--exp", "memory://x"], "a memory:// experiment lives in one process"),
        (["local", "--preset", "tiny", "--exp", "file://{file}"], "is a file, not a folder"),
        (["local", "--preset", "tiny", "--exp", "file://{other}"], "is not an experiment"),
        (["stop", "--exp", "file://{dir}"], "no experiment there"),
        (["local", "--preset", "tiny", "--exp", "{file}"], "is a file, not a folder"),
        (["local", "--preset", "tiny", "--exp", "{other}"], "is not an experiment"),
        (["stop", "--exp", "{dir}"], "no experiment there"),
        (["--minutes", "-1"], "--minutes must be > 0"),
        (["--minutes", "inf"], "--minutes must be > 0 (a finite number of minutes), got inf"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--minutes", "nan"], "--minutes must be > 0"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--minutes=-inf"], "--minutes must be > 0"),
        (
            ["local", "--preset", "tiny", "--exp", "{dir}", "--set", "prover_trainer.lr=nan"],
            "prover_trainer.lr must be a finite number, got nan",
        ),
        (
            ["local", "--preset", "tiny", "--exp", "{dir}", "--set", "prover_actor.search.timeout_s=inf"],
            "prover_actor.search.timeout_s must be a finite number, got inf",
        ),
        (
            ["local", "--preset", "tiny", "--exp", "{dir}", "--set", "rewards.kind=band"],
            "rewards.attempts must be >= 2",
        ),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--set", "database.path={empty}"], "has no theorems"),
        (["local", "--preset", "tiny", "--exp", "{dir}", "--set", "database.path={other}"], "not a regular file"),
        (
            ["local", "--preset", "tiny", "--exp", "{dir}", "--set", "database.path={file}"],
            "does not read as a Metamath database",
        ),
        (["config"], "--preset NAME (with any --set key=value) or --exp DIR"),
        (["config", "--preset", "nope"], "unknown preset 'nope'"),
        (["config", "--preset", "tiny", "--set", "prover_trainer.lr=inf"], "prover_trainer.lr must be a finite"),
        (["config", "--preset", "tiny", "--set", "prover_trainer.lr"], "must read key=value"),
        (["config", "--exp", "{dir}"], "no experiment there"),
        (["config", "--exp", "{dir}", "--preset", "tiny"], "one of the two"),
    ],
)
def test_bad_input_exits_2_before_starting_anything(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty.mm").write_text("")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.txt").write_text("not an experiment")
    places = {
        "dir": str(tmp_path / "exp"),
        "file": str(tmp_path / "file"),
        "other": str(tmp_path / "other"),
        "empty": str(tmp_path / "empty.mm"),
    }
    code, text = run_main([a.format(**places) for a in argv], capsys)
    assert code == 2, text
    assert message in text
    assert "Traceback" not in text
    assert not (tmp_path / "exp").exists()  # nothing was created
    assert sorted(os.listdir(tmp_path / "other")) == ["data.txt"]


@pytest.mark.parametrize("value", ["0", "-2", "inf", "nan", "soon", "2 min"])
def test_a_bad_advprover_minutes_exits_2_before_starting_anything(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADVPROVER_EXPERIMENTS", str(tmp_path / "experiments"))
    monkeypatch.setenv(launch.MINUTES_ENV, value)
    code, text = run_main([], capsys)
    assert code == 2, text
    assert "$ADVPROVER_MINUTES must be a positive number of minutes" in text and repr(value) in text
    assert "Traceback" not in text
    assert not (tmp_path / "experiments").exists()


@pytest.mark.parametrize(
    "environment, argv, minutes",
    [
        ({}, [], launch.MAIN_MINUTES),
        ({"ADVPROVER_MINUTES": ""}, [], launch.MAIN_MINUTES),
        ({"ADVPROVER_MINUTES": "2"}, [], 2.0),
        ({"ADVPROVER_MINUTES": " 0.5 "}, [], 0.5),
        ({"ADVPROVER_MINUTES": "2"}, ["--minutes", "3"], 3.0),  # the flag wins
        ({"ADVPROVER_MINUTES": "soon"}, ["--minutes", "3"], 3.0),  # and the variable is then not read
    ],
)
def test_the_main_job_runs_for_advprover_minutes(
    environment: dict[str, str],
    argv: list[str],
    minutes: float,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ADVPROVER_EXPERIMENTS", str(tmp_path / "experiments"))
    monkeypatch.delenv(launch.MINUTES_ENV, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    runs: list[launch.Run] = []
    monkeypatch.setattr(launch, "launch", lambda run, **options: runs.append(run) or 0)
    code, text = run_main(argv, capsys)
    assert code == 0, text
    assert [(run.minutes, run.cluster) for run in runs] == [(minutes, "local")]
    assert Path(runs[0].exp).parent == tmp_path / "experiments"
    assert Path(runs[0].exp).name.startswith(f"{launch.MAIN_PRESET}-")


def test_advprover_minutes_does_not_change_explicit_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(launch.MINUTES_ENV, "2")
    runs: list[launch.Run] = []
    monkeypatch.setattr(launch, "launch", lambda run, **options: runs.append(run) or 0)
    code, text = run_main(["local", "--preset", "tiny", "--exp", str(tmp_path / "exp")], capsys)
    assert code == 0, text
    assert [run.minutes for run in runs] == [60.0]


def test_infinite_minutes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_main(["local", "--preset", "tiny", "--exp", str(tmp_path / "exp"), "--minutes", "inf"], capsys)
    assert code == 2 and "--minutes must be > 0 (a finite number of minutes)" in text
    assert not (tmp_path / "exp").exists()


def test_a_different_configuration_on_an_existing_experiment_names_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = str(tmp_path / "exp")
    launch.prepare("local", "tiny", exp, ["prover_actor.shard_records=4"], 1.0)
    code, text = run_main(["local", "--preset", "tiny", "--exp", exp, "--set", "prover_actor.shard_records=5"], capsys)
    assert code == 2
    assert "prover_actor.shard_records (existing 4, given 5)" in text
    same = launch.prepare("local", "tiny", exp, ["prover_actor.shard_records=4"], 1.0)  # the accepted twin
    assert same.resumed


def test_dependent_overrides_are_accepted_together(tmp_path: Path) -> None:
    band = ["rewards.kind=band", "rewards.attempts=4", "prover_actor.search.prover=forward-sampling"]
    run = launch.prepare("local", "tiny", str(tmp_path / "exp"), band, 1.0)
    assert (run.config.rewards.kind, run.config.rewards.attempts) == ("band", 4)  # the README's example


@pytest.mark.parametrize(
    "threads, accepted", [("abc", False), ("0", False), ("-2", False), ("1.5", False), ("2", True), ("", True)]
)
def test_the_local_thread_count_is_checked_before_anything_is_created(
    threads: str, accepted: bool, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("ADVPROVER_THREADS", threads)
    exp = tmp_path / "exp"
    if accepted:
        assert launch.prepare("local", "tiny", str(exp), [], 1.0).config.preset == "tiny"
        assert launch.local_threads() == int(threads or 1)
        return
    code, text = run_main(["local", "--preset", "tiny", "--exp", str(exp)], capsys)
    assert (
        code == 2 and f"ADVPROVER_THREADS must be a positive integer (threads per local job), got {threads!r}" in text
    )
    assert "Traceback" not in text and not exp.exists()


def test_slurm_resources_may_change_on_resume_and_the_change_is_recorded(tmp_path: Path, caplog) -> None:
    exp = tmp_path / "exp"
    launch.prepare("local", "tiny", str(exp), ["prover_actor.shard_records=4"], 1.0)
    frozen = (exp / "config.json").read_text()
    run = launch.prepare(
        "local", "tiny", str(exp), ["prover_actor.shard_records=4", "slurm.evaluator.cpus=4", "slurm.account=lab"], 1.0
    )
    assert run.resumed and run.config.slurm.evaluator.cpus == 4 and run.config.slurm.account == "lab"
    assert run.placement_changes == ["slurm.account: '' -> 'lab'", "slurm.evaluator.cpus: 2 -> 4"]
    assert (exp / "config.json").read_text() == frozen  # the frozen configuration is left as it was
    run.folder.mkdir(parents=True)
    with caplog.at_level("WARNING", logger="jobs.launch"):
        launch.write_run_record(run, 0.0, {"evaluator": 60.0})
    record = json.loads((run.folder / "launch.json").read_text())
    assert record["placement_changes"] == run.placement_changes
    assert "slurm.evaluator.cpus: 2 -> 4" in caplog.text
    same = launch.prepare("local", "tiny", str(exp), ["prover_actor.shard_records=4"], 1.0)
    assert same.placement_changes == []


def test_other_settings_stay_frozen_when_slurm_ones_change(tmp_path: Path, capsys) -> None:
    exp = str(tmp_path / "exp")
    launch.prepare("local", "tiny", exp, [], 1.0)
    code, text = run_main(
        [
            "local",
            "--preset",
            "tiny",
            "--exp",
            exp,
            "--set",
            "slurm.evaluator.cpus=4",
            "--set",
            "prover_actor.shard_records=5",
        ],
        capsys,
    )
    assert code == 2 and "differing keys: prover_actor.shard_records (existing 8, given 5)." in text
    assert "slurm" not in text.split("differing keys:")[1].split(".", 1)[0]


def test_config_prints_every_setting_with_help_and_default(capsys) -> None:
    code, text = run_main(
        [
            "config",
            "--preset",
            "tiny",
            "--set",
            "rewards.kind=band",
            "--set",
            "rewards.attempts=4",
            "--set",
            "prover_actor.search.prover=forward-sampling",
        ],
        capsys,
    )
    assert code == 0, text
    assert text.startswith("# preset tiny --set rewards.kind=band --set rewards.attempts=4")
    assert "[prover_actor.search]  the search each goal gets" in text
    attempts = next(line for line in text.splitlines() if line.strip().startswith("attempts = "))
    assert "attempts = 4" in attempts and "prover attempts per generated theorem" in attempts
    assert "(default: 1)" in attempts
    assert "hilbert.mm" in text  # the database resolved to a file, as it would be frozen
    from configs.presets import preset

    assert sum(line.startswith("  ") and " = " in line for line in text.splitlines()) == len(preset("tiny").settings())


def test_config_of_an_experiment_prints_its_frozen_configuration(tmp_path: Path, capsys) -> None:
    exp = str(tmp_path / "exp")
    launch.prepare("local", "tiny", exp, ["prover_actor.shard_records=5"], 1.0)
    code, text = run_main(["config", "--exp", exp], capsys)
    assert code == 0 and f"# the frozen configuration of {exp}" in text
    assert "shard_records = 5" in text and "(default: 32)" in text
    code, text = run_main(["config", "--exp", exp, "--set", "seed=1"], capsys)
    assert code == 2 and "--set has no meaning with --exp" in text


class FakeSupervisor:
    """Stands in for jobs._supervise.Supervisor: its jobs end at once, having published ``shards`` shards."""

    shards = 0

    def __init__(self, exp: str, slots: list, *args, **kwargs) -> None:
        self.exp, self.slots = exp, slots
        self.running, self.fatal = False, None

    def start_due(self) -> None:
        from core.storage import ShardWriter

        with ShardWriter(
            ExperimentRoot.open(self.exp), "generator-actor-00-to-00", max_records=1, max_age_s=60
        ) as writer:
            for i in range(self.shards):
                writer.append(sample_records.generation(f"generator-actor-00-to-00/{i}").to_json())

    def poll(self) -> None:
        pass

    def kill_all(self) -> None:
        pass


@pytest.mark.parametrize("shards, code", [(0, 1), (2, 0)])
def test_a_run_in_which_no_job_published_anything_fails(
    shards: int, code: int, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(FakeSupervisor, "shards", shards)
    monkeypatch.setattr(launch, "Supervisor", FakeSupervisor)
    monkeypatch.setattr(launch, "summary", lambda run, supervisor, start: ("summary", True))
    run = launch.prepare("local", "tiny", str(tmp_path / "exp"), [], 1.0)
    assert launch.launch(run, max_failures=1, progress_s=60.0, log_level="INFO", main_job=False) == code
    text = capsys.readouterr().err
    assert ("no job published anything in this run" in text) == (code == 1)


def test_a_second_launcher_on_a_running_experiment_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    launch.prepare("local", "tiny", str(exp), [], 1.0)
    (exp / "runs").mkdir(exist_ok=True)
    (exp / "runs" / "launcher.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    code, text = run_main(["local", "--preset", "tiny", "--exp", str(exp)], capsys)
    assert code == 2 and "already running" in text
    (exp / "runs" / "launcher.lock").write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename}))
    assert launch.prepare("local", "tiny", str(exp), [], 1.0).resumed  # a dead launcher's lock is ignored


def test_deadlines_leave_the_evaluator_a_reserve() -> None:
    from configs.presets import preset

    deadlines = launch.deadlines_of(preset("tiny"), 10.0, 1000.0)
    assert deadlines["evaluator"] == 1000.0 + 600
    assert deadlines["prover_trainer"] == deadlines["generator_actor"] == 1000.0 + 600 - 90
    no_evaluator = preset("tiny").with_overrides(["evaluator.count=0"])
    assert set(launch.deadlines_of(no_evaluator, 10.0, 0.0).values()) == {600.0}


def test_jobs_are_killed_late_enough_for_one_more_long_evaluation() -> None:
    deadlines = {"prover_trainer": 900.0, "evaluator": 1000.0}
    assert launch.kill_time(deadlines, []) == 1000.0 + launch.KILL_GRACE_S
    took = [sample_records.evaluation("baseline", 0.0, seconds=10.0), sample_records.evaluation(0, 0.0, seconds=0.0)]
    assert launch.kill_time(deadlines, took) == 1000.0 + launch.KILL_GRACE_S
    took = [sample_records.evaluation(0, 0.0, seconds=40.0), sample_records.evaluation(1, 0.0, seconds=240.0)]
    assert launch.kill_time(deadlines, took) == 1000.0 + 1.25 * 240 + 30


def launch_command(exp: Path, minutes: float, *extra: str) -> list[str]:
    command = roles.launch_command(exp, minutes, *extra)
    for override in FAST:
        command += ["--set", override]
    return command


@pytest.mark.slow
def test_local_run_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    env = dict(os.environ, ADVPROVER_THREADS="1")
    first = subprocess.Popen(
        launch_command(exp, 3), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT_ROOT, env=env
    )
    start = time.time()
    root = None
    while time.time() - start < 150:
        if (exp / "config.json").exists():
            root = root or ExperimentRoot.open(str(exp))
            latest = CheckpointStore(root, "prover").latest()
            if latest is not None and latest.version >= 1 and (exp / "streams" / "prover-actor-00").exists():
                break
        time.sleep(1)
    stop = subprocess.run(
        [sys.executable, "-m", "jobs.launch", "stop", "--exp", str(exp), "--wait", "90"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
    )
    output, _ = first.communicate(timeout=120)
    stopped_after = time.time() - start
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "all jobs have ended" in stop.stdout
    assert first.returncode == 0, output[-3000:]
    assert stopped_after < 170, "the run did not end early on the stop request"
    assert "== advprover: run ended" in output and "resume      " in output
    assert "sizes       generated median " in output and "human proofs (train split) median " in output
    assert "checks      " in output and "FAILED" not in output
    beats = {p.name: json.loads(p.read_text()) for p in (exp / "heartbeats").glob("*.json")}
    assert {b.get("status") for b in beats.values()} <= {"interrupted", "finished"}, beats
    before = CheckpointStore(ExperimentRoot.open(str(exp)), "prover").latest()
    assert before is not None

    second = subprocess.run(
        launch_command(exp, 0.75), capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=240
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming" in second.stdout
    after = CheckpointStore(ExperimentRoot.open(str(exp)), "prover").latest()
    assert after is not None and after.version > before.version  # went on from where it was, not from 0
    assert "FAILED" not in second.stdout
    status = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(exp), "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert status.returncode == 0, status.stdout[-2000:] + status.stderr[-2000:]
    report = json.loads(status.stdout)
    assert all(c["ok"] for c in report["checks"])
    assert report["totals"]["results"] > 0 and report["stop_request"] is None


@pytest.mark.slow
def test_a_job_that_keeps_dying_stops_the_run_with_its_log(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    command = launch_command(exp, 2, "--max-failures", "1", "--set", f"evaluator.benchmark={tmp_path / 'missing.mm'}")
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=150)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "evaluator-00 died 2 times in a row" in done.stderr
    assert "_0_log.err (last" in done.stderr and "missing.mm" in done.stderr  # the tail of its log, with the cause
    assert "resume with: ./launch.sh local --preset tiny" in done.stderr
    assert time.time() - start < 100  # well before the 2-minute deadline
    beats = [json.loads(p.read_text()) for p in (exp / "heartbeats").glob("*.json")]
    assert beats and all(b.get("status") in ("interrupted", "finished", None) for b in beats)
