"""Version 0 of a model's checkpoint stream, and the database examples a trainer learns from.

A checkpoint store starts with version 0: the trainer section's ``init_checkpoint``, or a fresh model
trained for ``bootstrap_steps`` supervised steps on the database's train split (batches drawn with the
job's seed, one :func:`core.models.training.train_loop`). The trainer of a model publishes it when it finds
its store empty; in the setups where no trainer of a model runs (``fixed-*``), the actors that need the
model call :func:`ensure_version_zero`. When two jobs race, the first publication wins and the other uses it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from configs.experiment import ModelSpec, TrainerConfig
from core.errors import ConfigError, StorageError
from core.models.checkpoint import publish_version, read_model
from core.models.examples import build_examples
from core.models.formats import Codec, build_vocabulary
from core.models.training import Example, Seq2SeqTrainer, new_model, train_loop
from core.models.transformer import Seq2Seq
from core.models.vocab import Vocabulary
from core.storage import CheckpointInfo, CheckpointStore
from jobs._role import Runtime

logger = logging.getLogger(__name__)


def prover_formats(examples: str, prover: str) -> tuple[str, ...]:
    """The formats a prover is trained on: ``auto`` follows the search (backward or forward)."""
    if examples == "auto":
        return ("backward",) if prover == "backward" else ("forward",)
    if examples == "both":
        return ("backward", "forward")
    if examples in ("backward", "forward"):
        return (examples,)
    raise ConfigError(f"prover_trainer.examples {examples!r}: choose auto, backward, forward or both")


def ensure_version_zero(
    rt: Runtime, kind: str, section: TrainerConfig, spec: ModelSpec, formats: Sequence[str]
) -> None:
    """Publish version 0 of ``kind`` (its init checkpoint, or a bootstrapped model) unless one exists."""
    if CheckpointStore(rt.root, kind).latest() is not None:
        return
    logger.info(
        "%s: no %s checkpoint and no %s trainer in this setup: publishing version 0 myself", rt.name, kind, kind
    )
    publish_version_zero(rt, kind, section, spec, formats)


def new_section_trainer(rt: Runtime, section: TrainerConfig, model: Seq2Seq, grad_sync: Any = None) -> Seq2SeqTrainer:
    """The optimiser a trainer section configures (learning rate, warmup, precision) on the job's device."""
    return Seq2SeqTrainer(
        model.train(),
        lr=section.lr,
        warmup_steps=section.warmup_steps,
        grad_sync=grad_sync,
        device=rt.device,
        precision=section.precision,
    )


def database_examples(rt: Runtime, codec: Codec, formats: Sequence[str]) -> list[Example]:
    """The train split's examples of ``formats``, encoded within the model's limits."""
    ws = rt.workspace
    built = build_examples(ws.db, codec, formats=tuple(formats), split="train", ratios=ws.ratios, salt=ws.split_salt)
    logger.info(
        "%s: %d database examples (%s)",
        rt.name,
        len(built.examples),
        ", ".join(f"{k} {v}" for k, v in built.by_format.items()),
    )
    examples: list[Example] = list(built.examples)
    return examples


def version_meta(
    rt: Runtime, *, state: dict[str, Any], records_in: int, skipped: int, buffer: int, **fields: Any
) -> dict[str, Any]:
    """A version's metadata: when, by whom, the role's state and counters, and ``fields`` (step, cursors...)."""
    return {
        "time": time.time(),
        "trainer": rt.name,
        "state": state,
        "counters": {"records_in": records_in, "skipped": skipped, "buffer": buffer},
        **fields,
    }


def publish_version_zero(
    rt: Runtime, kind: str, section: TrainerConfig, spec: ModelSpec, formats: Sequence[str]
) -> CheckpointInfo:
    """Publish version 0: the init checkpoint, or a model trained on the database (rank 0 alone, no group)."""
    store = CheckpointStore(rt.root, kind)
    if section.init_checkpoint:
        loaded = read_model(section.init_checkpoint, kind=kind, db=rt.workspace.db)
        model, vocab = loaded.model, loaded.vocab
        origin = f"init checkpoint {section.init_checkpoint}"
    else:
        model, vocab = bootstrapped_model(rt, kind, section, spec, formats)
        origin = f"{section.bootstrap_steps} supervised steps"
    meta = version_meta(rt, state={}, records_in=0, skipped=0, buffer=0, step=0, cursors={}, windows={}, origin=origin)
    try:
        info = publish_version(store, model, vocab, kind, meta, formats=tuple(formats))
    except StorageError as error:  # another job published version 0 first: use theirs
        logger.warning("%s: version 0 was published by another job (%s); using it", rt.name, error)
        waited = rt.wait_for_checkpoint(store, "another job")
        if waited is None:
            raise
        info = waited
    logger.info("%s: published %s version %d (%s)", rt.name, kind, info.version, origin)
    return info


def bootstrapped_model(
    rt: Runtime, kind: str, section: TrainerConfig, spec: ModelSpec, formats: Sequence[str]
) -> tuple[Seq2Seq, Vocabulary]:
    """A fresh model trained for ``bootstrap_steps`` supervised steps on random database examples."""
    vocab = build_vocabulary(rt.workspace.db)
    model = new_model(vocab, spec.size, seed=rt.seed, max_source_len=spec.max_source_tokens,
                      max_target_len=spec.max_target_tokens)  # fmt: skip
    trainer = new_section_trainer(rt, section, model)
    examples = database_examples(rt, Codec.for_model(vocab, model.config), formats)
    logger.info("%s: bootstrapping a %s %s: %d supervised steps on %d database examples", rt.name, spec.size, kind,
                section.bootstrap_steps, len(examples))  # fmt: skip
    rt.update(state=f"bootstrapping ({section.bootstrap_steps} steps)")
    if not examples:
        return model, vocab
    rng = random.Random(rt.seed)
    every = rt.config.metrics.every_steps

    def stop(done: int) -> str | None:
        return "steps" if done >= section.bootstrap_steps else None if rt.running() else "stopped"

    def heartbeat(result: dict[str, float]) -> None:
        rt.update(bootstrap_step=trainer.steps, loss=round(result["loss"], 4))
        if trainer.steps % every == 0:
            rt.metrics.scalars({"bootstrap/loss": result["loss"]}, trainer.steps)

    batches = iter(lambda: (rng.choices(examples, k=section.batch_size), None), None)
    train_loop(trainer, batches, stop=stop, after_step=heartbeat)
    return model, vocab
