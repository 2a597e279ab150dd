"""Metric files (outside the protocol): a job's local files uploaded into ``tensorboard/<job>/``, an upload of
grown content replacing the earlier one with no temporary left beside it, downloaded back; names refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import StorageError
from core.storage import ExperimentRoot


def local_file(folder: Path, name: str, data: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return str(folder / name)


def test_a_jobs_files_are_uploaded_replaced_as_they_grow_and_downloaded(root: ExperimentRoot, tmp_path: Path) -> None:
    assert root.metric_jobs() == [] and root.metric_files("prover-trainer-00") == []
    path = local_file(tmp_path / "run", "events.out.tfevents.1.host.7.0", b"first")
    assert root.upload_metric_file("prover-trainer-00", path) == 5
    local_file(tmp_path / "run", "events.out.tfevents.1.host.7.0", b"first, then more")  # the file grew
    assert root.upload_metric_file("prover-trainer-00", path) == 16
    other = local_file(tmp_path / "run", "events.out.tfevents.2.host.8.0", b"a restart's file")
    root.upload_metric_file("prover-trainer-00", other)
    root.upload_metric_file("evaluator-00", other)
    assert root.metric_jobs() == ["evaluator-00", "prover-trainer-00"]
    assert root.metric_files("prover-trainer-00") == [
        "events.out.tfevents.1.host.7.0",
        "events.out.tfevents.2.host.8.0",
    ]
    assert sorted(root.backend.listdir("tensorboard/prover-trainer-00")) == root.metric_files("prover-trainer-00")
    paths = root.download_metric_files("prover-trainer-00", str(tmp_path / "back"))
    assert [Path(p).read_bytes() for p in paths] == [b"first, then more", b"a restart's file"]
    assert root.metrics_url == root.backend.location("tensorboard")


def test_hidden_names_and_bad_job_names_are_refused(root: ExperimentRoot, tmp_path: Path) -> None:
    hidden = local_file(tmp_path, ".tmp-abc-events.out.tfevents.1", b"x")
    with pytest.raises(StorageError, match="must not be empty or start with '.'"):
        root.upload_metric_file("job", hidden)
    fine = local_file(tmp_path, "events.out.tfevents.1", b"x")
    with pytest.raises(StorageError, match="invalid job name '../escape'"):
        root.upload_metric_file("../escape", fine)
    with pytest.raises(StorageError, match="invalid job name"):
        root.metric_files("a/b")
    assert root.metric_jobs() == []
    root.backend.create("tensorboard/job/.tmp-abc-events.out.tfevents.1", b"a temporary")
    assert root.metric_jobs() == ["job"] and root.metric_files("job") == []  # never listed, never downloaded
    assert root.download_metric_files("job", str(tmp_path / "back")) == []
