"""Small, valid records of each stream type, for tests that fill streams by hand (status, retention, launch)."""

from __future__ import annotations

from core.adversarial.records import EvaluationRecord, GenerationRecord, GenerationStats, Goal, ResultRecord


def generation(
    record_id: str,
    *,
    source: str = "dataset",
    heuristic: float = 0.0,
    size: int = 3,
    depth: int = 2,
    statement_length: int = 7,
) -> GenerationRecord:
    """A generation record (its goal and proof are placeholders: nothing here checks them)."""
    return GenerationRecord(
        id=record_id,
        source=source,
        generator_version=0 if source == "generator" else None,
        goal=Goal("advgen.1", "|- ph", ()),
        proof={},
        heuristic=heuristic,
        duplicate=False,
        rollout=None,
        stats=GenerationStats(size=size, depth=depth, statement_length=statement_length, hypotheses=0, steps=0),
    )


def result(
    generation_record: GenerationRecord,
    *,
    proved: bool = False,
    reward: float = 0.0,
    for_prover_trainer: bool = True,
    for_generator_trainer: bool = True,
) -> ResultRecord:
    return ResultRecord(
        id=generation_record.id,
        generation=generation_record,
        prover_version=0,
        proved=proved,
        attempts=1,
        successes=int(proved),
        proof=None,
        search={},
        reward=reward,
        for_generator_trainer=for_generator_trainer,
        for_prover_trainer=for_prover_trainer,
    )


def evaluation(
    version: int | str, success_rate: float, *, total: int = 8, seconds: float = 1.0, time: float = 0.0
) -> EvaluationRecord:
    return EvaluationRecord(
        version=version,
        step=None,
        benchmark="test split",
        time=time,
        seconds=seconds,
        total=total,
        proved=int(total * success_rate),
        success_rate=success_rate,
    )
