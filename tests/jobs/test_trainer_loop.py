"""The trainers' shared loop (:mod:`jobs._trainer`), in-process and fast (a tiny model, the embedded database,
records of a one-field test type): what :func:`stream_batches` reads, trains, commits and reports, how
:func:`start` bootstraps and resumes (optimiser, step, state, seeds, cursor, replay window), what a version
commits (every rank's cursor and window, the critic), and the job's heartbeat, metrics and log lines (written
against the mutants scripts/mutation.sh found)."""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from core.adversarial.records import StreamRecord
from core.adversarial.replay import ReplayBuffer
from core.errors import RecordError, StorageError
from core.metrics import MetricsWriter
from core.models.checkpoint import load_version, publish_version
from core.models.training import train_loop
from core.storage import Cursor, ShardWriter, StreamReader
from core.storage.streams import shard_path
from jobs import _trainer
from jobs._group import SHARING, Group
from jobs._role import Runtime
from jobs._trainer import TrainerJob
from tests.roles import experiment

FAST = ["prover_trainer.bootstrap_steps=0", "generator_trainer.bootstrap_steps=0", "database.path=embedded"]
STREAM = "prover-actor-00"
EXAMPLE = ((3,), (4,))  # token ids the tiny model knows


@dataclasses.dataclass(frozen=True)
class Echo(StreamRecord):
    """A test stream's record: a reward alone."""

    RECORD_TYPE: ClassVar[str] = "echo"
    reward: float


def echo_derive(job: TrainerJob, record: Echo) -> tuple[list[Any], float] | None:
    """One fixed example of the record's reward; a negative reward derives nothing."""
    return ([EXAMPLE], record.reward) if record.reward >= 0 else None


RULES = _trainer.Rules(derive=echo_derive, weigh=_trainer.one_example_each)


class Recorder(MetricsWriter):
    """A metrics writer that keeps every point it is given, in order."""

    def __init__(self) -> None:
        super().__init__(None)
        self.points: list[tuple[int, dict[str, Any]]] = []

    def scalars(self, values: Any, step: int) -> int:
        self.points.append((step, dict(values)))
        return len(values)

    def tagged(self, tag: str) -> list[tuple[int, Any]]:
        return [(step, values[tag]) for step, values in self.points if tag in values]


@pytest.fixture
def make_job(tmp_path: Path) -> Iterator[Callable[..., TrainerJob]]:
    """``make_job(*overrides, name=...)``: a prover trainer job (no model yet) of a tiny experiment reading
    :class:`Echo` records, its metrics kept by a :class:`Recorder`; heartbeats stopped after."""
    started: list[Runtime] = []

    def make(*overrides: str, name: str = "exp") -> TrainerJob:
        root = experiment(tmp_path / name, "tiny", *FAST, *overrides)
        rt = Runtime.start("prover_trainer", str(root.url), 0, 0.25)  # bounded: a mutant must not hang
        rt.__dict__["metrics"] = Recorder()
        started.append(rt)
        section = rt.config.prover_trainer
        return _trainer.new_job(rt, "prover", section, rt.config.prover_model, ("backward",), input_record=Echo)

    yield make
    for rt in started:
        rt._closed.set()


class Clock:
    """A stand-in for the ``time`` module whose ``time()`` is set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def write(job: TrainerJob, rewards: list[float], per_shard: int, stream: str = STREAM) -> None:
    writer = ShardWriter(job.rt.root, stream, max_records=per_shard, max_age_s=60.0)
    for reward in rewards:
        writer.append({"reward": reward})
    writer.close()


def stop_after(job: TrainerJob, steps: int) -> Callable[[dict[str, float]], None]:
    """An ``after_step`` that records the step and asks the job to stop once it has taken ``steps`` steps."""

    def after(result: dict[str, float]) -> None:
        _trainer.record_step(job, result)
        if _trainer.training(job).steps >= steps:
            job.rt._stop_requested = True

    return after


def metas(job: TrainerJob) -> list[dict[str, Any]]:
    return [job.store.info(v).meta for v in job.store.versions()]


LOOP = ["prover_trainer.batch_size=4", "prover_trainer.replay_min=2", "prover_trainer.supervised_weight=0.5",
        "prover_trainer.checkpoint_every_steps=2", "prover_trainer.checkpoint_every_minutes=60",
        "metrics.every_steps=1"]  # fmt: skip


# --- the loop ------------------------------------------------------------------------------------------------------


def test_the_loop_reads_trains_to_its_bound_and_commits_cursor_window_and_counters(make_job, caplog) -> None:
    job = make_job(*LOOP)
    cursor = _trainer.start(job, RULES)
    assert cursor == Cursor({}) and job.store.versions() == [0]  # an empty store: version 0, nothing read
    write(job, [float(r) for r in range(1, 11)], per_shard=1)  # ten shards of one record
    write(job, [-1.0], per_shard=1, stream="other")  # a stream the reader does not follow
    reader = StreamReader(job.rt.root, [STREAM], cursor)
    seen: list[int] = []

    def after(result: dict[str, float]) -> None:
        seen.append(job.records_in)
        _trainer.record_step(job, result)

    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        stats = train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, 5), after_step=after)
    assert stats.steps == 5 and _trainer.training(job).steps == 5  # max_steps bounds the loop
    assert seen == [8, 10, 10, 10, 10]  # at most 8 shards a poll, then the rest
    assert job.store.versions() == [0, 1, 2]  # every 2 steps (the time bound is far)
    one, two = metas(job)[1:]
    assert (one["step"], two["step"]) == (2, 4)
    assert one["cursors"] == two["cursors"] == {"0": {STREAM: 10}}
    assert one["windows"] == {"0": {STREAM: [0, 0]}} and one["sharing"] == SHARING
    assert one["counters"] == {"records_in": 10, "skipped": 0, "buffer": 10}
    assert job.version == 2 and job.published_step == 4
    assert _trainer.finish(job, reader) == "finished"  # the fifth step is committed
    assert job.store.versions() == [0, 1, 2, 3] and metas(job)[-1]["step"] == 5
    published = [m.getMessage() for m in caplog.records if " published prover version " in m.getMessage()]
    assert len(published) == 2 and re.fullmatch(
        r"prover-trainer-00: published prover version 2 at step 4 \(loss \d+\.\d{4}, buffer 10, records in 10\)",
        published[1],
    )
    metrics = job.rt.metrics
    assert isinstance(metrics, Recorder)
    assert metrics.tagged("checkpoint/version") == [(2, 1), (4, 2), (5, 3)]


def test_the_loop_logs_its_progress_and_keeps_the_heartbeat_to_its_finish(make_job, caplog) -> None:
    job = make_job(*LOOP)
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    write(job, [1.0, 2.0, -1.0], per_shard=3)
    reader.quarantined = 2  # as if two damaged shards had been set aside
    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, 3), after_step=lambda r: None)
    progress = [m.getMessage() for m in caplog.records if ": step " in m.getMessage()]
    assert len(progress) == 1  # the first round, then every 15 s
    assert re.fullmatch(
        r"prover-trainer-00: step 1 \(\d+\.\d\d steps/s\), loss nan, buffer 2, records in 3, version 0", progress[0]
    )
    counters = job.rt.counters
    assert counters["state"] == "training" and counters["step"] == 3 and counters["version"] == 1
    assert (counters["records_in"], counters["skipped_records"], counters["buffer"]) == (3, 1, 2)
    assert counters["quarantined"] == 2
    assert counters["loss"] is None  # no record_step: the loss is not known (NaN is not published)
    reader.quarantined = 3
    assert _trainer.finish(job, reader) == "finished"
    assert job.rt.counters["quarantined"] == 3 and job.rt.counters["version"] == 2  # the last heartbeat
    job.loss = 0.123456789
    _trainer.heartbeat(job, None)
    assert job.rt.counters["loss"] == 0.1235 and job.rt.counters["quarantined"] == 0


def test_progress_is_logged_at_the_rate_the_job_trains(make_job, caplog, monkeypatch) -> None:
    job = make_job(*LOOP)
    _trainer.start(job, RULES)
    _trainer.training(job).steps = 30
    job.loss, job.records_in, job.version = 0.5, 7, 4
    monkeypatch.setattr(_trainer, "time", Clock(job.rt.started + 10.0))
    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        _trainer.log_progress(job, 10)  # 20 steps in the 10 s since the job started
        monkeypatch.setattr(_trainer, "time", Clock(job.rt.started + 0.5))
        _trainer.log_progress(job, 25)  # 5 steps in half a second
    assert [m.getMessage() for m in caplog.records[-2:]] == [
        "prover-trainer-00: step 30 (2.00 steps/s), loss 0.5000, buffer 0, records in 7, version 4",
        "prover-trainer-00: step 30 (10.00 steps/s), loss 0.5000, buffer 0, records in 7, version 4",
    ]


def test_without_data_the_loop_waits_and_commits_nothing(make_job, monkeypatch) -> None:
    job = make_job("prover_trainer.supervised_weight=0", "prover_trainer.checkpoint_every_minutes=0.000001")
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    waits: list[tuple[float, Any]] = []

    def sleep(seconds: float) -> None:
        waits.append((seconds, job.rt.counters.get("state")))
        job.rt._stop_requested = len(waits) >= 2

    monkeypatch.setattr(job.rt, "sleep", sleep)
    batches = list(_trainer.stream_batches(job, RULES, reader, None))
    assert batches == [] and waits == [(0.5, "waiting for data")] * 2
    assert job.store.versions() == [0]  # due by time, but no step to commit


def test_the_loop_commits_when_the_minutes_are_up_and_runs_until_stopped(make_job) -> None:
    job = make_job(
        *LOOP, "prover_trainer.checkpoint_every_steps=1000", "prover_trainer.checkpoint_every_minutes=0.000001"
    )
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    write(job, [1.0, 2.0], per_shard=2)
    train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, None), after_step=stop_after(job, 3))
    assert _trainer.training(job).steps == 3  # no step bound: until the job is told to stop
    assert [m["step"] for m in metas(job)] == [0, 1, 2, 3]  # a version after each step: the minutes are up


def test_far_bounds_commit_only_at_the_end(make_job) -> None:
    job = make_job(*LOOP, "prover_trainer.checkpoint_every_steps=1000")
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    write(job, [1.0, 2.0], per_shard=2)
    train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, 3), after_step=lambda r: None)
    assert job.store.versions() == [0]
    assert _trainer.finish(job, reader) == "finished"
    assert [m["step"] for m in metas(job)] == [0, 3]
    assert job.rt.counters["status"] == "finished" and job.rt.counters["version"] == 1


def test_finish_commits_nothing_new_and_says_how_the_job_ended(make_job) -> None:
    job = make_job()
    _trainer.start(job, RULES)
    job.rt._stop_signal = 15
    assert _trainer.finish(job, None) == "interrupted"
    assert job.store.versions() == [0] and job.rt.counters["step"] == 0 and job.rt.counters["quarantined"] == 0


def test_the_default_weighing_takes_one_example_of_each_item_at_weight_one(make_job) -> None:
    job = make_job()
    items = [{"examples": [EXAMPLE]}, {"examples": [((5,), (6,))]}, {"examples": [EXAMPLE]}]
    assert _trainer.one_example_each(job, items) == ([EXAMPLE, ((5,), (6,)), EXAMPLE], [1.0, 1.0, 1.0])
    assert _trainer.one_example_each(job, []) == ([], [])


# --- what a step reports ---------------------------------------------------------------------------------------


RESULT = {"loss": 0.75, "lr": 0.001, "grad_norm": 2.5, "tokens": 12.0}


def test_each_metrics_point_reports_the_step_the_rates_the_buffer_and_the_new_rewards(make_job, monkeypatch) -> None:
    job = make_job("metrics.every_steps=2")
    _trainer.start(job, RULES)
    clock = Clock(job.rt.started + 4.0)
    monkeypatch.setattr(_trainer, "time", clock)
    trainer = _trainer.training(job)
    job.extra_state = {"baseline": 0.25, "rewards_seen": 3, "name": "text"}
    for position, reward in enumerate([0.5, 1.0, 0.0]):
        _trainer.absorb(job, RULES, STREAM, (0, position), Echo(reward=reward))
    trainer.steps = 1
    _trainer.record_step(job, dict(RESULT, loss=0.5))
    metrics = job.rt.metrics
    assert isinstance(metrics, Recorder)
    assert metrics.points == [] and job.loss == 0.5  # not a point's step; the loss is kept
    trainer.steps, clock.now = 2, clock.now + 4.0  # two steps, three records in 8 s since the job started
    _trainer.record_step(job, RESULT)
    [(step, values)] = metrics.points
    assert step == 2 and job.loss == 0.75
    assert values == {
        "train/loss": 0.75,
        "train/lr": 0.001,
        "train/grad_norm": 2.5,
        "train/tokens_per_batch": 12.0,
        "train/steps_per_s": pytest.approx(0.25),
        "replay/size": 3,
        "replay/records_per_s": pytest.approx(3 / 8),
        "replay/mean_reward_of_new_records": pytest.approx(0.5),
        "state/baseline": 0.25,
        "state/rewards_seen": 3,
    }
    _trainer.absorb(job, RULES, STREAM, (0, 3), Echo(reward=2.0))
    trainer.steps, clock.now = 4, clock.now + 0.5  # two steps and a record in half a second since the last point
    _trainer.record_step(job, RESULT)
    step, values = metrics.points[-1]
    assert step == 4 and values["train/steps_per_s"] == pytest.approx(4.0)
    assert values["replay/records_per_s"] == pytest.approx(2.0) and values["replay/size"] == 4
    assert values["replay/mean_reward_of_new_records"] == 2.0  # only the records read since the last point
    trainer.steps, clock.now = 6, clock.now + 1.0
    _trainer.record_step(job, RESULT)
    assert metrics.points[-1][1]["replay/mean_reward_of_new_records"] is None  # none read: no mean


# --- start: version 0, resume, reseed, refill --------------------------------------------------------------------


def test_a_restart_resumes_step_optimiser_state_and_seeds_and_refills_its_window(make_job, caplog) -> None:
    job = make_job(*LOOP, "prover_trainer.replay_max=3")
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    write(job, [1.0, 2.0, 3.0, 4.0], per_shard=2)
    train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, 3), after_step=lambda r: None)
    job.extra_state = {"baseline": 0.5}
    _trainer.finish(job, reader)
    assert metas(job)[-1]["windows"] == {"0": {STREAM: [0, 1]}}  # the buffer holds the last 3 of 4 records
    state = _trainer.training(job).optimizer.state_dict()["state"]
    again = _trainer.new_job(job.rt, "prover", job.section, job.spec, job.formats, input_record=Echo)
    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        cursor = _trainer.start(again, RULES)
    assert cursor == Cursor({STREAM: 2}) and job.store.versions()[-1] == again.version == 2
    trainer = _trainer.training(again)
    assert trainer.steps == again.published_step == 3 and again.extra_state == {"baseline": 0.5}
    resumed = trainer.optimizer.state_dict()["state"]
    assert resumed.keys() == state.keys() and all(
        (resumed[k]["exp_avg"] == state[k]["exp_avg"]).all() for k in state
    )  # the optimiser goes on where it was
    assert again.rt.restart == 3 and again.rng.random() == random.Random(again.rt.seed).random()
    assert [(i.position, i.record["reward"]) for i in again.buffer] == [((0, 1), 2.0), ((1, 0), 3.0), ((1, 1), 4.0)]
    assert again.records_in == 0 and again.new_rewards == []  # refilled records were counted before
    messages = [m.getMessage() for m in caplog.records]
    assert "prover-trainer-00: resumed from prover version 2 (step 3)" in messages
    assert "prover-trainer-00: refilled the replay buffer with 3 records" in messages


def test_version_zero_is_published_once(make_job) -> None:
    job = make_job()
    _trainer.start(job, RULES)
    assert job.store.versions() == [0] and job.version == 0 and job.published_step == 0
    assert _trainer.start(_trainer.new_job(job.rt, "prover", job.section, job.spec, job.formats), RULES) == Cursor()
    assert job.store.versions() == [0]


def test_another_rank_waits_for_version_zero_and_stops_when_told(make_job, monkeypatch, caplog) -> None:
    job = make_job()
    job.group = Group(1, 2)
    monkeypatch.setattr(job.rt, "sleep", lambda seconds: setattr(job.rt, "_stop_requested", True))
    stopped = pytest.raises(StorageError, match=r"^prover-trainer-00: stopped while waiting for version 0$")
    with caplog.at_level(logging.INFO, logger="jobs._role"), stopped:
        _trainer.start(job, RULES)
    assert caplog.records[-1].getMessage() == (
        "prover-trainer-00: waiting for prover checkpoint version 0 from trainer rank 0"
    )
    assert job.store.latest() is None  # only rank 0 publishes it


def test_a_new_job_is_seeded_from_its_runtime(make_job) -> None:
    job = make_job("prover_trainer.replay_max=7", "prover_trainer.replay_sampling=reward")
    assert (job.kind, job.formats, job.input_record, job.store.name) == ("prover", ("backward",), Echo, "prover")
    assert (job.group.rank, job.group.size) == (0, 1)
    assert job.rng.random() == random.Random(job.rt.seed).random()
    assert (job.buffer.max_size, job.buffer.sampling) == (7, "reward")
    twin = ReplayBuffer(7, "reward", seed=job.rt.seed)
    for buffer in (job.buffer, twin):
        for index in range(5):
            buffer.add("s", (0, index), {"i": index}, weight=index + 1.0)
    assert job.buffer.sample(20) == twin.sample(20)
    _trainer.enable_critic(job, 0.01)
    assert job.critic is not None and job.critic.lr == pytest.approx(0.01) and job.critic.steps == 0
    assert job.critic_buffer is not None and (job.critic_buffer.max_size, job.critic_buffer.sampling) == (7, "uniform")
    twin = ReplayBuffer(7, seed=job.rt.seed)
    for buffer in (job.critic_buffer, twin):
        for index in range(5):
            buffer.add("s", (0, index), {"i": index})
    assert job.critic_buffer.sample(20) == twin.sample(20)


def test_reseeding_starts_new_buffers_from_the_resumed_step(make_job) -> None:
    job = make_job("prover_trainer.replay_max=5", "prover_trainer.replay_sampling=reward")
    _trainer.enable_critic(job, 0.01)
    job.buffer.add("s", (0, 0), {})
    job.critic_buffer.add("s", (0, 0), {})  # type: ignore[union-attr]  # enabled above
    job.seen.add("key")
    _trainer.reseed(job, 7)
    assert job.rt.restart == 7 and job.rng.random() == random.Random(job.rt.seed).random()
    assert (len(job.buffer), job.buffer.max_size, job.buffer.sampling) == (0, 5, "reward")
    critic_buffer = job.critic_buffer
    assert critic_buffer is not None and (len(critic_buffer), critic_buffer.max_size) == (0, 5)
    assert critic_buffer.sampling == "uniform" and job.seen == set()
    twins = (ReplayBuffer(5, "reward", seed=job.rt.seed), ReplayBuffer(5, seed=job.rt.seed))
    for buffer, twin in zip((job.buffer, critic_buffer), twins):
        for index in range(5):
            for one in (buffer, twin):
                one.add("s", (0, index), {"i": index}, weight=index + 1.0)
        assert buffer.sample(20) == twin.sample(20)  # seeded by the restart's seed


def test_a_model_needs_setting_and_only_a_group_syncs_gradients(make_job) -> None:
    job = make_job()
    with pytest.raises(StorageError, match=r"^prover-trainer-00: no model yet \(resume first\)$"):
        _trainer.training(job)
    _trainer.start(job, RULES)
    assert _trainer.training(job).grad_sync is None  # alone: nothing to average
    job.database = [EXAMPLE]
    pair = Group(0, 2)
    job.group = pair
    _trainer.set_model(job, job.model, job.vocab)  # type: ignore[arg-type]  # set by start
    assert _trainer.training(job).grad_sync == pair.grad_sync and job.database is None
    assert job.codec is not None and job.codec.vocab is job.vocab


# --- the committed cursor and window -------------------------------------------------------------------------------


def test_a_rank_resumes_its_own_cursor_when_the_group_shares_by_record() -> None:
    meta = {"sharing": SHARING, "cursors": {"0": {"a": 3}, "1": {"a": 5, "b": 2}}}
    assert _trainer.committed_cursor(meta, 0, 2) == Cursor({"a": 3})
    assert _trainer.committed_cursor(meta, 1, 2) == Cursor({"a": 5, "b": 2})
    assert _trainer.committed_cursor(meta, 2, 3) == Cursor()
    assert _trainer.committed_cursor({}, 0, 1) == Cursor()


def test_after_a_group_that_divided_its_streams_a_rank_starts_where_their_reader_stopped() -> None:
    meta = {"cursors": {"0": {"a": 3}, "1": {"b": 2}, "2": {"c": -1}, "3": None}}
    assert _trainer.committed_cursor(meta, 0, 4) == Cursor({"a": 3, "b": 2, "c": 0})  # no record read twice
    assert _trainer.committed_cursor(meta, 1, 4) == Cursor({"a": 3, "b": 2, "c": 0})
    assert _trainer.committed_cursor(meta, 0, 1) == Cursor({"a": 3})  # alone: its own streams only
    assert _trainer.committed_cursor({"cursors": {"0": {"a": "4"}}}, 1, 2) == Cursor({"a": 4})


def test_refill_reads_each_window_from_its_first_record_to_the_cursor_and_skips_a_missing_shard(
    make_job, caplog
) -> None:
    job = make_job()
    write(job, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], per_shard=2, stream="b")
    write(job, [7.0, 8.0], per_shard=1, stream="a")
    write(job, [9.0, 10.0], per_shard=1, stream="z")
    writer = ShardWriter(job.rt.root, "z", max_records=1, max_age_s=60.0)
    writer.append({"reward": "much"})  # shard 2: a malformed record
    writer.close()
    write(job, [11.0, 12.0], per_shard=1, stream="z")  # shards 3 and 4
    job.rt.root.backend.remove(shard_path("z", 3))
    window = {"b": [1, 1], "a": [0, 0], "z": [1, 0]}
    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        _trainer.refill(job, RULES, window, Cursor({"b": 3, "a": 1, "z": 5}))
    assert [(i.stream, i.position, i.record["reward"]) for i in job.buffer] == [
        ("a", (0, 0), 7.0),  # streams in order of their names; the cursor ends each
        ("b", (1, 1), 4.0),
        ("b", (2, 0), 5.0),
        ("b", (2, 1), 6.0),
        ("z", (1, 0), 10.0),
        ("z", (4, 0), 12.0),  # after the shard that is gone
    ]
    malformed, missing = (m.getMessage() for m in caplog.records if m.levelno == logging.WARNING)
    assert malformed.startswith("prover-trainer-00: skipping a malformed record: stream z: echo record")
    assert missing.startswith("prover-trainer-00: cannot refill from z shard 3: stream z: shard 3 does not exist")
    assert caplog.records[-1].getMessage() == "prover-trainer-00: refilled the replay buffer with 6 records"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        _trainer.refill(job, RULES, {"a": [0, 0]}, Cursor({}))  # the cursor at the window: nothing to refill
    assert len(job.buffer) == 6 and not caplog.records


class Pair(Group):
    """Rank ``rank`` of a group of two whose other rank's cursor and window are given (no collectives)."""

    def __init__(self, rank: int, other: Any) -> None:
        super().__init__(rank, 2)
        self.other = other

    def gather_json(self, value: Any) -> list[Any]:
        return [value, self.other] if self.rank == 0 else [self.other, value]


def test_rank_zero_commits_every_ranks_cursor_and_window_and_other_ranks_publish_nothing(make_job) -> None:
    job = make_job()
    _trainer.start(job, RULES)
    write(job, [1.0, 2.0], per_shard=1)
    reader = StreamReader(job.rt.root, [STREAM], Cursor())
    for batch in reader.poll():
        _trainer.absorb(job, RULES, batch.stream, (batch.seq, 0), Echo(reward=1.0))
    job.group = Pair(0, {"other": 9})
    _trainer.training(job).steps = 4
    _trainer.commit(job, reader)
    meta = job.store.latest().meta  # type: ignore[union-attr]  # published
    assert meta["cursors"] == {"0": {STREAM: 2}, "1": {"other": 9}}
    assert meta["windows"] == {"0": {STREAM: [0, 0]}, "1": {"other": 9}}
    assert (job.version, job.published_step, meta["step"]) == (1, 4, 4)
    job.group = Pair(1, {})
    _trainer.training(job).steps = 6
    _trainer.commit(job, None)
    assert job.store.versions() == [0, 1]  # rank 1 publishes nothing
    assert (job.version, job.published_step) == (2, 6)  # but counts the version rank 0 published
    job.group = Group(0, 1)
    _trainer.commit(job, None)
    assert job.store.latest().meta["cursors"] == {"0": {}}  # type: ignore[union-attr]  # no reader: no streams


def test_a_job_without_a_vocabulary_cannot_commit(make_job) -> None:
    job = make_job()
    _trainer.start(job, RULES)
    job.vocab = None
    with pytest.raises(StorageError, match=r"^prover-trainer-00: no vocabulary to publish \(resume first\)$"):
        _trainer.commit(job, None)


def test_a_fresh_version_is_kept_however_many_are_kept(make_job) -> None:
    job = make_job("prover_trainer.keep_checkpoints=1")
    _trainer.start(job, RULES)
    for _ in range(2):
        _trainer.commit(job, None)
    assert job.store.versions() == [0, 1, 2]  # the older ones are pruned only after the grace period


def test_the_replay_window_is_the_oldest_position_of_either_buffer(make_job) -> None:
    job = make_job()
    job.buffer.add("a", (1, 0), {})
    job.buffer.add("b", (2, 0), {})
    job.buffer.add("d", (5, 5), {})
    assert _trainer.replay_window(job) == {"a": [1, 0], "b": [2, 0], "d": [5, 5]}
    _trainer.enable_critic(job, 0.01)
    for stream, position in (("a", (0, 5)), ("c", (3, 1)), ("b", (4, 0)), ("d", (5, 4))):
        job.critic_buffer.add(stream, position, {})  # type: ignore[union-attr]  # enabled above
    assert _trainer.replay_window(job) == {"a": [0, 5], "b": [2, 0], "c": [3, 1], "d": [5, 4]}


# --- the critic's side of the loop ---------------------------------------------------------------------------------


def critic_rules(calls: list[Any]) -> _trainer.Rules:
    def critic(job: TrainerJob, record: Echo) -> list[tuple[tuple[str, ...], float]]:
        calls.append(record)
        return [(("|-", "ph"), 1.0)] if record.reward > 0 else []

    return _trainer.Rules(derive=echo_derive, weigh=_trainer.one_example_each, critic=critic)


def test_absorb_gives_the_critic_the_targets_of_every_record_it_owns(make_job) -> None:
    job = make_job()
    calls: list[Any] = []
    rules = critic_rules(calls)
    assert _trainer.absorb(job, rules, "s", (0, 0), Echo(reward=1.0)) == 1
    assert calls == []  # no critic enabled: its rules are not asked
    _trainer.enable_critic(job, 0.01)
    assert _trainer.absorb(job, rules, "s", (0, 1), Echo(reward=1.0)) == 1
    assert _trainer.absorb(job, rules, "s", (0, 2), Echo(reward=-1.0)) == 0  # no example, and no target
    assert _trainer.absorb(job, rules, "s", (0, 3), RecordError("broken")) == 0
    assert calls == [Echo(reward=1.0), Echo(reward=-1.0)]  # a malformed record is given to no rule
    critic_buffer = job.critic_buffer
    assert critic_buffer is not None
    assert [(i.stream, i.position, i.record) for i in critic_buffer] == [
        ("s", (0, 1), {"critic": [(("|-", "ph"), 1.0)]})
    ]
    assert job.rt.counters["rejected_records"] == 1


def test_a_critic_is_published_once_it_has_stepped_and_resumed_with_its_optimiser(make_job) -> None:
    job = make_job()
    _trainer.enable_critic(job, 0.01)
    _trainer.start(job, RULES)
    assert job.critic is not None and job.critic.steps == 0  # version 0 holds no critic: a fresh one
    _trainer.commit(job, None)
    assert load_version(job.store)[0].critic is None  # no step yet: none published
    job.critic.step([("|-", "ph")], [1.0])
    _trainer.commit(job, None)  # one step is enough
    loaded, _ = load_version(job.store)
    assert loaded.critic is not None
    assert loaded.critic.values([("|-", "ph")]) == pytest.approx(job.critic.critic.values([("|-", "ph")]))
    again = _trainer.new_job(job.rt, "prover", job.section, job.spec, job.formats, input_record=Echo)
    _trainer.enable_critic(again, 0.02)
    _trainer.start(again, RULES)
    assert again.critic is not None and again.critic.steps == 1
    assert again.critic.critic.values([("|-", "ph")]) == pytest.approx(job.critic.critic.values([("|-", "ph")]))
    plain = _trainer.new_job(job.rt, "prover", job.section, job.spec, job.formats, input_record=Echo)
    _trainer.start(plain, RULES)
    assert plain.critic is None  # a job without a critic does not take one up


def test_a_version_without_state_windows_or_optimiser_resumes_with_none(make_job) -> None:
    job = make_job()
    _trainer.start(job, RULES)
    _trainer.enable_critic(job, 0.01)
    job.critic.step([("|-", "ph")], [1.0])  # type: ignore[union-attr]  # enabled above
    meta = {"step": 0, "cursors": {"0": {STREAM: 1}}}  # an older writer's version: no state, no windows
    publish_version(job.store, job.model, job.vocab, "prover", meta, formats=job.formats,  # type: ignore[arg-type]
                    critic=job.critic.critic)  # type: ignore[union-attr]  # fmt: skip
    again = _trainer.new_job(job.rt, "prover", job.section, job.spec, job.formats, input_record=Echo)
    _trainer.enable_critic(again, 0.02)
    assert _trainer.start(again, RULES) == Cursor({STREAM: 1})
    assert again.extra_state == {} and len(again.buffer) == 0
    assert again.critic is not None and again.critic.lr == pytest.approx(0.02)  # the configured rate goes on


def test_a_version_is_due_when_its_minutes_are_up_and_progress_is_logged_every_15_s(
    make_job, monkeypatch, caplog
) -> None:
    job = make_job(*LOOP, "prover_trainer.checkpoint_every_steps=1000", "prover_trainer.checkpoint_every_minutes=1")
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    write(job, [1.0, 2.0], per_shard=2)
    clock = Clock(1000.0)
    monkeypatch.setattr(_trainer, "time", clock)
    advances = iter([60.0, 15.0, 45.0])

    def after(result: dict[str, float]) -> None:
        clock.now += next(advances)

    with caplog.at_level(logging.INFO, logger="jobs._trainer"):
        train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, 3), after_step=after)
    assert [m["step"] for m in metas(job)] == [0, 1, 3]  # a minute after the start, then after the last version
    progress = [m.getMessage() for m in caplog.records if ": step " in m.getMessage()]
    assert [message.split(" (")[0] for message in progress] == [
        "prover-trainer-00: step 1",
        "prover-trainer-00: step 3",
    ]


def test_a_malformed_record_in_the_stream_is_named_and_counted(make_job, caplog) -> None:
    job = make_job(*LOOP)
    reader = StreamReader(job.rt.root, [STREAM], _trainer.start(job, RULES))
    writer = ShardWriter(job.rt.root, STREAM, max_records=2, max_age_s=60.0)
    for record in ({"reward": 1.0}, {"reward": None}):
        writer.append(record)
    writer.close()
    with caplog.at_level(logging.WARNING, logger="jobs._trainer"):
        train_loop(_trainer.training(job), _trainer.stream_batches(job, RULES, reader, 1), after_step=lambda r: None)
    assert (job.records_in, job.skipped, job.rt.counters["rejected_records"]) == (2, 1, 1)
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith(f"prover-trainer-00: skipping a malformed record: stream {STREAM}: echo record")
    )
