"""jobs.status on prepared experiment roots: counts that reconcile, and the faults they reveal."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from configs.databases import resolve_database
from configs.presets import preset
from core.adversarial.records import GenerationRecord
from core.errors import UsageError
from core.metrics import MetricsWriter
from core.storage import CheckpointStore, Cursor, ExperimentRoot, Heartbeat, ShardWriter
from jobs import status
from tests import sample_records

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GEN = "generator-actor-00-to-00"


def make_root(path: Path | str) -> ExperimentRoot:
    config = preset("tiny")
    config = dataclasses.replace(config, database=resolve_database(config.database))
    return ExperimentRoot.create_or_open(str(path), config.to_dict())


def generation(i: int) -> dict:
    return sample_records.generation(
        f"{GEN}/{i}", source="generator" if i % 3 else "dataset", heuristic=0.5, size=3 + i % 4
    ).to_json()


def result(record: dict, proved: bool) -> dict:
    return sample_records.result(
        GenerationRecord.from_json(record), proved=proved, reward=0.0 if proved else 1.0, for_prover_trainer=not proved
    ).to_json()


def populate(root: ExperimentRoot, *, duplicate: bool = False, missing: bool = False, foreign: bool = False) -> None:
    """12 generations in 4 shards; the prover actor consumed the first 3 shards (9 records); the prover trainer
    committed 1 result shard, the generator trainer 2."""
    records = [generation(i) for i in range(12)]
    with ShardWriter(root, GEN, max_records=3, max_age_s=60) as writer:
        for record in records:
            writer.append(record)
    results = ShardWriter(root, "prover-actor-00", max_records=100, max_age_s=60, committing=True)
    for shard in range(3):
        chunk = records[3 * shard : 3 * shard + 3]
        if missing and shard == 1:
            chunk = chunk[:2]
        for i, record in enumerate(chunk):
            results.append(result(record, proved=i == 0))
        if duplicate and shard == 2:
            results.append(result(chunk[0], proved=True))
        if foreign and shard == 2:
            results.append(result(records[11], proved=True))
        results.set_commit(Cursor({GEN: shard + 1}))
        results.flush()
    for name, position in (("prover", 1), ("generator", 2)):
        CheckpointStore(root, name).publish(
            {"w": torch.zeros(1)}, {"step": 10, "cursors": {"0": {"prover-actor-00": position}}}
        )
    evaluations = ShardWriter(root, "evaluator-00", max_records=1, max_age_s=0)
    for version, rate in (("baseline", 0.25), (0, 0.0), (1, 0.5)):
        evaluations.append(sample_records.evaluation(version, rate, time=time.time()).to_json())
    evaluations.close()


def test_counts_reconcile_on_a_consistent_root(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    Heartbeat(root, "prover_actor", 0).beat(prover_version=1, records_out=9, state="proving")
    Heartbeat(root, "generator_actor", 0).beat(status="finished", records_out=12)
    report = status.collect(root)
    assert all(c["ok"] for c in report["checks"]), [c for c in report["checks"] if not c["ok"]]
    generations = report["flows"][GEN]
    assert generations["produced"] == 12
    assert generations["consumers"] == [{"consumer": "prover-actor-00", "cursor": 3, "consumed": 9, "pending": 3}]
    results = {c["consumer"]: c for c in report["flows"]["prover-actor-00"]["consumers"]}
    assert report["flows"]["prover-actor-00"]["produced"] == 9
    assert (results["prover-trainer"]["consumed"], results["prover-trainer"]["pending"]) == (3, 6)
    assert (results["generator-trainer"]["consumed"], results["generator-trainer"]["pending"]) == (6, 3)
    totals = report["totals"]
    assert totals["generations_by_source"] == {"generator": 8, "dataset": 4}
    assert (totals["results"], totals["proved"]) == (9, 3)
    assert totals["baseline_success_rate"] == 0.25
    assert totals["first_evaluation"]["version"] == 0 and totals["last_evaluation"]["success_rate"] == 0.5
    jobs = {j["job"]: j for j in report["jobs"]}
    assert jobs["prover-actor-00"]["alive"] and jobs["prover-actor-00"]["prover_version"] == 1
    assert not jobs["generator-actor-00"]["alive"] and jobs["generator-actor-00"]["state"] == "finished"
    assert jobs["evaluator-00"]["state"] == "never started"
    assert report["disk_bytes"]["total"] > 0 and report["quarantined"] == []
    assert len(report["curves"]["theorem_size"]) == 4 and report["curves"]["results_cumulative"][-1][1] == 9
    json.dumps(report)  # JSON-able as is
    assert "checks: " in status.render(report) and "FAILED" not in status.render(report)


@pytest.mark.parametrize(
    "fault, words",
    [
        ("duplicate", "1 repeated"),
        ("missing", "1 without a result"),
        ("foreign", "1 not from a consumed generation"),
    ],
)
def test_lost_or_duplicated_results_fail_the_checks(tmp_path: Path, fault: str, words: str) -> None:
    root = make_root(tmp_path / "exp")
    populate(root, **{fault: True})
    report = status.collect(root)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert len(failed) == 1 and failed[0]["check"] == "prover-actor-00: one result per consumed generation"
    assert words in failed[0]["detail"]
    assert f"FAILED {failed[0]['check']}" in status.render(report)


def test_a_cursor_past_the_end_of_a_stream_fails(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    CheckpointStore(root, "prover").publish({"w": torch.zeros(1)}, {"cursors": {"0": {"prover-actor-00": 7}}})
    failed = [c for c in status.collect(root)["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == ["prover-actor-00 -> prover-trainer: cursor within the stream"]
    assert "cursor 7, shards 0..3" in failed[0]["detail"]


def test_cli_json_plot_and_exit_status(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    png = tmp_path / "status.png"
    done = subprocess.run(
        [sys.executable, "-m", "jobs.status", root.url, "--json", "--plot", str(png)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["flows"][GEN]["produced"] == 12
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    bad = make_root(tmp_path / "bad")
    populate(bad, duplicate=True)
    assert (
        subprocess.run([sys.executable, "-m", "jobs.status", bad.url], capture_output=True, cwd=PROJECT_ROOT).returncode
        == 1
    )
    missing = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert missing.returncode == 1 and "no experiment at" in missing.stderr and "Traceback" not in missing.stderr


def test_status_names_the_live_tensorboard_folder_and_writes_none(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    report = status.collect(root)
    assert report["tensorboard"] == {"logdir": str(tmp_path / "exp" / "tensorboard"), "runs": []}
    assert "live metrics: no job has written to" in status.render(report)
    assert not (tmp_path / "exp" / "tensorboard").exists()  # status reads; only the jobs write event files


def test_status_lists_the_runs_a_remote_experiment_uploaded(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"memory://status-test-{uuid.uuid4().hex}/exp"
    root = make_root(url)
    config = status.ExperimentConfig.from_dict(root.config)
    board = status.tensorboard_runs(root, config)
    assert board == {"logdir": f"{root.url}/tensorboard", "runs": []}  # memory:///status-test-.../exp/tensorboard
    assert status.tensorboard_line(board) == f"live metrics: no job has written to {root.url}/tensorboard yet"
    with pytest.raises(UsageError, match=f"no TensorBoard runs to show: no job has written to {root.url}"):
        status.print_tensorboard_command(root)
    for job in ("prover-trainer-00", "evaluator-00"):
        writer = MetricsWriter.open_remote(root, job)
        writer.scalars({"a": 1.0}, 1)
        writer.close()
    root.backend.create("tensorboard/generator-actor-00/notes.txt", b"not an event file")
    board = status.tensorboard_runs(root, config)
    assert board == {"logdir": f"{root.url}/tensorboard", "runs": ["evaluator-00", "prover-trainer-00"]}
    assert status.main(url, tensorboard=True) == 0
    assert capsys.readouterr().out == f"tensorboard --logdir {root.url}/tensorboard\n"
    off = dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, enabled=False))
    assert status.tensorboard_runs(root, off) == {"logdir": None, "runs": []}


def test_follower_counts_new_records_once(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    follower = status.Follower(root, status.ExperimentConfig.from_dict(root.config))
    follower.update()
    assert (follower.generations, follower.results) == (0, 0)
    populate(root)
    follower.update()
    follower.update()
    assert (follower.generations, follower.results, follower.proved) == (12, 9, 3)
    assert follower.evaluated(1) and not follower.evaluated(2)


@pytest.mark.parametrize(
    "plot_name, message",
    [
        ("missing/status.png", "the folder"),
        ("status.gif", "unknown image format 'gif'"),
        ("status", "unknown image format '(no extension)'"),
        (".", "is a folder"),
    ],
)
def test_a_bad_plot_path_is_a_usage_error_before_anything_is_read(
    plot_name: str, message: str, tmp_path: Path, capsys
) -> None:
    from jobs._cli import main

    missing_experiment = str(tmp_path / "nothing")  # the plot path is checked first
    code = main(status.cli, [missing_experiment, "--plot", str(tmp_path / plot_name)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_good_plot_path_in_another_format_is_written(tmp_path: Path, capsys) -> None:
    from jobs._cli import main

    root = make_root(tmp_path / "exp")
    populate(root)
    svg = tmp_path / "status.svg"
    assert main(status.cli, [root.url, "--plot", str(svg)]) == 0, capsys.readouterr().err
    assert svg.read_text().lstrip().startswith("<?xml")


def test_a_consumer_stuck_behind_a_gap_fails_the_check(tmp_path: Path) -> None:
    """A lost generation shard below a later one fails status (its twin, a consistent root, passes above);
    the newest shard missing is no gap (its writer publishes it again)."""
    from core.storage.shards import shard_path

    root = make_root(tmp_path / "exp")
    populate(root)
    root.backend.remove(shard_path(GEN, 3))
    assert not [c for c in status.collect(root)["checks"] if c["check"] == f"{GEN}: no gap" and not c["ok"]]
    root.backend.remove(shard_path(GEN, 1))
    report = status.collect(root)
    failed = {c["check"]: c for c in report["checks"] if not c["ok"]}
    assert f"{GEN}: no gap" in failed and "shards 1 missing" in failed[f"{GEN}: no gap"]["detail"]
    assert report["streams"][GEN]["gaps"] == [1]


@pytest.mark.parametrize("clock_offset_s", [3600.0, -3600.0])
def test_a_job_whose_host_clock_is_off_is_judged_by_the_storages_clock(tmp_path: Path, clock_offset_s: float) -> None:
    """A fresh heartbeat from a host whose clock is an hour off is alive (skew reported); a stale one is not."""
    root = make_root(tmp_path / "exp")
    document = Heartbeat(root, "prover_actor", 0).beat(state="proving")
    skewed = {**document, "updated": document["updated"] + clock_offset_s}
    root.backend.replace("heartbeats/prover_actor-0.json", json.dumps(skewed).encode())
    [job] = [j for j in status.collect(root)["jobs"] if j["job"] == "prover-actor-00"]
    assert job["alive"] and abs(job["clock_skew_s"] + clock_offset_s) < 60
    later = time.time() + 3 * status.STALE_AFTER_S  # the same file, seen long after its last beat
    [job] = [j for j in status.collect(root, now=later)["jobs"] if j["job"] == "prover-actor-00"]
    assert not job["alive"]


def test_a_job_with_an_agreeing_clock_reports_no_skew(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    Heartbeat(root, "prover_actor", 0).beat(state="proving")
    [job] = [j for j in status.collect(root)["jobs"] if j["job"] == "prover-actor-00"]
    assert job["alive"] and "clock_skew_s" not in job


def test_a_damaged_checkpoint_version_is_reported(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    store = CheckpointStore(root, "prover")
    assert status.collect(root)["checkpoints"]["prover"]["damaged"] == {}  # the intact twin
    info = store.publish({"w": torch.zeros(64)}, {"step": 20})
    Path(info.path).write_bytes(Path(info.path).read_bytes()[:-10])
    report = status.collect(root)
    assert list(report["checkpoints"]["prover"]["damaged"]) == [str(info.version)]
    assert "truncated" in report["checkpoints"]["prover"]["damaged"][str(info.version)]
    assert f"DAMAGED checkpoint prover v{info.version}" in status.render(report)


# --- a read-only tool moves nothing (P10, P27) -----------------------------------------------------


class ReadOnly:
    """A backend that refuses every write, and remembers the attempts: the root of a read-only experiment
    folder (tests run as root, so chmod alone would not stop writes)."""

    def __init__(self, backend: object) -> None:
        self._backend = backend
        self.attempts: list[str] = []

    def __getattr__(self, name: str) -> object:
        if name in ("create", "replace", "remove"):

            def refuse(rel: str, *args: object) -> None:
                self.attempts.append(f"{name} {rel}")
                raise PermissionError(f"read-only experiment: {name} {rel}")

            return refuse
        return getattr(self._backend, name)


def damage_shard(root: ExperimentRoot, data: bytes) -> Path:
    path = Path(root.backend.location(f"streams/{GEN}/{2:012d}.zst"))
    path.write_bytes(data)
    return path


def test_a_damaged_shard_is_reported_and_left_in_place_on_a_read_only_root(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    healthy = status.collect(root)
    assert healthy["damaged"] == [] and all(c["ok"] for c in healthy["checks"])
    damaged = damage_shard(root, b"not a shard")
    read_only = root.backend = ReadOnly(root.backend)  # type: ignore[assignment]
    report = status.collect(root)
    assert read_only.attempts == []
    [entry] = report["damaged"]
    assert (entry["stream"], entry["seq"]) == (GEN, 2) and entry["reason"].startswith("not a zstd frame")
    readable = next(c for c in report["checks"] if c["check"] == f"{GEN}: every shard readable")
    assert not readable["ok"] and "shard 2: not a zstd frame" in readable["detail"]
    assert "damaged shards (left in place" in status.render(report)
    assert damaged.read_bytes() == b"not a shard" and not (tmp_path / "exp" / "quarantine").exists()


def test_status_cli_reports_a_damaged_shard_without_quarantining_it(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    damaged = damage_shard(root, b"not a shard")
    done = subprocess.run(
        [sys.executable, "-m", "jobs.status", root.url], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{GEN} shard 2: not a zstd frame" in done.stdout
    assert damaged.read_bytes() == b"not a shard" and not (tmp_path / "exp" / "quarantine").exists()


def test_status_cli_refuses_a_shard_of_a_newer_schema_and_moves_nothing(tmp_path: Path) -> None:
    from core.storage.shards import SCHEMA_VERSION, ShardEncoder, make_header

    root = make_root(tmp_path / "exp")
    populate(root)
    newer = ShardEncoder().encode({**make_header(GEN, 2, 0, {}, None, None), "schema": SCHEMA_VERSION + 1}, [])
    path = damage_shard(root, newer)
    done = subprocess.run(
        [sys.executable, "-m", "jobs.status", root.url], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "written by a newer advprover" in line and "upgrade advprover" in line
    assert path.read_bytes() == newer and not (tmp_path / "exp" / "quarantine").exists()


def test_status_cli_restores_a_wrongly_quarantined_shard(tmp_path: Path) -> None:
    from core.storage.shards import quarantine_shard

    root = make_root(tmp_path / "exp")
    populate(root)
    good = root.backend.read(f"streams/{GEN}/{2:012d}.zst")
    assert good is not None
    kept = quarantine_shard(root, GEN, 2, good, "schema version 2, this reader knows 1")
    name = kept.rsplit("/", 1)[1]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobs.status", root.url, *args], capture_output=True, text=True, cwd=PROJECT_ROOT
        )

    unknown = run("--restore-quarantined", "000000000099-0000.zst")
    assert unknown.returncode == 1 and "no quarantined shard named" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    done = run("--restore-quarantined", name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"restored {root.backend.location(f'streams/{GEN}/{2:012d}.zst')}"
    assert root.backend.read(f"streams/{GEN}/{2:012d}.zst") == good
    report = status.collect(root)
    assert report["quarantined"] == [] and all(c["ok"] for c in report["checks"])


def test_a_malformed_record_fails_the_well_formed_check_naming_its_field(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    assert all(c["ok"] for c in status.collect(root)["checks"])  # the well-formed twin
    with ShardWriter(root, GEN, max_records=1, max_age_s=60) as writer:
        writer.append({**generation(12), "heuristic": "high"})
    failed = {c["check"]: c["detail"] for c in status.collect(root)["checks"] if not c["ok"]}
    assert f"{GEN}: every record well-formed" in failed
    assert "field 'heuristic': should be a number" in failed[f"{GEN}: every record well-formed"]


def test_generated_proof_sizes_are_shown_beside_the_human_proofs(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    populate(root)
    report = status.collect(root)
    generated, human = report["proof_sizes"]["generated"], report["proof_sizes"]["human"]
    # the generator's records (i % 3 != 0) have sizes 4 5 3 4 6 3 5 6; the dataset's are left out
    assert generated == {"count": 8, "q1": 3, "median": 4.5, "q3": 5, "histogram": {"3": 2, "4": 2, "5": 2, "6": 2}}
    workspace = status.Workspace.load(report["database"]["path"])
    assert human["count"] == len(workspace.split("train")) > 0 and human["median"] >= 1
    text = status.render(report)
    assert "generated median 4.5 (quartiles 3-5, 8 theorems)" in text
    assert f"human proofs (train split) median {human['median']:g}" in text
    # every result of a generated theorem in populate() failed: the proved-over-time line says 0%
    assert "generated theorems proved over time: 0%" in text


def test_proof_sizes_without_the_database_say_so_and_the_rest_is_reported(tmp_path: Path) -> None:
    config = preset("tiny").to_dict()
    config["database"]["path"] = str(tmp_path / "moved-away.mm")
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), config)
    populate(root)
    report = status.collect(root)
    assert report["proof_sizes"]["generated"]["count"] == 8
    assert "moved-away.mm" in report["proof_sizes"]["human"]["unavailable"]
    assert "human proofs (train split) " + report["proof_sizes"]["human"]["unavailable"] in status.render(report)
