"""How theorems are generated: :class:`GenerationSettings`, also the base of the config's ``generator_actor``.

The class is the only definition of the generation settings: :class:`core.adversarial.generation.TheoremGenerator`
reads it, and ``configs.experiment.GeneratorActorConfig`` derives from it (adding the job's own knobs), so
the settings keep their names in the experiment's frozen JSON. It is validated once, on creation
(:class:`core.settings.Settings`), with errors naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.adversarial.rewards import parse_heuristic
from core.errors import ConfigError
from core.settings import Settings, option


@dataclass(frozen=True)
class GenerationSettings(Settings):
    """The rollouts of a generator and how a theorem is chosen from each."""

    goal_source: str = option(
        "train-hypotheses",
        choices=("train-hypotheses", "none"),
        help="start graphs from the hypotheses of random train theorems, or from nothing",
    )
    max_steps: int = option(8, min=1, help="longest rollout (tactics before STOP is forced)")
    min_steps: int = option(3, min=1, help="shortest rollout: STOP is masked until this many tactics were applied")
    compose: bool = option(
        False,
        help="every step after the first must use a node this rollout made as a hypothesis, so that steps "
        "build on each other (deeper proofs) instead of adding independent lemma instances",
    )
    temperature: float = option(1.0, min=0.0, help="sampling temperature of the rollouts")
    attempts_per_step: int = option(4, min=1, help="samples tried per step until one applies")
    selection: str = option(
        "best",
        choices=("last", "best"),
        help="which node of a rollout becomes the theorem: the last one, or the best by heuristic",
    )
    heuristic: str = option(
        "size",
        help="score of a node for selection='best' and shaping: one of size, depth, "
        "size_over_depth, statement_length, mean_token_frequency, "
        "max_token_frequency, or a weighted combination "
        "'1,size;-4,mean_token_frequency'",
    )
    dedup_window: int = option(10000, min=0, help="how many recent statements are remembered to drop duplicates")

    def validate(self) -> None:
        parse_heuristic(self.heuristic)
        if self.min_steps > self.max_steps:
            raise ConfigError(
                f"{self._name('min_steps')} ({self.min_steps}) must be <= {self._name('max_steps')} ({self.max_steps})"
            )
