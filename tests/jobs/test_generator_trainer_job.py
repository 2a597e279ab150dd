"""The generator trainer job end to end, in-process and fast (a tiny model, the embedded database): it reads the
stream its wiring names, learns from every record until its step bound, and publishes its cursor, buffer,
steps and REINFORCE baseline; its start turns the entropy bonus on and refills from the committed window; the
record it rejects for citing unknown labels is named in one readable warning; difficulty conditioning
labels a rollout only from a prover's outcome (written against the mutants scripts/mutation.sh found)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.records import GenerationRecord, ResultRecord
from core.adversarial.topology import wiring_of
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.search.baseline import BaselinePolicy
from core.storage import CheckpointStore, ExperimentRoot, ShardWriter
from jobs import _trainer, generator_trainer
from jobs._role import Runtime
from jobs._trainer import TrainerJob
from tests.roles import experiment, run_role
from tests.sample_records import result as sample_result

FAST = ["generator_trainer.bootstrap_steps=0", "prover_trainer.bootstrap_steps=0", "database.path=embedded"]
HEURISTIC = ["setup=generator-reward", "generator_trainer.replay_min=2", "generator_trainer.batch_size=4"]


def generations(rt: Runtime, count: int) -> list[GenerationRecord]:
    """``count`` distinct real generation records (rollouts of the baseline policy on the embedded database)."""
    ws = rt.workspace
    generator = TheoremGenerator(ws, BaselinePolicy(ws.db, grammar=ws.grammar, seed=0),
                                 GenerationSettings(max_steps=3, min_steps=2), seed=1)  # fmt: skip
    found: dict[str, GenerationRecord] = {}
    while len(found) < count:
        for rollout in generator.run(8):
            chosen = generator.select(rollout)
            if chosen is not None and len(found) < count:
                record = GenerationRecord.of_generated(chosen, generator_version=0, source_stream="g")
                found.setdefault(record.id, record)
    return list(found.values())


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Any]:
    """``runtime(role, *overrides)``: a started job of a fresh tiny experiment (heartbeat stopped after)."""
    started: list[Runtime] = []

    def start(role: str, *overrides: str) -> Runtime:
        root = experiment(tmp_path / f"exp{len(started)}", "tiny", *FAST, *overrides)
        rt = Runtime.start(role, str(root.url), 0, None)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt._closed.set()


def trainer_of(rt: Runtime) -> TrainerJob:
    job = _trainer.new_job(rt, "generator", rt.config.generator_trainer, rt.config.generator_model, ("generator",))
    vocab = build_vocabulary(rt.workspace.db)
    _trainer.set_model(job, new_model(vocab, "tiny", max_source_len=256, max_target_len=64), vocab)
    return job


# --- the job ------------------------------------------------------------------------------------------------------


def test_the_job_learns_its_streams_records_and_publishes_cursor_buffer_steps_and_baseline(
    tmp_path: Path, runtime
) -> None:
    rt = runtime("generator_trainer", *HEURISTIC)
    records = [dataclasses.replace(g, heuristic=float(i)) for i, g in enumerate(generations(rt, 4))]
    root = experiment(tmp_path / "job", "tiny", *FAST, *HEURISTIC, "generator_trainer.max_steps=3",
                      "generator_trainer.baseline_decay=0.5", "generator_trainer.entropy_weight=0.25")  # fmt: skip
    assert run_role("generator_trainer", root, max_steps=0) == "finished"  # version 0, before any record
    [stream] = wiring_of(rt.config).read_by("generator_trainer", 0)  # generator-reward: the generations
    writer = ShardWriter(ExperimentRoot.open(str(root.url)), stream, max_records=2, max_age_s=60.0)
    for record in records:
        writer.append(record.to_json())
    writer.close()
    assert run_role("generator_trainer", root) == "finished"  # generator_trainer.max_steps bounds it
    latest = CheckpointStore(root, "generator").latest()
    assert latest is not None and latest.version >= 1
    meta = latest.meta
    assert meta["step"] == 3
    assert meta["cursors"] == {"0": {stream: 2}}  # both shards read
    assert meta["counters"] == {"records_in": 4, "skipped": 0, "buffer": 4}
    rewards = [r.heuristic / (1 + r.heuristic) for r in records]  # the squashed heuristics 0, 1/2, 2/3, 3/4
    assert meta["state"]["rewards_seen"] == 4
    assert min(rewards) < meta["state"]["baseline"] < max(rewards)  # a moving average of what was read
    writer = ShardWriter(ExperimentRoot.open(str(root.url)), stream, max_records=2, max_age_s=60.0)
    for record in generations(rt, 6)[4:]:
        writer.append(record.to_json())
    writer.close()
    assert run_role("generator_trainer", root, max_steps=1) == "finished"  # a restart: from the committed cursor
    meta = CheckpointStore(root, "generator").latest().meta  # type: ignore[union-attr]  # published above
    assert meta["step"] == 4 and meta["cursors"] == {"0": {stream: 3}}
    assert meta["state"]["rewards_seen"] == 6  # the two new records only: nothing read twice


def test_in_the_adversarial_setup_the_job_learns_the_prover_actors_results(tmp_path: Path, runtime) -> None:
    rt = runtime("generator_trainer")
    flagged = [dataclasses.replace(sample_result(g), reward=float(i % 2), for_generator_trainer=True)
               for i, g in enumerate(generations(rt, 4))]  # fmt: skip
    root = experiment(
        tmp_path / "job", "tiny", *FAST, "generator_trainer.replay_min=2", "generator_trainer.batch_size=4"
    )
    assert run_role("generator_trainer", root, max_steps=0) == "finished"
    [stream] = wiring_of(rt.config).read_by("generator_trainer", 0)  # the prover actor's results
    writer = ShardWriter(ExperimentRoot.open(str(root.url)), stream, max_records=4, max_age_s=60.0)
    for record in flagged:
        writer.append(record.to_json())
    writer.close()
    assert run_role("generator_trainer", root, max_steps=2) == "finished"
    meta = CheckpointStore(root, "generator").latest().meta  # type: ignore[union-attr]  # published above
    assert meta["step"] == 2 and meta["counters"] == {"records_in": 4, "skipped": 0, "buffer": 4}
    assert meta["state"]["rewards_seen"] == 4 and 0.0 < meta["state"]["baseline"] < 1.0


def test_start_turns_the_entropy_bonus_on_and_refills_with_the_generators_rules(runtime, monkeypatch) -> None:
    rt = runtime("generator_trainer", *HEURISTIC, "generator_trainer.entropy_weight=0.25")
    [stream] = wiring_of(rt.config).read_by("generator_trainer", 0)
    records = generations(rt, 3)
    writer = ShardWriter(rt.root, stream, max_records=1, max_age_s=60.0)
    for record in records:
        writer.append(dataclasses.replace(record, heuristic=1.0).to_json())
    writer.close()
    job = trainer_of(rt)
    job.input_record = GenerationRecord
    committed = dataclasses.make_dataclass("Committed", ["version", "meta"])(
        3, {"cursors": {"0": {stream: 2}}, "windows": {"0": {stream: [0, 0]}}}
    )
    monkeypatch.setattr(_trainer, "resume", lambda job: committed)
    cursor = generator_trainer.start(job)
    assert cursor is not None and cursor.to_json() == {stream: 2}
    assert _trainer.training(job).entropy_weight == 0.25
    assert len(job.buffer) == 2  # shards 0 and 1 (the window to the cursor), derived by the generator's rules
    assert all(item.record["reward"] == pytest.approx(0.5) and item.record["examples"] for item in job.buffer)


# --- derive: a record that does not fit the database ---------------------------------------------------------------


def test_an_unknown_label_warning_names_the_job_the_record_and_at_most_five_labels(runtime, caplog) -> None:
    rt = runtime("generator_trainer")
    job = trainer_of(rt)
    good = dataclasses.replace(sample_result(generations(rt, 1)[0]), id="r-19", reward=1.0, for_generator_trainer=True)
    rollout = good.generation.rollout
    assert rollout is not None
    step = rollout.steps[0]
    bad_steps = tuple(dataclasses.replace(step, label=f"nope{i}") for i in range(6))
    bad = dataclasses.replace(
        good, generation=dataclasses.replace(good.generation, rollout=dataclasses.replace(rollout, steps=bad_steps))
    )
    with caplog.at_level(logging.WARNING, logger="jobs.generator_trainer"):
        assert generator_trainer.derive(job, bad) is None
    assert caplog.records[-1].getMessage() == (
        f"{rt.name}: skipping record r-19: its rollout cites nope0, nope1, nope2, nope3, nope4, unknown to the database"
    )


# --- hindsight conditioning: only a prover's outcome labels a rollout ---------------------------------------------


ON = "generator_actor.difficulty_conditioning=true"


def outcome(generation: GenerationRecord, successes: int, attempts: int = 2) -> ResultRecord:
    return dataclasses.replace(
        sample_result(generation), successes=successes, attempts=attempts, proved=successes > 0,
        reward=float(successes == 0), for_generator_trainer=True,
    )  # fmt: skip


@pytest.mark.parametrize(("successes", "level"), [(0, "HARD"), (1, "MEDIUM"), (2, "EASY")])
def test_a_result_is_conditioned_on_the_level_the_prover_measured_and_counted(runtime, successes, level) -> None:
    rt = runtime("generator_trainer", ON)
    job = trainer_of(rt)
    derived = generator_trainer.derive(job, outcome(generations(rt, 1)[0], successes))
    assert derived is not None and derived[0]
    level_id = job.vocab.special_id(f"<{level}>")  # type: ignore[union-attr]  # set with the model
    assert all(source[1] == level_id for source, _ in derived[0])
    assert rt.counters[f"rollouts_{level.lower()}"] == 1 and "unlabelled_rollouts" not in rt.counters


def test_without_an_outcome_a_conditioned_rollout_is_skipped_and_counted(runtime) -> None:
    rt = runtime("generator_trainer", ON)
    job = trainer_of(rt)
    generation = generations(rt, 1)[0]
    assert generator_trainer.derive(job, generation) is None  # a generation record (as the heuristic setups read)
    assert generator_trainer.derive(job, outcome(generation, 0, attempts=0)) is None  # never attempted
    assert rt.counters["unlabelled_rollouts"] == 2
    assert not any(key.startswith("rollouts_") for key in rt.counters)
