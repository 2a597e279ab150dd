"""The generator actor, in-process and fast (the tiny preset, the embedded database): the job publishes its
records round-robin on its streams, each naming its stream and the generator version; a source mix sends
database theorems; a batch counts its rollouts and its generation time; the live metrics of a window of records;
the lag watch pauses while the streams' first reader lags, checked again every 5 s; the policy gets the job's
seed, device and precision (written against the mutants scripts/mutation.sh found; the ``main`` loop's own
tests are in test_generator_actor_main.py)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.records import GenerationRecord
from core.models.checkpoint import LoadedModel
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.search.baseline import BaselinePolicy
from core.storage import Cursor, read_shard, stream_bounds
from jobs import generator_actor
from jobs._role import Runtime
from tests.roles import experiment, run_role

FAST = ["database.path=embedded", "generator_trainer.bootstrap_steps=0"]
PRESET = "fixed_generator"  # the actor makes version 0 itself


def records_of(root: Any, stream: str) -> list[GenerationRecord]:
    first, end = stream_bounds(root, stream)
    return [
        GenerationRecord.parse(r, stream=stream) for seq in range(first, end) for r in read_shard(root, stream, seq)[1]
    ]


@pytest.fixture
def actor(tmp_path: Path) -> Any:
    """``actor(*overrides)``: a started generator actor of a fresh tiny experiment, with a baseline generator."""
    started: list[Runtime] = []

    def start(*overrides: str) -> tuple[Runtime, TheoremGenerator]:
        root = experiment(tmp_path / f"exp{len(started)}", PRESET, *FAST, *overrides)
        rt = Runtime.start("generator_actor", str(root.url), 0, None)
        started.append(rt)
        ws = rt.workspace
        policy = BaselinePolicy(ws.db, grammar=ws.grammar, seed=0)
        return rt, TheoremGenerator(ws, policy, GenerationSettings(max_steps=3, min_steps=2), seed=1)  # type: ignore[arg-type]  # the baseline stands in for the model

    yield start
    for rt in started:
        rt._closed.set()


# --- the job ------------------------------------------------------------------------------------------------------


def test_the_job_publishes_records_round_robin_naming_their_stream_and_version(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", PRESET, *FAST, "prover_actor.count=2", "generator_actor.shard_records=1")
    assert run_role("generator_actor", root, max_records=4) == "finished"
    streams = ["generator-actor-00-to-00", "generator-actor-00-to-01"]
    assert sorted(root.streams("generator-actor-00")) == streams
    for stream in streams:  # every shard says who wrote it and which record type it holds
        header = read_shard(root, stream, 0)[0]
        assert (header["producer"]["role"], header["producer"]["rank"]) == ("generator_actor", 0)
        assert (header["record_type"], header["record_version"]) == ("generation", GenerationRecord.VERSION)
    published = {stream: records_of(root, stream) for stream in streams}
    assert [len(published[s]) for s in streams] == [2, 2]  # exactly max_records, alternating
    for stream, records in published.items():
        for record in records:
            assert record.source == "generator" and record.generated and record.rollout is not None
            assert record.id.startswith(f"{stream}/")  # a record names the stream it was sent on
            assert record.generator_version == 0 and record.requested_difficulty is None


def test_a_dataset_mix_publishes_train_theorems_of_the_database(tmp_path: Path) -> None:
    root = experiment(
        tmp_path / "exp", PRESET, *FAST, "generator_actor.mix=1,dataset", "generator_actor.shard_records=1"
    )
    assert run_role("generator_actor", root, max_records=2) == "finished"
    [stream] = root.streams("generator-actor-00")
    records = records_of(root, stream)
    assert len(records) == 2 and all(r.source == "dataset" and not r.generated for r in records)


# --- make_records -------------------------------------------------------------------------------------------------


def test_a_batch_of_generated_records_counts_its_rollouts_and_uses_the_turns_stream(actor) -> None:
    rt, generator = actor("generator_actor.rollouts_per_batch=3")
    records = generator_actor.make_records(rt, generator, random.Random(0), {"generator": 1.0}, 7, ["a", "b"], 3)
    assert rt.counters["rollouts"] == 3 and len(records) <= 3
    assert rt.counters["generation_seconds"] >= 0 and "dataset_records" not in rt.counters
    assert all(r.generator_version == 7 and r.generated for r in records)
    assert [r.id.split("/")[0] for r in records] == ["b", "a", "b"][: len(records)]  # from turn 3, round-robin


def test_a_dataset_turn_sends_one_database_theorem_and_counts_it(actor) -> None:
    rt, generator = actor()
    [record] = generator_actor.make_records(rt, generator, random.Random(0), {"dataset": 1.0}, 7, ["a", "b"], 2)
    assert record.source == "dataset" and record.id.startswith("a/") and record.generator_version is None
    assert rt.counters["dataset_records"] == 1 and "rollouts" not in rt.counters


# --- the live metrics of a window -----------------------------------------------------------------------------------


def test_generation_scalars_describe_the_window(actor) -> None:
    rt, generator = actor()
    generated = generator_actor.make_records(rt, generator, random.Random(0), {"generator": 1.0}, 0, ["a"], 0)
    while len(generated) < 2:
        generated += generator_actor.make_records(rt, generator, random.Random(0), {"generator": 1.0}, 0, ["a"], 0)
    one = dataclasses.replace(generated[0], heuristic=1.0, duplicate=True)
    two = dataclasses.replace(generated[1], heuristic=3.0, duplicate=False)
    database = generator_actor.make_records(rt, generator, random.Random(0), {"dataset": 1.0}, 0, ["a"], 0)[0]
    rt.update(reader_lag_shards=4, generator_version=2)
    scalars = generator_actor.generation_scalars(rt, [one, two, database], 2.0)
    assert scalars["actor/records_per_s"] == pytest.approx(1.5)
    assert scalars["actor/dataset_fraction"] == pytest.approx(1 / 3)
    assert scalars["actor/duplicate_fraction"] == pytest.approx(0.5)  # of the generated records only
    assert scalars["actor/mean_heuristic"] == pytest.approx(2.0)
    assert scalars["actor/mean_proof_size"] == pytest.approx((one.stats.size + two.stats.size) / 2)
    assert scalars["actor/mean_proof_depth"] == pytest.approx((one.stats.depth + two.stats.depth) / 2)
    assert (scalars["actor/reader_lag_shards"], scalars["actor/generator_version"]) == (4, 2)
    assert generator_actor.generation_scalars(rt, [database], 0.0)["actor/records_per_s"] > 1e6  # no division by 0


# --- the lag watch ------------------------------------------------------------------------------------------------


def test_the_lag_watch_pauses_while_the_first_reader_is_more_than_max_lag_shards_behind(actor, monkeypatch) -> None:
    rt, _ = actor("generator_actor.max_lag_shards=2", "prover_actor.count=2")
    committed = {"generator-actor-00-to-00": 5, "generator-actor-00-to-01": 1}
    asked: list[str] = []

    def cursor(root: Any, consumer: Any) -> Cursor:
        asked.append(consumer.role)
        return Cursor(committed)

    monkeypatch.setattr(generator_actor, "consumer_cursor", cursor)
    writers = [SimpleNamespace(stream=s, next_seq=6) for s in committed]
    watch = generator_actor.LagWatch(rt, writers)  # type: ignore[arg-type]  # stand-ins for the writers
    assert watch.too_far_behind() and rt.counters["reader_lag_shards"] == 5  # 6 - 1 > 2
    assert asked == ["prover_actor", "prover_actor"]  # each stream's first reader: its prover actor
    committed["generator-actor-00-to-01"] = 4
    assert watch.too_far_behind()  # checked again only after a few seconds
    watch._checked = 0.0
    assert not watch.too_far_behind() and rt.counters["reader_lag_shards"] == 2  # 2 behind: not more than 2
    committed.update({"generator-actor-00-to-00": 6, "generator-actor-00-to-01": 6})
    watch._checked = 0.0
    assert not watch.too_far_behind() and rt.counters["reader_lag_shards"] == 0  # caught up
    del committed["generator-actor-00-to-01"]  # its reader has committed nothing yet: all 6 shards unread
    watch._checked = 0.0
    assert watch.too_far_behind() and rt.counters["reader_lag_shards"] == 6
    assert watch.consumed("no-such-stream") == 0


def test_each_record_of_a_batch_names_the_stream_it_is_sent_on(actor) -> None:
    rt, generator = actor("generator_actor.rollouts_per_batch=8")
    records: list[GenerationRecord] = []
    while len(records) < 3:
        records = generator_actor.make_records(rt, generator, random.Random(0), {"generator": 1.0}, 0, list("abc"), 1)
    assert [r.id.split("/")[0] for r in records] == [list("bca")[i % 3] for i in range(len(records))]  # turns 1, 2...


def test_a_batch_adds_its_generation_time_in_seconds_to_the_millisecond(actor, monkeypatch) -> None:
    rt, generator = actor("generator_actor.rollouts_per_batch=1")
    clock = iter([100.0, 100.12345, 200.0, 200.12345])  # each batch takes 0.12345 s by this clock
    monkeypatch.setattr(generator_actor, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    for turn in range(2):
        generator_actor.make_records(rt, generator, random.Random(0), {"generator": 1.0}, 0, ["a"], turn)
    assert rt.counters["generation_seconds"] == pytest.approx(0.246, abs=1e-9)  # 0.123 + 0.123


def test_the_lag_watch_checks_again_five_seconds_after_its_last_check(actor, monkeypatch) -> None:
    rt, _ = actor()
    now = [100.0]
    committed = {"generator-actor-00-to-00": 0}
    monkeypatch.setattr(generator_actor, "time", SimpleNamespace(time=lambda: now[0]))
    monkeypatch.setattr(generator_actor, "consumer_cursor", lambda root, consumer: Cursor(committed))
    watch = generator_actor.LagWatch(rt, [SimpleNamespace(stream="generator-actor-00-to-00", next_seq=20)])  # type: ignore[list-item]  # a stand-in writer
    assert watch.too_far_behind()  # 20 unread shards
    committed["generator-actor-00-to-00"] = 20
    now[0] = 104.9
    assert watch.too_far_behind()  # the last answer, within the 5 s
    now[0] = 105.0
    assert not watch.too_far_behind()  # read again at 5 s


def test_the_generator_policy_has_the_jobs_seed_device_and_precision(actor, monkeypatch) -> None:
    rt, _ = actor("generator_actor.precision=bf16")
    vocab = build_vocabulary(rt.workspace.db)
    loaded = LoadedModel(new_model(vocab, "tiny", max_source_len=64, max_target_len=16), vocab,
                         {"kind": "generator", "formats": ["generator"]}, "test")  # fmt: skip
    options: list[dict[str, Any]] = []
    real = generator_actor.policy_from_model
    monkeypatch.setattr(generator_actor, "policy_from_model", lambda m, **kw: options.append(kw) or real(m, **kw))
    policy = generator_actor.generator_policy(loaded, rt.config.generator_actor, seed=1234, device="cpu")
    assert policy.generator.initial_seed() == 1234 and policy.device == torch.device("cpu")
    [asked] = options
    assert (asked["seed"], asked["device"], asked["precision"]) == (1234, "cpu", "bf16")  # bf16 applies on CUDA
