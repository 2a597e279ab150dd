"""core.metrics: one job's TensorBoard run; points already written (by this or an earlier process) are never
written again; damaged event files, switched-off metrics and unusable folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.errors import ConfigError
from core.metrics import MetricsWriter, device_scalars, mean, metrics_root, runs_in, seconds_step, written_steps


def loaded(run: Path) -> dict[str, list[tuple[int, float]]]:
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_points_are_written_per_job_at_their_steps(tmp_path: Path) -> None:
    writer = MetricsWriter.open(str(tmp_path), "prover-trainer-00")
    assert writer.scalars({"train/loss": 2.0, "train/lr": 0.25}, 10) == 2
    assert writer.scalars({"train/loss": 1.5, "train/lr": None, "train/grad_norm": float("nan")}, 20) == 1
    writer.close()
    assert runs_in(str(tmp_path)) == ["prover-trainer-00"]
    assert loaded(tmp_path / "prover-trainer-00") == {"train/loss": [(10, 2.0), (20, 1.5)], "train/lr": [(10, 0.25)]}


def test_a_reopened_run_appends_and_drops_steps_already_written(tmp_path: Path) -> None:
    first = MetricsWriter.open(str(tmp_path), "job")
    for step in (1, 2, 3, 4):
        first.scalars({"a": float(step)}, step)
    first.scalars({"b": 0.0}, 1)
    first.close()
    second = MetricsWriter.open(str(tmp_path), "job")  # a restart that resumed from step 2
    assert second.last_step == {"a": 4, "b": 1}
    assert [second.scalars({"a": -1.0}, step) for step in (3, 4, 5)] == [0, 0, 1]
    assert second.scalars({"b": 9.0}, 2) == 1  # each tag has its own last step
    assert second.dropped == 2
    second.close()
    assert loaded(tmp_path / "job") == {
        "a": [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, -1.0)],
        "b": [(1, 0.0), (2, 9.0)],
    }


def test_a_truncated_event_file_is_read_up_to_its_damage(tmp_path: Path) -> None:
    writer = MetricsWriter.open(str(tmp_path), "job")
    for step in range(1, 6):
        writer.scalars({"a": 1.0}, step)
    writer.close()
    intact = written_steps(str(tmp_path / "job"))
    (event_file,) = (tmp_path / "job").glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    event_file.write_bytes(data[: len(data) - 7])  # a crash in the middle of the last record
    assert intact == {"a": 5}
    assert written_steps(str(tmp_path / "job")) == {"a": 4}
    assert MetricsWriter.open(str(tmp_path), "job").scalars({"a": 1.0}, 5) == 1


def test_a_disabled_writer_writes_nothing(tmp_path: Path) -> None:
    writer = MetricsWriter.disabled()
    assert not writer.enabled and writer.scalars({"a": 1.0}, 1) == 0
    writer.close()
    assert runs_in(str(tmp_path / "nothing")) == []


def test_an_unusable_folder_is_a_config_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=f"metrics folder {blocker}/job: cannot create it"):
        MetricsWriter.open(str(blocker), "job")


def test_where_runs_go() -> None:
    assert metrics_root("/exp", "") == "/exp/tensorboard"
    assert metrics_root("/exp", "file:///scratch/tb") == metrics_root(None, "/scratch/tb") == "/scratch/tb"
    assert metrics_root(None, "") is None  # a remote experiment without a local folder: uploaded to its store


def test_gpu_memory_only_where_cuda_is_in_use() -> None:
    import torch

    if not torch.cuda.is_available():
        assert device_scalars() == {}
        return
    kept = torch.ones(1024, 1024, device="cuda")
    values = device_scalars()
    assert values["system/gpu_memory_allocated_mib"] >= 4.0 and values["system/gpu_memory_peak_mib"] >= 4.0
    del kept


def test_helpers() -> None:
    assert seconds_step(100.0, now=162.9) == 62 and seconds_step(100.0, now=50.0) == 0
    assert mean([1, 2.0, None, True, "x"]) == 1.5 and mean([None]) is None
