"""core.metrics on a remote experiment root (``memory://``, and ``s3://`` on the local S3 server): a job's run is
staged locally and uploaded into EXP/tensorboard/<job>/, where TensorBoard reads it from the URL; a restarted
writer downloads the earlier event files and repeats no step; uploads are rate-limited, a long run rolls to
new event files; a failing store costs the job no point and keeps the staged events."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import fsspec
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core import metrics
from core.metrics import MetricsWriter, newest_event_second, remote_runs
from core.storage import ExperimentRoot

JOB = "prover-trainer-00"


@pytest.fixture(autouse=True)
def staging_in_tmp_path(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging folders go under the test's tmp_path: a kept one (a failed last upload) never litters /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def memory_root() -> Iterator[ExperimentRoot]:
    path = f"/metrics-test-{uuid.uuid4().hex}"
    yield ExperimentRoot.create_or_open(f"memory://{path}/exp", {"seed": 0})
    fsspec.filesystem("memory").rm(path, recursive=True)


def loaded(url: str) -> dict[str, list[tuple[int, float]]]:
    """Each scalar tag's (step, value) points, as TensorBoard loads the run at ``url``."""
    accumulator = EventAccumulator(url)
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def stored_bytes(root: ExperimentRoot, job: str = JOB) -> dict[str, int]:
    return {name: root.backend.size(f"tensorboard/{job}/{name}") or 0 for name in root.metric_files(job)}


def test_a_remote_run_is_uploaded_into_the_experiment_and_a_restart_repeats_no_step(
    memory_root: ExperimentRoot,
) -> None:
    first = MetricsWriter.open_remote(memory_root, JOB)
    staging = first.folder
    assert staging is not None and not staging.startswith("memory:")  # written locally...
    assert remote_runs(memory_root) == [JOB]  # ...and shown in the experiment from the start
    for step in (1, 2, 3, 4):
        first.scalars({"train/loss": float(step)}, step)
    first.close()
    assert not os.path.exists(os.path.dirname(staging))  # uploaded: the staging folder is gone
    second = MetricsWriter.open_remote(memory_root, JOB)  # a restart that resumed from step 2
    assert second.last_step == {"train/loss": 4}
    assert [second.scalars({"train/loss": -1.0}, step) for step in (3, 4, 5)] == [0, 0, 1]
    second.close()
    assert len(memory_root.metric_files(JOB)) == 2  # one event file per process
    run = f"{memory_root.metrics_url}/{JOB}"
    assert loaded(run) == {"train/loss": [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, -1.0)]}


def test_uploads_wait_for_their_period_and_a_long_run_rolls_to_new_files(
    memory_root: ExperimentRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "PUBLISH_SECONDS", 3600.0)
    writer = MetricsWriter.open_remote(memory_root, JOB)
    at_open = stored_bytes(memory_root)
    writer.scalars({"a": 1.0}, 1)
    writer.flush()
    assert stored_bytes(memory_root) == at_open  # not due yet: nothing uploaded
    writer.close()
    (name,) = at_open
    assert stored_bytes(memory_root)[name] > at_open[name]  # the close uploads the grown file

    monkeypatch.setattr(metrics, "PUBLISH_SECONDS", 0.0)
    monkeypatch.setattr(metrics, "ROLL_BYTES", 150)
    writer = MetricsWriter.open_remote(memory_root, JOB)
    for step in range(2, 14):
        writer.scalars({"a": float(step), "b": 0.5}, step)
        time.sleep(0.25)  # a new file waits for the next second (see MetricsWriter._roll_may_name)
    assert writer.folder is not None and len(os.listdir(writer.folder)) == 1  # finished files removed locally
    writer.close()
    assert len(memory_root.metric_files(JOB)) >= 3  # the first process's, and this one's rolled files
    points = loaded(f"{memory_root.metrics_url}/{JOB}")
    assert [step for step, _ in points["a"]] == list(range(1, 14))
    assert [step for step, _ in points["b"]] == list(range(2, 14))


def test_a_failing_store_loses_no_point_and_keeps_the_staged_events(
    memory_root: ExperimentRoot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(metrics, "PUBLISH_SECONDS", 0.0)
    writer = MetricsWriter.open_remote(memory_root, JOB)
    uploaded = stored_bytes(memory_root)

    def unreachable(job: str, path: str) -> int:
        raise OSError("the store is unreachable")

    monkeypatch.setattr(memory_root, "upload_metric_file", unreachable)
    with caplog.at_level(logging.WARNING, logger="core.metrics"):
        assert writer.scalars({"a": 1.0}, 1) == 1  # the job goes on
        writer.close()
    assert "cannot upload its TensorBoard events" in caplog.text and "the store is unreachable" in caplog.text
    assert stored_bytes(memory_root) == uploaded
    assert writer.folder is not None and loaded(writer.folder) == {"a": [(1, 1.0)]}  # kept, as the warning says
    assert f"they stay in {writer.folder}" in caplog.text


READ_RUN = """
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
accumulator = EventAccumulator(sys.argv[1])
accumulator.Reload()
print(json.dumps({t: [[e.step, e.value] for e in accumulator.Scalars(t)] for t in accumulator.Tags()["scalars"]}))
"""


def test_tensorboard_reads_a_run_uploaded_to_s3(s3_bucket: str) -> None:
    """What ``tensorboard --logdir s3://...`` reads: TensorBoard's own S3 client (boto3), pointed at the local
    server by ``S3_ENDPOINT`` (read when TensorBoard is imported: in a new process), as the README says."""
    root = ExperimentRoot.create_or_open(f"{s3_bucket}/{uuid.uuid4().hex}/exp", {"seed": 0})
    writer = MetricsWriter.open_remote(root, "evaluator-00")
    writer.scalars({"eval/success_rate": 0.25}, 8)
    writer.close()
    again = MetricsWriter.open_remote(root, "evaluator-00")
    assert again.scalars({"eval/success_rate": 0.5}, 8) == 0 and again.scalars({"eval/success_rate": 0.5}, 9) == 1
    again.close()
    assert remote_runs(root) == ["evaluator-00"] and root.metrics_url.startswith("s3://")
    environment = {
        **os.environ,
        "S3_ENDPOINT": os.environ["FSSPEC_S3_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": os.environ["FSSPEC_S3_KEY"],
        "AWS_SECRET_ACCESS_KEY": os.environ["FSSPEC_S3_SECRET"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    read = subprocess.run(
        [sys.executable, "-c", READ_RUN, f"{root.metrics_url}/evaluator-00"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == {"eval/success_rate": [[8, 0.25], [9, 0.5]]}


def test_a_restart_within_the_same_second_names_its_event_file_after_the_earlier_ones(
    memory_root: ExperimentRoot,
) -> None:
    for _ in range(3):  # restarts in quick succession: each new file's second is later than every earlier one's
        before = memory_root.metric_files(JOB)
        writer = MetricsWriter.open_remote(memory_root, JOB)
        writer.close()
        (new,) = set(memory_root.metric_files(JOB)) - set(before)
        assert all(int(new.split(".")[3]) > int(old.split(".")[3]) for old in before), (new, before)
    assert newest_event_second(["events.out.tfevents.17.host.1.2", "events.out.tfevents.9.host.1.10", "x"]) == 17
    assert newest_event_second(["status.png"]) is None
