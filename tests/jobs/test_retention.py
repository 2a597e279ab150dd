"""P28, bounded disk: who consumes a stream, how far each is done with it, and when its producer prunes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from configs.databases import resolve_database
from configs.experiment import ExperimentConfig
from configs.presets import preset
from core.errors import ConfigError
from core.storage import CheckpointStore, Cursor, ExperimentRoot, ShardWriter, pruned_prefix, stream_bounds
from jobs import status
from jobs._retention import Pruner, checkpoint_floor, consumers_floor, stream_consumers
from tests import sample_records
from tests.roles import run_role

GEN = "generator-actor-00-to-00"
RESULTS = "prover-actor-00"


def make_root(path: Path, *overrides: str, name: str = "tiny") -> ExperimentRoot:
    config = preset(name).with_overrides(list(overrides))
    config = dataclasses.replace(config, database=resolve_database(config.database))
    return ExperimentRoot.create_or_open(str(path), config.to_dict())


def config_of(root: ExperimentRoot) -> ExperimentConfig:
    return ExperimentConfig.from_dict(root.config)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def populate(root: ExperimentRoot, *, consumed_generations: int, trainer_results: int, window_from: int) -> None:
    """10 generation shards of 2 records; the prover actor consumed ``consumed_generations`` of them (one
    result shard each); both trainers committed ``trainer_results`` result shards, with a replay window from
    shard ``window_from``."""
    with ShardWriter(root, GEN, max_records=2, max_age_s=60) as writer:
        for i in range(20):
            writer.append(sample_records.generation(f"{GEN}/{i}").to_json())
    results = ShardWriter(root, RESULTS, max_records=100, max_age_s=60, committing=True)
    for shard in range(consumed_generations):
        for i in (2 * shard, 2 * shard + 1):
            results.append(sample_records.result(sample_records.generation(f"{GEN}/{i}")).to_json())
        results.flush(cursor=Cursor({GEN: shard + 1}))
    results.close()
    for name in ("prover", "generator"):
        CheckpointStore(root, name).publish(
            {"w": torch.zeros(1)},
            {"step": 5, "cursors": {"0": {RESULTS: trainer_results}}, "windows": {"0": {RESULTS: [window_from, 0]}}},
        )


def test_consumers_follow_the_setup(tmp_path: Path) -> None:
    adversarial = config_of(make_root(tmp_path / "a"))
    assert stream_consumers(adversarial, GEN) == [("stream", RESULTS)]
    assert stream_consumers(adversarial, RESULTS) == [("checkpoint", "prover"), ("checkpoint", "generator")]
    assert stream_consumers(adversarial, "evaluator-00") == []
    heuristic = config_of(make_root(tmp_path / "b", name="generator_reward"))
    assert stream_consumers(heuristic, GEN) == [("stream", RESULTS), ("checkpoint", "generator")]
    assert stream_consumers(heuristic, RESULTS) == [("checkpoint", "prover")]


def test_a_trainer_needs_its_replay_window_and_every_kept_version(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp")
    store = CheckpointStore(root, "prover")
    assert checkpoint_floor(root, "prover", RESULTS) == 0  # no version: nothing consumed
    store.publish({"w": torch.zeros(1)}, {"cursors": {"0": {RESULTS: 6}, "1": {"other": 9}}})
    assert checkpoint_floor(root, "prover", RESULTS) == 6
    store.publish({"w": torch.zeros(1)}, {"cursors": {"0": {RESULTS: 9}}, "windows": {"0": {RESULTS: [7, 1]}}})
    assert checkpoint_floor(root, "prover", RESULTS) == 6  # the older version may still be resumed from
    store.retain(1, grace_s=0)
    assert checkpoint_floor(root, "prover", RESULTS) == 7  # the window's first shard, not the cursor
    assert checkpoint_floor(root, "prover", "a-stream-it-never-read") == 0


def test_the_producer_prunes_below_every_consumer_after_the_grace_period(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", "retention.keep_shards=2", "retention.grace_s=60", "retention.prune_every_s=10")
    populate(root, consumed_generations=6, trainer_results=4, window_from=3)
    clock = Clock()
    generations, results = (
        Pruner(root, config_of(root), [GEN], clock=clock),
        Pruner(root, config_of(root), [RESULTS], clock=clock),
    )
    assert consumers_floor(root, config_of(root), GEN) == 6 and consumers_floor(root, config_of(root), RESULTS) == 3
    assert generations.maybe_prune() == 0 and results.maybe_prune() == 0  # seen now: not for 60 s yet
    clock.now += 30
    assert generations.maybe_prune() == 0  # too soon to look again
    clock.now += 30
    assert generations.maybe_prune() == 6 and stream_bounds(root, GEN) == (6, 10)
    assert results.maybe_prune() == 3 and pruned_prefix(root, RESULTS) == (3, 6)
    assert generations.summary() == {"pruned_shards": 6}


def test_the_newest_shards_and_a_lagging_consumer_are_kept(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", "retention.keep_shards=5", "retention.grace_s=0")
    populate(root, consumed_generations=9, trainer_results=4, window_from=4)
    assert Pruner(root, config_of(root), [GEN]).maybe_prune() == 5  # the consumer is at 9; keep the last 5
    lagging = make_root(tmp_path / "lagging", "retention.keep_shards=1", "retention.grace_s=0")
    populate(lagging, consumed_generations=2, trainer_results=0, window_from=0)
    assert Pruner(lagging, config_of(lagging), [GEN]).maybe_prune() == 2
    assert Pruner(lagging, config_of(lagging), [RESULTS]).maybe_prune() == 0  # the trainers read nothing yet


def test_a_floor_that_moved_within_the_grace_period_is_not_pruned_past(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", "retention.keep_shards=1", "retention.grace_s=60", "retention.prune_every_s=10")
    populate(root, consumed_generations=2, trainer_results=0, window_from=0)
    clock = Clock()
    pruner = Pruner(root, config_of(root), [GEN], clock=clock)
    pruner.maybe_prune()  # floor 2 seen at t
    results = ShardWriter(root, RESULTS, max_records=100, max_age_s=60, committing=True)
    results.append(sample_records.result(sample_records.generation(f"{GEN}/4")).to_json())
    results.flush(cursor=Cursor({GEN: 8}))
    results.close()
    clock.now += 60
    assert pruner.maybe_prune() == 2 and stream_bounds(root, GEN)[0] == 2  # floor 8 is only seen now
    clock.now += 60
    assert pruner.maybe_prune() == 6 and stream_bounds(root, GEN)[0] == 8


def test_a_storage_error_while_pruning_is_logged_and_the_producer_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_root(tmp_path / "exp", "retention.keep_shards=1", "retention.grace_s=0", "retention.prune_every_s=1")
    populate(root, consumed_generations=6, trainer_results=4, window_from=3)
    root.backend.replace(f"streams/{GEN}/low_water.json", b"not json")
    clock = Clock()
    pruner = Pruner(root, config_of(root), [GEN, RESULTS], clock=clock)
    assert pruner.maybe_prune() == 3  # the results stream is pruned; the generations' mark is unreadable
    assert f"stream {GEN}: not pruned this time" in caplog.text and "low_water.json is unreadable" in caplog.text
    root.backend.replace(f"streams/{GEN}/low_water.json", b'{"below": 0, "from": 0}')
    clock.now += 1
    assert pruner.maybe_prune() == 6  # restored: the next look prunes it


@pytest.mark.parametrize("setting", ["retention.keep_all=true", "retention.keep_shards=100"])
def test_keep_all_or_a_large_keep_prunes_nothing(setting: str, tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", setting, "retention.grace_s=0")
    populate(root, consumed_generations=9, trainer_results=4, window_from=4)
    assert Pruner(root, config_of(root), [GEN, RESULTS]).maybe_prune() == 0
    assert stream_bounds(root, GEN) == (0, 10)


@pytest.mark.parametrize(
    "setting, field",
    [
        ("retention.keep_shards=0", "keep_shards"),
        ("retention.grace_s=-1", "grace_s"),
        ("retention.prune_every_s=0", "prune_every_s"),
    ],
)
def test_bad_retention_settings_are_refused_naming_the_field(setting: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        preset("tiny").with_overrides([setting])


def test_status_reconciles_and_shows_what_was_pruned(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", "retention.keep_shards=1", "retention.grace_s=0")
    populate(root, consumed_generations=6, trainer_results=4, window_from=3)
    Pruner(root, config_of(root), [GEN, RESULTS]).maybe_prune()
    report = status.collect(root)
    assert not [c for c in report["checks"] if not c["ok"]]
    assert report["streams"][GEN]["pruned_shards"] == 6 and report["streams"][GEN]["pruned_records"] == 12
    assert report["streams"][RESULTS]["pruned_records"] == 6
    assert report["flows"][GEN]["produced"] == 20
    assert report["flows"][GEN]["consumers"][0] == {"consumer": RESULTS, "cursor": 6, "consumed": 12, "pending": 8}
    assert report["flows"][RESULTS]["produced"] == 12
    assert "pruned below shard 6: 12 records" in status.render(report)


def test_status_fails_when_pruned_past_a_consumer(tmp_path: Path) -> None:
    from core.storage import prune_stream

    root = make_root(tmp_path / "exp")
    populate(root, consumed_generations=6, trainer_results=4, window_from=3)
    prune_stream(root, RESULTS, 5)  # past the trainers (at 4): what a broken retention policy would do
    failed = {c["check"] for c in status.collect(root)["checks"] if not c["ok"]}
    assert f"{RESULTS} -> prover-trainer: cursor within the stream" in failed


def test_a_lost_result_is_still_caught_after_pruning(tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", "retention.keep_shards=1", "retention.grace_s=0")
    populate(root, consumed_generations=6, trainer_results=4, window_from=3)
    Pruner(root, config_of(root), [GEN, RESULTS]).maybe_prune()
    results = ShardWriter(root, RESULTS, max_records=100, max_age_s=60, committing=True)
    results.flush(cursor=Cursor({GEN: 7}))  # consumed generation shard 6 and published no result for it
    results.close()
    failed = [c for c in status.collect(root)["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == [f"{RESULTS}: one result per consumed generation"]
    assert "14 generations consumed, 12 results" in failed[0]["detail"]


# --- the roles prune on a tiny run ------------------------------------------------------------------------------


def reconciled(root: ExperimentRoot) -> dict:
    report = status.collect(root)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed, failed
    return report


@pytest.mark.slow
def test_roles_prune_on_a_tiny_run_and_a_resume_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.jobs.test_roles import FAST

    monkeypatch.setattr("signal.signal", lambda *args: None)  # in-process roles must leave pytest's handlers be
    small_trainers = [
        f"{role}.{key}"
        for role in ("prover_trainer", "generator_trainer")
        for key in ("replay_min=1", "replay_max=2", "keep_checkpoints=1")
    ]  # their floors move on too
    root = make_root(
        tmp_path / "exp",
        *FAST,
        *small_trainers,
        "retention.keep_shards=1",
        "retention.grace_s=0",
        "retention.prune_every_s=1",
    )
    for role in ("prover_trainer", "generator_trainer"):
        assert run_role(role, root, max_steps=0) == "finished"
    assert run_role("generator_actor", root, max_records=8) == "finished"
    assert run_role("prover_actor", root, max_records=8) == "finished"
    for role in ("prover_trainer", "generator_trainer"):
        assert run_role(role, root, max_steps=2) == "finished"
    assert run_role("generator_actor", root, max_records=2) == "finished"  # prunes what the prover actor consumed
    assert run_role("prover_actor", root, max_records=2) == "finished"  # prunes what both trainers are done with
    report = reconciled(root)
    assert report["streams"][GEN]["pruned_shards"] >= 3 and report["streams"][RESULTS]["pruned_shards"] >= 1
    assert report["flows"][GEN]["produced"] == 10  # pruned ones counted: nothing lost
    caplog.clear()
    for role in ("prover_trainer", "generator_trainer"):  # resume: refill the replay buffer, read on
        assert run_role(role, root, max_steps=2) == "finished"
    assert run_role("generator_actor", root, max_records=2) == "finished"
    assert run_role("prover_actor", root, max_records=2) == "finished"
    assert not [
        r
        for r in caplog.records
        if "cannot refill" in r.getMessage() or ("pruned" in r.getMessage() and r.levelname in ("WARNING", "ERROR"))
    ]
    report = reconciled(root)
    assert report["flows"][GEN]["produced"] == 12
    assert report["flows"][RESULTS]["produced"] == report["flows"][GEN]["consumers"][0]["consumed"]
