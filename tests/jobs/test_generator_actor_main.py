"""The generator actor's ``main`` loop, in-process and fast (the tiny preset, the embedded database, a model
of version 0 the actor makes itself): its heartbeat follows it (running, paused while its readers lag,
generating, the records out and the generator's counters); batches are sent whole, round-robin, on the
streams their records name; the live metrics cover every record; the time bound; an adversarial actor
waits for the trainer's checkpoint; the same state replays the same records and a restart draws anew; a
damaged newest checkpoint falls back to the previous version, which the records name; the generator's
filters follow the rewards and the prover's input length (written against the mutants scripts/mutation.sh
found)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from core.adversarial.generation import TheoremGenerator
from core.adversarial.records import GenerationRecord
from core.adversarial.topology import GENERATOR_CHECKPOINTS
from core.storage import CheckpointStore, ExperimentRoot, read_heartbeats, read_shard, stream_bounds
from jobs import generator_actor
from jobs._role import Runtime
from tests.roles import experiment, run_role

FAST = ["database.path=embedded", "generator_trainer.bootstrap_steps=0"]
PRESET = "fixed_generator"  # the actor makes version 0 itself
ONE_PER_BATCH = "generator_actor.rollouts_per_batch=1"


def records_of(root: ExperimentRoot, stream: str) -> list[GenerationRecord]:
    first, end = stream_bounds(root, stream)
    return [
        GenerationRecord.parse(r, stream=stream) for seq in range(first, end) for r in read_shard(root, stream, seq)[1]
    ]


def published(root: ExperimentRoot) -> dict[str, list[GenerationRecord]]:
    return {stream: records_of(root, stream) for stream in sorted(root.streams("generator-actor-00"))}


def heartbeat(root: ExperimentRoot) -> dict[str, Any]:
    [beat] = read_heartbeats(root)
    return beat


def spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, calls: list[Any], call_through: bool = True) -> None:
    """Record each call of ``owner.name`` (args without the first, and keywords) in ``calls``."""
    original = getattr(owner, name)

    def recording(first: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(first, *args, **kwargs) if call_through else None

    monkeypatch.setattr(owner, name, recording)


# --- the heartbeat ------------------------------------------------------------------------------------------------


def test_the_heartbeat_follows_the_job_running_paused_generating_with_its_counts(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", PRESET, *FAST, ONE_PER_BATCH)
    updates: list[Any] = []
    sleeps: list[Any] = []
    generators: list[TheoremGenerator] = []
    spy(monkeypatch, Runtime, "update", updates)
    spy(monkeypatch, Runtime, "sleep", sleeps, call_through=False)  # the pauses are seen, not waited out
    behind = iter([True, True])  # the readers lag at the first two checks, then catch up
    monkeypatch.setattr(generator_actor.LagWatch, "too_far_behind", lambda self: next(behind, False))

    class Recorded(TheoremGenerator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            generators.append(self)

    monkeypatch.setattr(generator_actor, "TheoremGenerator", Recorded)
    assert run_role("generator_actor", root, max_records=3) == "finished"

    loop = updates[updates.index(((), {"records_out": 0, "state": "running"})) :]  # once the model is loaded
    states = [kwargs["state"] for _, kwargs in loop if "state" in kwargs]
    paused = "paused (readers lag behind)"
    assert states[:4] == ["running", paused, paused, "generating"] and set(states[4:]) == {"generating"}
    assert [args for args, _ in sleeps] == [(1.0,), (1.0,)]  # a second's sleep per paused turn
    outs = [kwargs["records_out"] for _, kwargs in loop if "records_out" in kwargs]
    assert outs[0] == 0 and outs[-1] == 3 and len(outs) >= 5  # 0 at the start, after each batch, at the end
    assert outs == sorted(outs) and all(type(n) is int for n in outs)
    assert sum(len(records) for records in published(root).values()) == 3  # nothing lost to the pauses
    beat = heartbeat(root)
    assert (beat["status"], beat["records_out"], beat["generator_version"]) == ("finished", 3, 0)
    assert beat["gen_generated"] == 3 and beat["pruned_shards"] == 0  # the generator's and the pruner's counters
    [generator] = generators  # the defaults: duplicates dropped (no duplicate penalty), half the prover's input
    assert (generator.keep_duplicates, generator.max_statement_tokens) == (False, 128)


def test_the_generator_filters_follow_the_duplicate_penalty_and_the_provers_input(tmp_path: Path, monkeypatch) -> None:
    root = experiment(
        tmp_path / "exp", PRESET, *FAST, "rewards.duplicate_penalty=0.5", "prover_model.max_source_tokens=17"
    )
    generators: list[TheoremGenerator] = []
    policies: list[Any] = []
    spy(monkeypatch, generator_actor, "generator_policy", policies)

    class Recorded(TheoremGenerator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            generators.append(self)

    monkeypatch.setattr(generator_actor, "TheoremGenerator", Recorded)
    run_role("generator_actor", root, minutes=0.02, max_records=1)
    [generator] = generators
    assert generator.keep_duplicates is True  # a penalised duplicate is sent, flagged, for its penalty
    assert generator.max_statement_tokens == 8  # a whole number of tokens: half of 17, rounded down
    for records in published(root).values():
        for r in records:
            assert len(r.goal.statement.split()) + sum(len(h[1].split()) for h in r.goal.hypotheses) <= 8
    [(_, options)] = policies
    assert options["device"] == torch.device("cpu")  # the job's device (the section's "auto" on this machine)


# --- batches, live metrics, bounds --------------------------------------------------------------------------------


def test_batches_are_sent_whole_round_robin_on_the_streams_their_records_name(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", PRESET, *FAST, "prover_actor.count=3", "generator_actor.rollouts_per_batch=4")
    assert run_role("generator_actor", root, max_records=7) == "finished"
    streams = published(root)
    assert [len(records) for records in streams.values()] == [3, 2, 2]
    for stream, records in streams.items():
        assert all(r.id.startswith(f"{stream}/") for r in records)
    beat = heartbeat(root)
    assert beat["records_out"] == 7
    assert beat["gen_generated"] < 7 + 4  # only the last batch is cut short by the bound


def test_the_live_metrics_cover_every_record_the_last_window_forced(tmp_path: Path, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", PRESET, *FAST, ONE_PER_BATCH, "metrics.every_seconds=3600")
    windows: list[Any] = []
    real = generator_actor.generation_scalars

    def counted(rt: Runtime, records: list[GenerationRecord], seconds: float) -> dict[str, float | None]:
        windows.append((len(records), seconds))
        return real(rt, records, seconds)

    monkeypatch.setattr(generator_actor, "generation_scalars", counted)
    written: list[Any] = []
    original = Runtime.timed_scalars

    def timed(self: Runtime, values: Any, *, force: bool = False) -> bool:
        done = original(self, values, force=force)
        written.append((force, done, dict(values)))
        return done

    monkeypatch.setattr(Runtime, "timed_scalars", timed)
    assert run_role("generator_actor", root, max_records=3) == "finished"
    points = [(force, values) for force, done, values in written if done]
    assert [force for force, _ in points] == [False, True]  # the first window at once, the rest at the end
    assert sum(count for count, _ in windows[:1] + windows[-1:]) == 3  # together, every record
    assert all(0 <= seconds < 60 for _, seconds in windows)  # each window's own duration
    assert all(values["actor/records_per_s"] > 0.01 for _, values in points)
    assert all(values["actor/generator_version"] == 0 for _, values in points)


def test_the_time_bound_ends_the_job_with_every_theorem_it_made_published(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", PRESET, *FAST, "generator_actor.shard_records=1")
    assert run_role("generator_actor", root, minutes=0.02) == "finished"  # no record bound: 1.2 s
    beat = heartbeat(root)
    assert beat["records_out"] == sum(len(r) for r in published(root).values()) == beat.get("gen_generated", 0)


def test_an_adversarial_actor_waits_for_the_generator_trainers_checkpoint(tmp_path: Path, caplog, monkeypatch) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST)  # a generator trainer publishes version 0 here
    monkeypatch.setattr(signal, "signal", lambda number, handler: None)  # pytest's handlers stay
    with caplog.at_level(logging.INFO, logger="jobs"):
        assert generator_actor.main(root.url, minutes=0.01) == "finished"  # rank 0 by default
    assert CheckpointStore(root, GENERATOR_CHECKPOINTS).latest() is None  # it did not make one itself
    assert "waiting for generator checkpoint version 0 from the generator trainer" in caplog.text
    beat = heartbeat(root)
    assert beat["state"] == "waiting for generator checkpoint" and "records_out" not in beat


# --- seeds and checkpoints ----------------------------------------------------------------------------------------


def test_the_same_state_replays_the_same_records_and_a_restart_draws_anew(tmp_path: Path) -> None:
    overrides = (*FAST, ONE_PER_BATCH, "generator_actor.mix=1,generator;1,dataset", "generator_actor.shard_records=1")

    def run(root: ExperimentRoot) -> list[tuple[str, str, tuple[str, ...]]]:
        before = {s: len(r) for s, r in published(root).items()}
        assert run_role("generator_actor", root, max_records=6) == "finished"
        new = [r for s, records in published(root).items() for r in records[before.get(s, 0) :]]
        return [(r.source, r.goal.statement, tuple(h[1] for h in r.goal.hypotheses)) for r in new]

    first = experiment(tmp_path / "one", PRESET, *overrides)
    drawn = run(first)
    assert {source for source, _, _ in drawn} == {"generator", "dataset"}
    assert run(experiment(tmp_path / "two", PRESET, *overrides)) == drawn  # the experiment's seed, not the clock
    assert run(first) != drawn  # a restart (6 shards published) has a seed of its own


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_which_the_records_name(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", PRESET, *FAST, "generator_actor.shard_records=1")
    assert run_role("generator_actor", root, max_records=1) == "finished"  # makes version 0
    store = CheckpointStore(root, GENERATOR_CHECKPOINTS)
    tensors, info = store.load(0)
    newest = store.publish(tensors, info.meta)
    name = f"checkpoints/{GENERATOR_CHECKPOINTS}/" + newest.path.rpartition("/")[2]
    root.backend.replace(name, root.backend.read(name)[:-10])  # version 1's weights truncated
    assert run_role("generator_actor", root, max_records=2) == "finished"
    records = [r for records in published(root).values() for r in records]
    assert len(records) == 3 and all(r.generator_version == 0 for r in records)  # the weights that ran
    assert heartbeat(root)["generator_version"] == 0
