"""What both trainer roles share, as functions: resume, read streams into a replay buffer, batch, commit.

A trainer owns one checkpoint store (``prover`` or ``generator``). On an empty store it publishes
version 0 (:mod:`jobs._version_zero`). Then :func:`resume` loads the newest version that loads (a damaged
newest one is skipped with a warning): weights, optimizer state and step (the version's extras file, or
the legacy ``.pt``), the input cursor it committed (:func:`committed_cursor`), and the replay window it
refills its buffer from (:func:`refill`). The role's loop is :func:`core.models.training.train_loop` fed by
:func:`stream_batches`: poll the input streams, turn records into training items (the role's
:class:`Rules`), train on batches mixing database examples (``supervised_weight``) with items drawn from
the buffer, and :func:`commit` a version every N steps or minutes. A version's metadata commits the
cursor: records read after it are read again by a restarted trainer, and none is lost or counted twice.

A role may train a goal critic beside its model (the prover trainer, ``prover_trainer.critic``:
:func:`enable_critic` before :func:`start`): its :class:`Rules` ``critic`` turns each record into critic
targets, kept in a second replay buffer fed, windowed and refilled like the first; the role takes a critic
step after each optimiser step; the critic is resumed from a version that holds one (its optimiser state in
the extras) and published inside every version once it has taken a step.

The model, its optimizer state and the forward passes live on the section's ``device`` (``auto``: CUDA
when available), under its ``precision``; checkpoints are written from CPU copies and load on any device.

With ``count > 1`` the trainers form a data-parallel group (:mod:`jobs._group`): every rank reads every
input stream and keeps the records it owns (:meth:`Group.owns`, a hash of the record's stream and
position, so a restarted rank takes exactly the same records); gradients are averaged, every rank holds
rank 0's weights, and rank 0 alone publishes, with every rank's cursor (``sharing: by-record`` in the
metadata; a group's committed position in a stream is the lowest of its ranks' cursors).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from configs.experiment import ModelSpec, TrainerConfig
from core.adversarial.records import ResultRecord, StreamRecord, decode_records
from core.adversarial.replay import ReplayBuffer
from core.errors import RecordError, StorageError
from core.metrics import device_scalars
from core.models.checkpoint import LoadedModel, load_trainer_version, publish_version
from core.models.critic import CriticTrainer, GoalCritic
from core.models.formats import Codec
from core.models.training import Example, Seq2SeqTrainer, WeightedBatch
from core.models.transformer import Seq2Seq
from core.models.vocab import Vocabulary
from core.storage import (
    CheckpointInfo,
    CheckpointStore,
    Cursor,
    StreamReader,
    read_shard,
)
from jobs._group import SHARING, Group
from jobs._role import Runtime
from jobs._version_zero import (
    database_examples,
    new_section_trainer,
    publish_version_zero,
    version_meta,
)

logger = logging.getLogger(__name__)

RETENTION_GRACE_S = 120.0
LOG_EVERY_S = 15.0


@dataclass
class TrainerJob:
    """The state of one trainer job: its model and optimiser, replay buffer, counters and published version."""

    rt: Runtime
    kind: str  # "prover" or "generator"
    section: TrainerConfig
    spec: ModelSpec
    formats: tuple[str, ...]
    group: Group
    store: CheckpointStore
    rng: random.Random
    buffer: ReplayBuffer
    input_record: type[StreamRecord] = ResultRecord  # the record type of the input streams
    model: Seq2Seq | None = None
    vocab: Vocabulary | None = None
    codec: Codec | None = None
    trainer: Seq2SeqTrainer | None = None
    version: int = -1
    published_step: int = 0
    last_publish: float = field(default_factory=time.time)
    records_in: int = 0
    skipped: int = 0
    loss: float = float("nan")
    extra_state: dict[str, Any] = field(default_factory=dict)  # the role's state, published with each version
    new_rewards: list[float] = field(default_factory=list)  # rewards of the records read since the last metrics point
    metrics_mark: tuple[float, int, int] | None = None  # (time, step, records in) at the last metrics point
    database: list[Example] | None = None  # the train split's examples, built once
    seen: set[str] = field(default_factory=set)  # keys of what the buffer was given once (a role's dedup), per buffer
    critic: CriticTrainer | None = None  # the goal critic, when the role trains one (:func:`enable_critic`)
    critic_buffer: ReplayBuffer | None = None  # its targets, one item per record


class Rules(NamedTuple):
    """What makes a trainer role: how a record becomes training items, how they are weighted in a batch,
    and what the role notes of each new record's reward."""

    derive: Callable[[TrainerJob, Any], tuple[list[Example], float] | None]  # given a typed input record
    weigh: Callable[[TrainerJob, list[dict[str, Any]]], tuple[list[Example], list[float]]]
    observe: Callable[[TrainerJob, float], None] = lambda job, value: None
    critic: Callable[[TrainerJob, Any], list[tuple[tuple[str, ...], float]]] | None = None  # (goal, target) pairs


def one_example_each(job: TrainerJob, sampled: list[dict[str, Any]]) -> tuple[list[Example], list[float]]:
    """The default weighing: one random example of each sampled item, weight 1."""
    return [job.rng.choice(item["examples"]) for item in sampled], [1.0] * len(sampled)


def new_job(
    rt: Runtime,
    kind: str,
    section: TrainerConfig,
    spec: ModelSpec,
    formats: Sequence[str],
    input_record: type[StreamRecord] = ResultRecord,
) -> TrainerJob:
    """A trainer job with no model yet (see :func:`start`), reading records of type ``input_record``."""
    return TrainerJob(rt=rt, kind=kind, section=section, spec=spec, formats=tuple(formats), input_record=input_record,
                      group=Group.from_environment(rt.rank, section.count, rt.device),
                      store=CheckpointStore(rt.root, kind), rng=random.Random(rt.seed),
                      buffer=ReplayBuffer(section.replay_max, section.replay_sampling, seed=rt.seed))  # fmt: skip


def enable_critic(job: TrainerJob, lr: float) -> None:
    """Train a goal critic beside the model (a fresh one, replaced by the resumed version's if it has one)."""
    job.critic = CriticTrainer(GoalCritic(seed=job.rt.seed), lr=lr)
    job.critic_buffer = ReplayBuffer(job.section.replay_max, "uniform", seed=job.rt.seed)


def resume_critic(job: TrainerJob, loaded: LoadedModel, trainer_state: dict[str, Any] | None) -> None:
    """Continue the resumed version's critic (and its optimiser state) when the job trains one."""
    if job.critic is None or loaded.critic is None:
        return
    job.critic = CriticTrainer(loaded.critic, lr=job.critic.lr)
    state = (trainer_state or {}).get("critic")
    if state is not None:
        job.critic.load_state_dict(state)


# --- start: bootstrap or resume, cursor, refill ---------------------------------------------------------------


def start(job: TrainerJob, rules: Rules) -> Cursor:
    """Publish version 0 (empty store, rank 0) or wait for it, resume, refill; returns the cursor to read from."""
    if job.store.latest() is None:
        if job.group.is_leader:
            publish_version_zero(job.rt, job.kind, job.section, job.spec, job.formats)
        elif job.rt.wait_for_checkpoint(job.store, "trainer rank 0") is None:
            raise StorageError(f"{job.rt.name}: stopped while waiting for version 0")
    latest = resume(job)
    cursor = committed_cursor(latest.meta, job.rt.rank, job.group.size)
    refill(job, rules, latest.meta.get("windows", {}).get(str(job.rt.rank), {}), cursor)
    return cursor


def resume(job: TrainerJob) -> CheckpointInfo:
    """Resume from the newest version that loads (a damaged newest one is skipped, with a warning)."""
    loaded, trainer_state, info = load_trainer_version(job.store)
    set_model(job, loaded.model, loaded.vocab)
    trainer = training(job)
    if trainer_state is not None:  # read on the CPU; the optimizer moves its state to the model's device
        trainer.load_state_dict(trainer_state)
    resume_critic(job, loaded, trainer_state)
    job.version = info.version
    job.published_step = trainer.steps
    job.extra_state = dict(info.meta.get("state", {}))
    reseed(job, trainer.steps)
    job.group.broadcast_model(loaded.model)
    logger.info("%s: resumed from %s version %d (step %d)", job.rt.name, job.kind, info.version, trainer.steps)
    return info


def reseed(job: TrainerJob, restart: int) -> None:
    """Seed the batch sampling and the (still empty) replay buffer from the resumed step, not the clock."""
    job.rt.restart = restart
    job.rng = random.Random(job.rt.seed)
    job.buffer = ReplayBuffer(job.section.replay_max, job.section.replay_sampling, seed=job.rt.seed)
    if job.critic_buffer is not None:
        job.critic_buffer = ReplayBuffer(job.section.replay_max, "uniform", seed=job.rt.seed)
    job.seen = set()


def set_model(job: TrainerJob, model: Seq2Seq, vocab: Vocabulary) -> None:
    """Train ``model`` from now on (a fresh optimiser; gradients averaged over the group, if any)."""
    job.model, job.vocab = model, vocab
    job.codec = Codec.for_model(vocab, model.config)
    job.trainer = new_section_trainer(job.rt, job.section, model, job.group.grad_sync if job.group.size > 1 else None)
    job.database = None


def training(job: TrainerJob) -> Seq2SeqTrainer:
    """The job's optimiser (StorageError if no model was set: :func:`start` first)."""
    if job.trainer is None:
        raise StorageError(f"{job.rt.name}: no model yet (resume first)")
    return job.trainer


def committed_cursor(meta: dict[str, Any], rank: int, group_size: int) -> Cursor:
    """This rank's committed cursor. A version written when a group divided its streams among ranks
    (no ``sharing: by-record``) gave each stream to one rank: a stream this rank never read starts where
    the rank that read it stopped, so no record is consumed twice."""
    cursors = meta.get("cursors", {})
    positions = dict(cursors.get(str(rank), {}))
    if meta.get("sharing") != SHARING and group_size > 1:
        for other in cursors.values():
            for stream, seq in (other or {}).items():
                positions.setdefault(stream, max(int(seq), 0))
    return Cursor(positions)


def refill(job: TrainerJob, rules: Rules, window: dict[str, list[int]], cursor: Cursor) -> None:
    """Reload the replay buffer from the committed window up to the committed cursor."""
    refilled = 0
    for stream, (first_seq, first_index) in sorted(window.items()):
        for seq in range(first_seq, cursor.get(stream, first_seq)):
            try:
                header, raw = read_shard(job.rt.root, stream, seq)
            except StorageError as error:
                logger.warning("%s: cannot refill from %s shard %d: %s", job.rt.name, stream, seq, error)
                continue
            for index, record in enumerate(decode_records(job.input_record, header, raw, stream=stream)):
                if seq == first_seq and index < first_index:
                    continue
                refilled += absorb(job, rules, stream, (seq, index), record, new=False)
    if refilled:
        logger.info("%s: refilled the replay buffer with %d records", job.rt.name, refilled)


# --- the loop's side: records in, batches out, versions committed ----------------------------------------------


def absorb(
    job: TrainerJob,
    rules: Rules,
    stream: str,
    position: tuple[int, int],
    record: StreamRecord | RecordError,
    *,
    new: bool = True,
) -> int:
    """Add one input record to the replay buffer (1) unless another rank owns it or it yields nothing (0)."""
    if not job.group.owns(stream, *position):
        return 0
    if isinstance(record, RecordError):
        job.rt.add("rejected_records")
        logger.warning("%s: skipping a malformed record: %s", job.rt.name, record)
    elif rules.critic is not None and job.critic_buffer is not None:
        targets = rules.critic(job, record)
        if targets:
            job.critic_buffer.add(stream, position, {"critic": targets})
    derived = None if isinstance(record, RecordError) else rules.derive(job, record)
    if new:
        job.records_in += 1
    if derived is None or not derived[0]:
        job.skipped += new
        return 0
    examples, value = derived
    if new:
        rules.observe(job, value)
        job.new_rewards.append(value)
    job.buffer.add(stream, position, {"examples": examples, "reward": value}, weight=value)
    return 1


def train_split_examples(job: TrainerJob) -> list[Example]:
    """The train split's examples of the job's formats (built once per model)."""
    if job.database is None:
        if job.codec is None:
            raise StorageError(f"{job.rt.name}: no model yet (resume first)")
        job.database = database_examples(job.rt, job.codec, job.formats)
    return job.database


def mixed_batch(job: TrainerJob, rules: Rules) -> tuple[list[Example], list[float]]:
    """A batch mixing database examples and replayed items (see the module docstring)."""
    section = job.section
    ready = len(job.buffer) >= max(section.replay_min, 1)
    n_generated = section.batch_size - round(section.batch_size * section.supervised_weight) if ready else 0
    database = train_split_examples(job)
    n_database = section.batch_size - n_generated if database and section.supervised_weight > 0 else 0
    examples: list[Example] = job.rng.choices(database, k=n_database) if n_database else []
    weights = [1.0] * len(examples)
    if n_generated:
        more, more_weights = rules.weigh(job, job.buffer.sample(n_generated))
        examples += more
        weights += more_weights
    return examples, weights


def stream_batches(
    job: TrainerJob, rules: Rules, reader: StreamReader | None, max_steps: int | None
) -> Iterator[WeightedBatch]:
    """The batches of :func:`core.models.training.train_loop` in a trainer role, until the job must stop or
    has taken ``max_steps`` steps. Before each: read new records; after each (or while waiting for data):
    commit a version when due, log progress, update the heartbeat."""
    rt, trainer = job.rt, training(job)
    start_step, last_log = trainer.steps, 0.0
    job.last_publish = time.time()
    while True:
        if reader is not None:
            for batch in reader.poll(max_shards=8):
                records = decode_records(job.input_record, batch.header, batch.records, stream=batch.stream)
                for index, record in enumerate(records):
                    absorb(job, rules, batch.stream, (batch.seq, index), record)
        limit_reached = max_steps is not None and trainer.steps - start_step >= max_steps
        if job.group.any_true(not rt.running() or limit_reached):
            return
        examples, weights = mixed_batch(job, rules)
        if job.group.all_true(bool(examples)):
            yield examples, weights
        else:
            rt.update(state="waiting for data")
            rt.sleep(0.5)
        due = (
            trainer.steps - job.published_step >= job.section.checkpoint_every_steps
            or time.time() - job.last_publish >= 60 * job.section.checkpoint_every_minutes
        )
        if job.group.any_true(due and trainer.steps > job.published_step):
            commit(job, reader)
        if time.time() - last_log > LOG_EVERY_S:
            log_progress(job, start_step)
            last_log = time.time()
        heartbeat(job, reader)


def commit(job: TrainerJob, reader: StreamReader | None) -> None:
    """Publish a version (rank 0) committing every rank's cursor and replay window; prune old versions."""
    trainer = training(job)
    cursor = reader.cursor.to_json() if reader is not None else {}
    cursors = job.group.gather_json(cursor)
    windows = job.group.gather_json(replay_window(job))
    job.published_step, job.last_publish = trainer.steps, time.time()
    if not job.group.is_leader:
        job.version += 1
        return
    meta = version_meta(job.rt, state=job.extra_state, records_in=job.records_in, skipped=job.skipped,
                        buffer=len(job.buffer), step=trainer.steps, sharing=SHARING,
                        cursors={str(r): c for r, c in enumerate(cursors)},
                        windows={str(r): w for r, w in enumerate(windows)})  # fmt: skip
    vocab = job.vocab
    if vocab is None:  # set with the model by resume: unreachable after it
        raise StorageError(f"{job.rt.name}: no vocabulary to publish (resume first)")
    state = trainer.state_dict()
    critic = job.critic if job.critic is not None and job.critic.steps > 0 else None
    if critic is not None:
        state["critic"] = critic.state_dict()
    info = publish_version(job.store, trainer.model, vocab, job.kind, meta, formats=job.formats, trainer_state=state,
                           critic=critic.critic if critic is not None else None)  # fmt: skip
    job.version = info.version
    job.rt.metrics.scalars({"checkpoint/version": info.version}, trainer.steps)
    job.store.retain(job.section.keep_checkpoints, RETENTION_GRACE_S)
    logger.info("%s: published %s version %d at step %d (loss %.4f, buffer %d, records in %d)", job.rt.name,
                job.kind, info.version, trainer.steps, job.loss, len(job.buffer), job.records_in)  # fmt: skip


def replay_window(job: TrainerJob) -> dict[str, list[int]]:
    """Per stream, the oldest position either replay buffer (the model's, the critic's) still holds."""
    window = job.buffer.window()
    for stream, position in (job.critic_buffer.window() if job.critic_buffer is not None else {}).items():
        if stream not in window or position < window[stream]:
            window[stream] = position
    return window


def finish(job: TrainerJob, reader: StreamReader | None) -> str:
    """Commit the steps not yet published, a last heartbeat, and the job's end."""
    if training(job).steps > job.published_step:
        commit(job, reader)
    heartbeat(job, reader)
    return job.rt.finish()


# --- what the job reports -----------------------------------------------------------------------------------------


def record_step(job: TrainerJob, result: dict[str, float]) -> None:
    """After each step: the loss, and every ``metrics.every_steps`` steps, at this step: loss, learning rate,
    gradient norm, speed, the replay buffer, the rewards of the records read since the last point, the role's
    numeric state, GPU memory."""
    job.loss = result["loss"]
    now, step = time.time(), training(job).steps
    if job.metrics_mark is None:
        job.metrics_mark = (job.rt.started, step - 1, 0)
    if step % job.rt.config.metrics.every_steps:
        return
    then, step_then, records_then = job.metrics_mark
    elapsed = max(now - then, 1e-9)
    rewards, job.new_rewards = job.new_rewards, []
    job.metrics_mark = (now, step, job.records_in)
    job.rt.metrics.scalars(
        {
            "train/loss": result["loss"],
            "train/lr": result["lr"],
            "train/grad_norm": result["grad_norm"],
            "train/tokens_per_batch": result["tokens"],
            "train/steps_per_s": (step - step_then) / elapsed,
            "replay/size": len(job.buffer),
            "replay/records_per_s": (job.records_in - records_then) / elapsed,
            "replay/mean_reward_of_new_records": sum(rewards) / len(rewards) if rewards else None,
            **{f"state/{k}": v for k, v in job.extra_state.items() if isinstance(v, (int, float))},
            **device_scalars(),
        },
        step,
    )


def heartbeat(job: TrainerJob, reader: StreamReader | None) -> None:
    job.rt.update(state="training", step=training(job).steps, version=job.version, records_in=job.records_in,
                  skipped_records=job.skipped, buffer=len(job.buffer),
                  loss=round(job.loss, 4) if job.loss == job.loss else None,
                  quarantined=reader.quarantined if reader is not None else 0)  # fmt: skip


def log_progress(job: TrainerJob, start_step: int) -> None:
    steps = training(job).steps
    elapsed = max(time.time() - job.rt.started, 1e-9)
    logger.info("%s: step %d (%.2f steps/s), loss %.4f, buffer %d, records in %d, version %d", job.rt.name, steps,
                (steps - start_step) / elapsed, job.loss, len(job.buffer), job.records_in, job.version)  # fmt: skip
