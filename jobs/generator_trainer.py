"""The generator trainer: policy gradient (REINFORCE with a baseline) on the generator's rollouts.

    python -m jobs.generator_trainer --exp ROOT [--rank R] [--minutes M] [--max-steps N]

In the adversarial setups it reads the prover actors' result streams, whose records carry the rollout
that generated each theorem and its reward (hard or band); in the heuristic-reward setups
(``generator-only``, ``generator-reward``) it reads the generation streams and rewards each theorem by
its heuristic score. Each rollout step's log-probability is weighted by ``reward - baseline`` (the
baseline a moving average of rewards, ``baseline_decay``); the loss adds an entropy bonus
(``entropy_weight``). Batches mix these with supervised generator examples from the database's train
split (``supervised_weight``). See :mod:`jobs._trainer`.
"""

from __future__ import annotations

import logging
from typing import Any

from core.adversarial.records import GenerationRecord, ResultRecord, StreamRecord
from core.adversarial.rewards import reward
from core.adversarial.topology import HEURISTIC_REWARD_SETUPS, all_generation_streams, result_streams
from core.models.examples import rollout_examples
from core.models.training import Example
from core.storage import CheckpointInfo
from jobs._cli import run_cli
from jobs._role import Runtime
from jobs._trainer import TrainerLoop

logger = logging.getLogger("jobs.generator_trainer")

HEURISTIC_SETUPS = HEURISTIC_REWARD_SETUPS


class GeneratorTrainer(TrainerLoop):
    kind = "generator"

    def resume(self) -> CheckpointInfo:
        """Resume as every trainer does, with the entropy bonus on (policy-gradient training only: the
        supervised bootstrap of version 0 has none)."""
        info = super().resume()
        self.trainer.entropy_weight = self.rt.config.generator_trainer.entropy_weight
        return info

    @property
    def baseline(self) -> float:
        return float(self.extra_state.get("baseline", 0.0))

    def observe_reward(self, value: float) -> None:
        decay = self.rt.config.generator_trainer.baseline_decay
        seen = int(self.extra_state.get("rewards_seen", 0))
        self.extra_state["baseline"] = value if seen == 0 else decay * self.baseline + (1 - decay) * value
        self.extra_state["rewards_seen"] = seen + 1
        self.rt.update(reward_baseline=round(self.baseline, 4))
        self.rt.add("reward_sum", value)

    @property
    def input_record(self) -> type[StreamRecord]:  # type: ignore[override]  # a property: it depends on the setup
        """Generation records in the heuristic-reward setups, else the prover actors' results."""
        return GenerationRecord if self.rt.config.setup in HEURISTIC_SETUPS else ResultRecord

    def items(self, record: GenerationRecord | ResultRecord) -> tuple[list[Example], float] | None:
        config = self.rt.config
        if isinstance(record, GenerationRecord):
            generation = record
            value = reward("heuristic", successes=0, attempts=0, heuristic=record.heuristic,
                           duplicate=record.duplicate, duplicate_penalty=config.rewards.duplicate_penalty)
        else:
            if not record.for_generator_trainer:
                return None
            generation = record.generation
            value = record.reward
        rollout = generation.rollout
        if not generation.generated or rollout is None or not rollout.steps:
            return None
        hypotheses = [tuple(h.split()) for h in rollout.hypotheses]
        steps = [step.to_step() for step in rollout.steps]
        pairs = rollout_examples(self.codec, self.rt.workspace.db, hypotheses, [(s.tactic, s.added) for s in steps])
        return [pair for pair in pairs if pair is not None], value

    def weighted(self, sampled: list[dict[str, Any]]) -> tuple[list[Example], list[float]]:
        """Every step of each sampled rollout, weighted by its advantage ``reward - baseline``."""
        examples: list[Example] = []
        weights: list[float] = []
        for item in sampled:
            advantage = item["reward"] - self.baseline
            examples += item["examples"]
            weights += [advantage] * len(item["examples"])
        return examples, weights


def main(exp: str, rank: int = 0, minutes: float | None = None, max_steps: int | None = None) -> str:
    """Run generator trainer ``rank`` of the experiment at ``exp`` (until ``minutes`` or ``max_steps``)."""
    rt = Runtime.start("generator_trainer", exp, rank, minutes)
    config = rt.config
    section = config.generator_trainer
    if config.setup in HEURISTIC_SETUPS:
        inputs = all_generation_streams(config.generator_actor.count, config.prover_actor.count)
    else:
        inputs = result_streams(config.prover_actor.count)
    steps = max_steps if max_steps is not None else (section.max_steps or None)
    return GeneratorTrainer(rt, section, config.generator_model, ("generator",), inputs).run(steps)


if __name__ == "__main__":
    run_cli(main)
