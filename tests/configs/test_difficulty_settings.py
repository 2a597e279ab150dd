"""The difficulty-conditioning settings (``generator_actor.difficulty_conditioning``, ``target_difficulty``):
off by default, and refused where no prover outcome reaches a generator trainer or only failures do."""

from __future__ import annotations

import pytest

from configs.presets import preset
from core.errors import ConfigError

ON = "generator_actor.difficulty_conditioning=true"


def test_conditioning_is_off_by_default_and_asks_for_hard_when_on() -> None:
    assert preset("tiny").generator_actor.difficulty_conditioning is False
    section = preset("tiny").with_overrides([ON]).generator_actor
    assert (section.difficulty_conditioning, section.target_difficulty) == (True, "HARD")
    assert (
        preset("tiny")
        .with_overrides([ON, "generator_actor.target_difficulty=MEDIUM"])
        .generator_actor.target_difficulty
        == "MEDIUM"
    )


def test_a_target_that_is_no_level_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="target_difficulty"):
        preset("tiny").with_overrides([ON, "generator_actor.target_difficulty=hardest"])


@pytest.mark.parametrize("setup", ["adversarial", "fixed-prover"])
def test_conditioning_is_accepted_where_the_generator_learns_from_the_prover(setup: str) -> None:
    counts = ["prover_trainer.count=0"] if setup == "fixed-prover" else []
    config = preset("tiny").with_overrides([f"setup={setup}", *counts, ON])
    assert config.generator_actor.difficulty_conditioning


def test_conditioning_is_refused_where_the_generator_learns_from_its_heuristic() -> None:
    with pytest.raises(
        ConfigError, match="difficulty_conditioning needs a generator trainer .* not setup 'generator-reward'"
    ):
        preset("tiny").with_overrides(["setup=generator-reward", ON])


def test_conditioning_is_refused_when_the_generator_sees_only_failures() -> None:
    assert not preset("tiny").with_overrides([ON]).routing.generator_send_only_failed
    with pytest.raises(ConfigError, match="routing.generator_send_only_failed"):
        preset("tiny").with_overrides(["routing.generator_send_only_failed=true", ON])
