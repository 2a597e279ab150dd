"""Live TensorBoard scalars of a short real run (tiny preset, embedded database, roles run in-process): each
job writes its own run under EXP/tensorboard with the expected tags at increasing steps, a restarted trainer
does not repeat a step, ``jobs.status`` points at the runs, and metrics switched off or an unusable metrics
folder write nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from configs.databases import resolve_database
from configs.presets import preset
from core.errors import ConfigError
from core.storage import CheckpointStore, ExperimentRoot
from jobs import launch
from jobs import status as status_job
from tests import roles

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = [
    "generator_trainer.bootstrap_steps=4",
    "prover_trainer.bootstrap_steps=4",
    "database.path=embedded",
    "generator_actor.shard_records=4",
    "prover_actor.shard_records=4",
    "evaluator.max_theorems=2",
    "prover_actor.search.expansions=4",
    "evaluator.search.expansions=4",
    "metrics.every_steps=2",
    "prover_trainer.checkpoint_every_steps=4",
    "prover_trainer.batch_size=4",
]
TRAINER_TAGS = {"train/loss", "train/lr", "train/grad_norm", "train/steps_per_s", "replay/size", "checkpoint/version"}


def make_experiment(path: Path, *extra: str) -> Path:
    config = preset("tiny").with_overrides([*OVERRIDES, *extra])
    config = dataclasses.replace(config, database=resolve_database(config.database))
    ExperimentRoot.create_or_open(str(path), config.to_dict())
    return path


def run_role(role: str, exp: Path, **bounds: Any) -> str:
    return roles.run_role(role, exp, minutes=2.0, **bounds)


def scalars(run: Path) -> dict[str, list[int]]:
    """The steps of every scalar tag of one TensorBoard run, as TensorBoard loads them."""
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    return {tag: [event.step for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def drop_newest_version(exp: Path, kind: str) -> int:
    """Remove the newest checkpoint version's files, as if the trainer died before publishing it."""
    store = CheckpointStore(ExperimentRoot.open(str(exp)), kind)
    newest = store.versions()[-1]
    folder = exp / "checkpoints" / kind
    for file in folder.iterdir():
        if file.name.startswith(f"{newest:08d}") or file.name == "latest.json":
            file.unlink()
    return newest


def test_a_run_writes_live_scalars_per_job_and_a_restart_repeats_no_step(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "exp")
    assert run_role("prover_trainer", exp, max_steps=10) == "finished"
    assert run_role("generator_trainer", exp, max_steps=0) == "finished"
    assert run_role("generator_actor", exp, max_records=4) == "finished"
    assert run_role("prover_actor", exp, max_records=4) == "finished"
    assert run_role("evaluator", exp, max_records=2) == "finished"
    board = exp / "tensorboard"
    assert sorted(p.name for p in board.iterdir()) == [
        "evaluator-00",
        "generator-actor-00",
        "generator-trainer-00",
        "prover-actor-00",
        "prover-trainer-00",
    ]

    trainer = scalars(board / "prover-trainer-00")
    assert set(trainer) >= TRAINER_TAGS
    assert trainer["train/loss"] == [2, 4, 6, 8, 10]  # the trainer's own steps, every metrics.every_steps
    assert trainer["bootstrap/loss"] == [2, 4]
    generator = scalars(board / "generator-actor-00")
    assert {"actor/records_per_s", "actor/dataset_fraction", "actor/generator_version"} <= set(generator)
    prover = scalars(board / "prover-actor-00")
    assert {"actor/results_per_s", "actor/proved_rate", "actor/mean_reward", "actor/prover_version"} <= set(prover)
    evaluator = scalars(board / "evaluator-00")
    assert evaluator["baseline/success_rate"] == [0] and evaluator["eval/success_rate"] == [0]  # v0, at step 0

    dropped = drop_newest_version(exp, "prover")  # the trainer "crashed" after step 10, before publishing it
    assert dropped >= 1
    assert run_role("prover_trainer", exp, max_steps=6) == "finished"  # resumes at step 8: trains 9..14
    again = scalars(board / "prover-trainer-00")
    assert len(list((board / "prover-trainer-00").glob("events.out.tfevents.*"))) == 2
    for tag, steps in again.items():
        assert steps == sorted(set(steps)), f"{tag} repeats or reorders steps: {steps}"
    assert again["train/loss"] == [2, 4, 6, 8, 10, 12, 14]
    assert run_role("generator_actor", exp, max_records=4) == "finished"  # a restarted actor: its time axis goes on
    actor = scalars(board / "generator-actor-00")
    assert all(steps == sorted(set(steps)) for steps in actor.values()) and len(actor["actor/records_per_s"]) >= 1


def end_of_run_report(exp: Path) -> str:
    config = status_job.ExperimentConfig.from_dict(ExperimentRoot.open(str(exp)).config)
    run = launch.Run("local", str(exp), config, [], 1.0, False, exp / "runs" / "now")
    return launch.summary(run, SimpleNamespace(slots=[]), time.time())[0]  # type: ignore[arg-type]


def test_status_points_at_the_live_runs(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "exp")
    root = ExperimentRoot.open(str(exp))
    assert "no job has written" in status_job.render(status_job.collect(root))
    assert "tensorboard --logdir" not in end_of_run_report(exp)
    assert run_role("prover_trainer", exp, max_steps=2) == "finished"
    assert f"metrics     tensorboard --logdir {exp / 'tensorboard'}" in end_of_run_report(exp)
    report = status_job.collect(root)
    assert report["tensorboard"] == {"logdir": str(exp / "tensorboard"), "runs": ["prover-trainer-00"]}
    assert f"tensorboard --logdir {exp / 'tensorboard'}" in status_job.render(report)
    shown = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(exp), "--tensorboard"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert shown.returncode == 0 and shown.stdout.strip() == f"tensorboard --logdir {exp / 'tensorboard'}"
    old_use = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(exp), "--tensorboard", str(tmp_path / "tb")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert old_use.returncode == 2 and "--tensorboard takes true or false" in old_use.stderr
    assert "Traceback" not in old_use.stderr
    assert not (tmp_path / "tb").exists()


def test_metrics_switched_off_write_nothing_and_status_says_so(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "exp", "metrics.enabled=false")
    assert run_role("prover_trainer", exp, max_steps=4) == "finished"
    assert not (exp / "tensorboard").exists()
    shown = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(exp), "--tensorboard"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert shown.returncode != 0 and "no TensorBoard runs" in shown.stderr and "Traceback" not in shown.stderr


def test_an_unusable_metrics_folder_stops_the_job_before_it_works(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    exp = make_experiment(tmp_path / "exp", f"metrics.folder={blocker}")
    with pytest.raises(ConfigError, match="metrics folder .*a-file"):
        run_role("prover_trainer", exp, max_steps=2)
    assert not (exp / "checkpoints" / "prover").exists() or not any((exp / "checkpoints" / "prover").iterdir())
