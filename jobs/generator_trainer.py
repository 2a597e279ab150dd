"""The generator trainer: policy gradient (REINFORCE with a baseline) on the generator's rollouts.

    python -m jobs.generator_trainer --exp ROOT [--rank R] [--minutes M] [--max-steps N]

In the adversarial setups it reads the prover actors' result streams, whose records carry the rollout
that generated each theorem and its reward (hard or band); in the heuristic-reward setups
(``generator-only``, ``generator-reward``) it reads the generation streams and rewards each theorem by
its heuristic score. Each rollout step's log-probability is weighted by ``reward - baseline`` (the
baseline a moving average of rewards, ``baseline_decay``); the loss adds an entropy bonus
(``entropy_weight``). Batches mix these with supervised generator examples from the database's train
split (``supervised_weight``). See :mod:`jobs._trainer`.

With ``generator_actor.difficulty_conditioning`` (Minimo's hindsight relabelling) each rollout is trained
under the conditioning token of the difficulty the prover measured (:func:`core.adversarial.rewards.difficulty_label`:
``<EASY>``, ``<MEDIUM>`` or ``<HARD>``), whatever level it was asked for, by maximum likelihood (every step
weight 1): the generator learns p(steps | level), and the actors ask for the level where the prover fails.
The reward still moves the baseline (a metric), but not the weights: a REINFORCE advantage would push
down exactly the rollouts that define ``<EASY>``.
"""

from __future__ import annotations

import logging
from typing import Any

from core.adversarial.records import GenerationRecord, ResultRecord
from core.adversarial.rewards import difficulty_token, reward
from core.adversarial.topology import generator_trainer_reads_generations, wiring_of
from core.models.examples import rollout_examples
from core.models.training import Example, train_loop
from core.models.vocab import STOP
from core.storage import Cursor, StreamReader
from jobs import _trainer
from jobs._cli import run_cli
from jobs._role import Runtime
from jobs._trainer import TrainerJob

logger = logging.getLogger("jobs.generator_trainer")


def baseline(job: TrainerJob) -> float:
    """The REINFORCE baseline: a moving average of the rewards seen (published with each version)."""
    return float(job.extra_state.get("baseline", 0.0))


def observe(job: TrainerJob, value: float) -> None:
    """Move the baseline towards a new record's reward."""
    decay = job.rt.config.generator_trainer.baseline_decay
    seen = int(job.extra_state.get("rewards_seen", 0))
    job.extra_state["baseline"] = value if seen == 0 else decay * baseline(job) + (1 - decay) * value
    job.extra_state["rewards_seen"] = seen + 1
    job.rt.update(reward_baseline=round(baseline(job), 4))
    job.rt.add("reward_sum", value)


def derive(job: TrainerJob, record: GenerationRecord | ResultRecord) -> tuple[list[Example], float] | None:
    """The rollout steps of a generated theorem and its reward; None to skip the record."""
    config = job.rt.config
    if isinstance(record, GenerationRecord):  # the heuristic-reward setups read the generations themselves
        generation = record
        value = reward(
            "heuristic",
            successes=0,
            attempts=0,
            heuristic=record.heuristic,
            duplicate=record.duplicate,
            duplicate_penalty=config.rewards.duplicate_penalty,
        )
    else:
        if not record.for_generator_trainer:
            return None
        generation = record.generation
        value = record.reward
    rollout = generation.rollout
    if not generation.generated or rollout is None or not rollout.steps:
        return None
    conditioning = hindsight_conditioning(job, record)
    if conditioning is None:
        return None
    hypotheses = [tuple(h.split()) for h in rollout.hypotheses]
    steps = [step.to_step() for step in rollout.steps]
    labels = job.rt.workspace.db.labels
    unknown = sorted({s.tactic.label for s in steps if s.tactic.label != STOP and s.tactic.label not in labels})
    if unknown:  # a well-formed record that does not fit this database: never trained on silently
        job.rt.add("rejected_records")
        logger.warning(
            "%s: skipping record %s: its rollout cites %s, unknown to the database",
            job.rt.name,
            getattr(record, "id", "?"),
            ", ".join(unknown[:5]),
        )
        return None
    pairs = rollout_examples(
        job.codec,  # type: ignore[arg-type]  # set by resume, before any record is read
        job.rt.workspace.db,
        hypotheses,
        [(s.tactic, s.added) for s in steps],
        conditioning=conditioning,
    )
    return [pair for pair in pairs if pair is not None], value


def hindsight_conditioning(job: TrainerJob, record: GenerationRecord | ResultRecord) -> tuple[str, ...] | None:
    """The conditioning a rollout is trained under: none, or (difficulty conditioning) the token of the
    difficulty the prover measured; None when there is no outcome to label (the record is skipped)."""
    if not job.rt.config.generator_actor.difficulty_conditioning:
        return ()
    level = record.difficulty if isinstance(record, ResultRecord) else None
    if level is None:
        job.rt.add("unlabelled_rollouts")
        return None
    job.rt.add(f"rollouts_{level.lower()}")
    return (difficulty_token(level),)


def weigh(job: TrainerJob, sampled: list[dict[str, Any]]) -> tuple[list[Example], list[float]]:
    """Every step of each sampled rollout, weighted by its advantage ``reward - baseline`` (by 1 under
    difficulty conditioning: the likelihood of the relabelled rollout)."""
    conditioned = job.rt.config.generator_actor.difficulty_conditioning
    examples: list[Example] = []
    weights: list[float] = []
    for item in sampled:
        advantage = 1.0 if conditioned else item["reward"] - baseline(job)
        examples += item["examples"]
        weights += [advantage] * len(item["examples"])
    return examples, weights


RULES = _trainer.Rules(derive=derive, weigh=weigh, observe=observe)


def start(job: TrainerJob) -> Cursor:
    """Version 0 if none, resume, refill the replay buffer; then the entropy bonus on (policy-gradient training
    only: the supervised bootstrap of version 0 has none)."""
    cursor = _trainer.start(job, RULES)
    _trainer.training(job).entropy_weight = job.rt.config.generator_trainer.entropy_weight
    return cursor


def main(exp: str, rank: int = 0, minutes: float | None = None, max_steps: int | None = None) -> str:
    """Run generator trainer ``rank`` of the experiment at ``exp`` (until ``minutes`` or ``max_steps``).

    Args:
        exp: the experiment root (a folder or URL) the launcher prepared.
        rank: which of the role's jobs this is (0 for the first).
        minutes: stop after this many minutes, committing the work done (default: no time bound).
        max_steps: stop after this many optimiser steps (default: no bound).
    """
    rt = Runtime.start("generator_trainer", exp, rank, minutes)
    config = rt.config
    section = config.generator_trainer
    inputs = wiring_of(config).read_by("generator_trainer", rank)
    steps = max_steps if max_steps is not None else (section.max_steps or None)

    input_record = GenerationRecord if generator_trainer_reads_generations(config.setup) else ResultRecord
    job = _trainer.new_job(rt, "generator", section, config.generator_model, ("generator",), input_record)
    cursor = start(job)
    reader = StreamReader(rt.root, inputs, cursor) if inputs else None
    batches = _trainer.stream_batches(job, RULES, reader, steps)
    train_loop(_trainer.training(job), batches, after_step=lambda result: _trainer.record_step(job, result))
    return _trainer.finish(job, reader)


if __name__ == "__main__":
    run_cli(main)
