"""The loop both trainer roles share: bootstrap or resume, read streams into a replay buffer, train, publish.

A trainer owns one checkpoint store (``prover`` or ``generator``). On an empty store it publishes
version 0 (its ``init_checkpoint``, or a model trained for ``bootstrap_steps`` on the database). On a
non-empty one it resumes from the newest version that loads (a damaged newest one is skipped with a
warning): weights, optimizer state and step (the version's extras file, or the legacy ``.pt``), the input
cursor it committed, and the replay window it refills its buffer from. Then, until its bounds: poll its input
streams, turn records into training items (the role's :meth:`TrainerLoop.items`), train on batches
mixing database examples (``supervised_weight``) with items drawn from the buffer, and publish a
version every N steps or minutes. A version's metadata commits the cursor: records read after it are
read again by a restarted trainer, and none is lost or counted twice.

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
from typing import Any, Sequence

from configs.experiment import ModelSpec, TrainerConfig
from core.adversarial.records import ResultRecord, StreamRecord, decode_records
from core.adversarial.replay import ReplayBuffer
from core.errors import ConfigError, RecordError, StorageError
from core.metrics import device_scalars
from core.models.checkpoint import load_trainer_version, new_database_model, publish_version, read_model
from core.models.examples import build_examples
from core.models.formats import Codec
from core.models.training import Example, Seq2SeqTrainer
from core.models.transformer import Seq2Seq
from core.models.vocab import Vocabulary
from core.storage import CheckpointInfo, CheckpointStore, Cursor, StreamReader, read_shard
from jobs._group import SHARING, Group
from jobs._role import Runtime

logger = logging.getLogger(__name__)

RETENTION_GRACE_S = 120.0
LOG_EVERY_S = 15.0


class TrainerLoop:
    """One trainer job. Subclasses say how records become training items and how batches are weighted."""

    kind: str  # "prover" or "generator"
    input_record: type[StreamRecord] = ResultRecord  # the record type of the input streams

    def __init__(self, rt: Runtime, section: TrainerConfig, spec: ModelSpec, formats: Sequence[str],
                 streams: Sequence[str]) -> None:
        self.rt = rt
        self.section = section
        self.spec = spec
        self.formats = tuple(formats)
        self.device = rt.device
        self.group = Group.from_environment(rt.rank, section.count, self.device)
        self.streams = list(streams)
        self.store = CheckpointStore(rt.root, self.kind)
        self.rng = random.Random(rt.seed)
        self.buffer = ReplayBuffer(section.replay_max, section.replay_sampling, seed=rt.seed)
        self.model: Seq2Seq
        self.vocab: Vocabulary
        self.codec: Codec
        self.trainer: Seq2SeqTrainer
        self.version = -1
        self.records_in = 0
        self.skipped = 0
        self.loss = float("nan")
        self.extra_state: dict[str, Any] = {}
        self._new_rewards: list[float] = []  # rewards of the records read since the last metrics point
        self._metrics_mark: tuple[float, int, int] | None = None  # (time, step, records in) at the last point

    # --- hooks ------------------------------------------------------------------------------------

    def items(self, record: Any) -> tuple[list[Example], float] | None:
        """Training examples derived from one input record, and its reward; None to skip it."""
        raise NotImplementedError

    def weighted(self, sampled: list[dict[str, Any]]) -> tuple[list[Example], list[float]]:
        """The examples and weights a batch's buffer items contribute (default: one example each, weight 1)."""
        return [self.rng.choice(item["examples"]) for item in sampled], [1.0] * len(sampled)

    def observe_reward(self, value: float) -> None:
        """Called for each new record's reward (the generator keeps its REINFORCE baseline here)."""

    # --- start ------------------------------------------------------------------------------------

    def start(self) -> Cursor:
        """Bootstrap (empty store) or resume; returns the input cursor to read from."""
        if self.store.latest() is None:
            if self.group.is_leader:
                self.bootstrap()
            elif self.rt.wait_for_checkpoint(self.store, "trainer rank 0") is None:
                raise StorageError(f"{self.rt.name}: stopped while waiting for version 0")
        latest = self.resume()
        cursor = self.committed_cursor(latest.meta)
        self.refill(latest.meta.get("windows", {}).get(str(self.rt.rank), {}), cursor)
        return cursor

    def committed_cursor(self, meta: dict[str, Any]) -> Cursor:
        """This rank's committed cursor. A version written when a group divided its streams among ranks
        (no ``sharing: by-record``) gave each stream to one rank: a stream this rank never read starts where
        the rank that read it stopped, so no record is consumed twice."""
        cursors = meta.get("cursors", {})
        positions = dict(cursors.get(str(self.rt.rank), {}))
        if meta.get("sharing") != SHARING and self.group.size > 1:
            for other in cursors.values():
                for stream, seq in (other or {}).items():
                    positions.setdefault(stream, max(int(seq), 0))
        return Cursor(positions)

    def bootstrap(self) -> CheckpointInfo:
        """Publish version 0: the init checkpoint, or a model trained on the database."""
        section, ws = self.section, self.rt.workspace
        if section.init_checkpoint:
            loaded = read_model(section.init_checkpoint, kind=self.kind, db=ws.db)
            model, vocab = loaded.model, loaded.vocab
            origin = f"init checkpoint {section.init_checkpoint}"
        else:
            model, vocab = new_database_model(ws.db, self.spec.size, max_source_tokens=self.spec.max_source_tokens,
                                              max_target_tokens=self.spec.max_target_tokens, seed=self.rt.seed)
            self._setup(model, vocab, synchronized=False)  # rank 0 bootstraps alone: no gradient exchange
            examples = self.database_examples()
            logger.info("%s: bootstrapping a %s %s: %d supervised steps on %d database examples", self.rt.name,
                        self.spec.size, self.kind, section.bootstrap_steps, len(examples))
            self.rt.update(state=f"bootstrapping ({section.bootstrap_steps} steps)")
            for step in range(section.bootstrap_steps):
                if not self.rt.running():
                    break
                batch = self.rng.choices(examples, k=section.batch_size) if examples else []
                if batch:
                    self.loss = self.trainer.step(batch)["loss"]
                self.rt.update(bootstrap_step=step + 1, loss=round(self.loss, 4))
                if (step + 1) % self.rt.config.metrics.every_steps == 0:
                    self.rt.metrics.scalars({"bootstrap/loss": self.loss}, step + 1)
            origin = f"{section.bootstrap_steps} supervised steps"
        try:
            info = publish_version(self.store, model, vocab, self.kind, self._meta(
                step=0, cursors={}, windows={}, origin=origin), formats=self.formats)
        except StorageError as error:  # another job published version 0 first: use theirs
            logger.warning("%s: version 0 was published by another job (%s); using it", self.rt.name, error)
            info = self.rt.wait_for_checkpoint(self.store, "another job")
            if info is None:
                raise
        logger.info("%s: published %s version %d (%s)", self.rt.name, self.kind, info.version, origin)
        return info

    def resume(self) -> CheckpointInfo:
        """Resume from the newest version that loads (a damaged newest one is skipped, with a warning)."""
        loaded, trainer_state, info = load_trainer_version(self.store)
        self._setup(loaded.model, loaded.vocab)
        if trainer_state is not None:  # read on the CPU; the optimizer moves its state to the model's device
            self.trainer.load_state_dict(trainer_state)
        self.version = info.version
        self.extra_state = dict(info.meta.get("state", {}))
        self._reseed(self.trainer.steps)
        self.group.broadcast_model(self.model)
        logger.info("%s: resumed from %s version %d (step %d)", self.rt.name, self.kind, info.version,
                    self.trainer.steps)
        return info

    def _reseed(self, restart: int) -> None:
        """Seed the batch sampling and the (still empty) replay buffer from the resumed step, not the clock."""
        self.rt.restart = restart
        self.rng = random.Random(self.rt.seed)
        self.buffer = ReplayBuffer(self.section.replay_max, self.section.replay_sampling, seed=self.rt.seed)

    def _setup(self, model: Seq2Seq, vocab: Vocabulary, synchronized: bool = True) -> None:
        self.model, self.vocab = model, vocab
        self.codec = Codec.for_model(vocab, model.config)
        sync = self.group.grad_sync if synchronized and self.group.size > 1 else None
        self.trainer = Seq2SeqTrainer(model.train(), lr=self.section.lr, warmup_steps=self.section.warmup_steps,
                                      grad_sync=sync, device=self.device, precision=self.section.precision)
        self._database_examples: list[Example] | None = None

    def database_examples(self) -> list[Example]:
        """The train split's examples of this trainer's formats (built once)."""
        if self._database_examples is None:
            ws = self.rt.workspace
            built = build_examples(ws.db, self.codec, formats=self.formats, split="train", ratios=ws.ratios,
                                   salt=ws.split_salt)
            self._database_examples = built.examples
            logger.info("%s: %d database examples (%s)", self.rt.name, len(built.examples),
                        ", ".join(f"{k} {v}" for k, v in built.by_format.items()))
        return self._database_examples

    def refill(self, window: dict[str, list[int]], cursor: Cursor) -> None:
        """Reload the replay buffer from the committed window up to the committed cursor."""
        refilled = 0
        for stream, (first_seq, first_index) in sorted(window.items()):
            for seq in range(first_seq, cursor.get(stream, first_seq)):
                try:
                    header, raw = read_shard(self.rt.root, stream, seq)
                except StorageError as error:
                    logger.warning("%s: cannot refill from %s shard %d: %s", self.rt.name, stream, seq, error)
                    continue
                for index, record in enumerate(decode_records(self.input_record, header, raw, stream=stream)):
                    if seq == first_seq and index < first_index:
                        continue
                    refilled += self.absorb(stream, (seq, index), record, new=False)
        if refilled:
            logger.info("%s: refilled the replay buffer with %d records", self.rt.name, refilled)

    # --- the loop ---------------------------------------------------------------------------------

    def absorb(self, stream: str, position: tuple[int, int], record: StreamRecord | RecordError, *,
               new: bool = True) -> int:
        """Add one input record to the replay buffer (1) unless another rank owns it or it yields nothing (0)."""
        if not self.group.owns(stream, *position):
            return 0
        if isinstance(record, RecordError):
            self.rt.add("rejected_records")
            logger.warning("%s: skipping a malformed record: %s", self.rt.name, record)
        derived = None if isinstance(record, RecordError) else self.items(record)
        if new:
            self.records_in += 1
        if derived is None or not derived[0]:
            self.skipped += new
            return 0
        examples, value = derived
        if new:
            self.observe_reward(value)
            self._new_rewards.append(value)
        self.buffer.add(stream, position, {"examples": examples, "reward": value}, weight=value)
        return 1

    def run(self, max_steps: int | None) -> str:
        rt = self.rt
        cursor = self.start()
        reader = StreamReader(rt.root, self.streams, cursor) if self.streams else None
        last_publish = time.time()
        last_log = 0.0
        published_step = self.trainer.steps
        start_step = self.trainer.steps
        while True:
            if reader is not None:
                for batch in reader.poll(max_shards=8):
                    records = decode_records(self.input_record, batch.header, batch.records, stream=batch.stream)
                    for index, record in enumerate(records):
                        self.absorb(batch.stream, (batch.seq, index), record)
            limit_reached = max_steps is not None and self.trainer.steps - start_step >= max_steps
            if self.group.any_true(not rt.running() or limit_reached):
                break
            examples, weights = self.batch()
            if self.group.all_true(bool(examples)):
                result = self.trainer.step(examples, weights)
                self.loss = result["loss"]
                self.write_metrics(result)
            else:
                rt.update(state="waiting for data")
                rt.sleep(0.5)
            due = (self.trainer.steps - published_step >= self.section.checkpoint_every_steps
                   or time.time() - last_publish >= 60 * self.section.checkpoint_every_minutes)
            if self.group.any_true(due and self.trainer.steps > published_step):
                self.publish(reader)
                published_step, last_publish = self.trainer.steps, time.time()
            if time.time() - last_log > LOG_EVERY_S:
                self.log_progress(start_step)
                last_log = time.time()
            self._counters(reader)
        if self.trainer.steps > published_step:
            self.publish(reader)
        self._counters(reader)
        return rt.finish()

    def batch(self) -> tuple[list[Example], list[float]]:
        """A batch mixing database examples and replayed items (see the module docstring)."""
        section = self.section
        ready = len(self.buffer) >= max(section.replay_min, 1)
        n_generated = section.batch_size - round(section.batch_size * section.supervised_weight) if ready else 0
        database = self.database_examples()
        n_database = section.batch_size - n_generated if database and section.supervised_weight > 0 else 0
        examples: list[Example] = self.rng.choices(database, k=n_database) if n_database else []
        weights = [1.0] * len(examples)
        if n_generated:
            more, more_weights = self.weighted(self.buffer.sample(n_generated))
            examples += more
            weights += more_weights
        return examples, weights

    def publish(self, reader: StreamReader | None) -> None:
        cursor = reader.cursor.to_json() if reader is not None else {}
        cursors = self.group.gather_json(cursor)
        windows = self.group.gather_json(self.buffer.window())
        if not self.group.is_leader:
            self.version += 1
            return
        info = publish_version(self.store, self.model, self.vocab, self.kind, self._meta(
            step=self.trainer.steps, sharing=SHARING, cursors={str(r): c for r, c in enumerate(cursors)},
            windows={str(r): w for r, w in enumerate(windows)}), formats=self.formats,
            trainer_state=self.trainer.state_dict())
        self.version = info.version
        self.rt.metrics.scalars({"checkpoint/version": info.version}, self.trainer.steps)
        self.store.retain(self.section.keep_checkpoints, RETENTION_GRACE_S)
        logger.info("%s: published %s version %d at step %d (loss %.4f, buffer %d, records in %d)",
                    self.rt.name, self.kind, info.version, self.trainer.steps, self.loss, len(self.buffer),
                    self.records_in)

    def write_metrics(self, result: dict[str, float]) -> None:
        """Every ``metrics.every_steps`` steps, at this step: loss, learning rate, gradient norm, speed, the replay
        buffer, the rewards of the records read since the last point, the role's numeric state, GPU memory."""
        now, step = time.time(), self.trainer.steps
        if self._metrics_mark is None:
            self._metrics_mark = (self.rt.started, step - 1, 0)
        if step % self.rt.config.metrics.every_steps:
            return
        then, step_then, records_then = self._metrics_mark
        elapsed = max(now - then, 1e-9)
        rewards, self._new_rewards = self._new_rewards, []
        self._metrics_mark = (now, step, self.records_in)
        self.rt.metrics.scalars({
            "train/loss": result["loss"], "train/lr": result["lr"], "train/grad_norm": result["grad_norm"],
            "train/tokens_per_batch": result["tokens"], "train/steps_per_s": (step - step_then) / elapsed,
            "replay/size": len(self.buffer), "replay/records_per_s": (self.records_in - records_then) / elapsed,
            "replay/mean_reward_of_new_records": sum(rewards) / len(rewards) if rewards else None,
            **{f"state/{k}": v for k, v in self.extra_state.items() if isinstance(v, (int, float))},
            **device_scalars()}, step)

    def _meta(self, **fields: Any) -> dict[str, Any]:
        return {"time": time.time(), "trainer": self.rt.name, "state": self.extra_state,
                "counters": {"records_in": self.records_in, "skipped": self.skipped, "buffer": len(self.buffer)},
                **fields}

    def _counters(self, reader: StreamReader | None) -> None:
        self.rt.update(state="training", step=self.trainer.steps, version=self.version, records_in=self.records_in,
                       skipped_records=self.skipped, buffer=len(self.buffer),
                       loss=round(self.loss, 4) if self.loss == self.loss else None,
                       quarantined=reader.quarantined if reader is not None else 0)

    def log_progress(self, start_step: int) -> None:
        elapsed = max(time.time() - self.rt.started, 1e-9)
        logger.info("%s: step %d (%.2f steps/s), loss %.4f, buffer %d, records in %d, version %d", self.rt.name,
                    self.trainer.steps, (self.trainer.steps - start_step) / elapsed, self.loss, len(self.buffer),
                    self.records_in, self.version)


def prover_formats(examples: str, prover: str) -> tuple[str, ...]:
    """The formats a prover is trained on: ``auto`` follows the search (backward or forward)."""
    if examples == "auto":
        return ("backward",) if prover == "backward" else ("forward",)
    if examples == "both":
        return ("backward", "forward")
    if examples in ("backward", "forward"):
        return (examples,)
    raise ConfigError(f"prover_trainer.examples {examples!r}: choose auto, backward, forward or both")


__all__ = ["TrainerLoop", "prover_formats"]


class _Bootstrapper(TrainerLoop):
    """A trainer used only to publish version 0 (the ``fixed-*`` setups, where no trainer of it runs)."""

    def __init__(self, rt: Runtime, kind: str, section: TrainerConfig, spec: ModelSpec, formats: Sequence[str]) -> None:
        self.kind = kind
        super().__init__(rt, section, spec, formats, [])


def ensure_version_zero(rt: Runtime, kind: str, section: TrainerConfig, spec: ModelSpec,
                        formats: Sequence[str]) -> None:
    """Publish version 0 of ``kind`` (its init checkpoint, or a bootstrapped model) unless one exists."""
    if CheckpointStore(rt.root, kind).latest() is not None:
        return
    logger.info("%s: no %s checkpoint and no %s trainer in this setup: publishing version 0 myself",
                rt.name, kind, kind)
    _Bootstrapper(rt, kind, section, spec, formats).bootstrap()
