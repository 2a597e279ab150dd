"""Difficulty labels (Minimo's conditioning): the table of :func:`difficulty_label`, its tokens, and where
records carry them (the prover's measured outcome, the level a generator was asked for)."""

from __future__ import annotations

import dataclasses

import pytest

from core.adversarial.records import GenerationRecord, ResultRecord
from core.adversarial.rewards import DIFFICULTIES, difficulty_label, difficulty_token
from core.errors import ConfigError, RecordError
from core.models.formats import CONDITIONING
from tests.adversarial.test_records import generation


@pytest.mark.parametrize(
    ("successes", "attempts", "label"),
    [
        (1, 1, "EASY"),  # one attempt, proved
        (0, 1, "HARD"),  # one attempt, failed
        (4, 4, "EASY"),  # proved on every attempt
        (3, 4, "MEDIUM"),  # one attempt short of EASY
        (1, 4, "MEDIUM"),  # one proof short of HARD
        (0, 4, "HARD"),  # never proved
    ],
)
def test_the_label_is_the_measured_outcome(successes: int, attempts: int, label: str) -> None:
    assert difficulty_label(successes=successes, attempts=attempts) == label


def test_a_theorem_never_attempted_has_no_label() -> None:
    assert difficulty_label(successes=0, attempts=0) is None


def test_every_level_has_a_conditioning_token_of_the_vocabulary() -> None:
    assert [difficulty_token(level) for level in DIFFICULTIES] == list(CONDITIONING)
    with pytest.raises(ConfigError, match="unknown difficulty 'hard'"):
        difficulty_token("hard")


def result(successes: int, attempts: int, generation: GenerationRecord) -> ResultRecord:
    return ResultRecord(
        id=generation.id,
        generation=generation,
        prover_version=0,
        proved=successes > 0,
        attempts=attempts,
        successes=successes,
        proof=None,
        search={},
        reward=0.0,
        for_generator_trainer=True,
        for_prover_trainer=False,
    )


def a_generation(requested_difficulty: str | None = None) -> GenerationRecord:
    return dataclasses.replace(generation(), requested_difficulty=requested_difficulty)


def test_a_result_record_labels_itself_by_its_attempts() -> None:
    generation = a_generation()
    assert result(2, 2, generation).difficulty == "EASY"
    assert result(1, 2, generation).difficulty == "MEDIUM"
    assert result(0, 2, generation).difficulty == "HARD"


def test_the_requested_difficulty_round_trips_and_older_records_lack_it() -> None:
    asked = a_generation(requested_difficulty="HARD")
    assert GenerationRecord.parse(asked.to_json(), stream="s").requested_difficulty == "HARD"
    older = a_generation().to_json()
    del older["requested_difficulty"]
    assert GenerationRecord.parse(older, stream="s").requested_difficulty is None


def test_a_requested_difficulty_that_is_no_level_is_refused_naming_the_field() -> None:
    wire = a_generation(requested_difficulty="HARD").to_json()
    wire["requested_difficulty"] = "<HARD>"
    with pytest.raises(RecordError, match="field 'requested_difficulty'"):
        GenerationRecord.parse(wire, stream="s")
