"""Who writes and who reads which stream: names of jobs and streams, and how streams are shared out.

Generator actor ``g`` writes one stream per prover actor ``p`` (``generator-actor-gg-to-pp``); prover actor
``p`` reads all streams ending in ``-to-pp``. So every stream has one writer and one prover reader, for any
numbers of generator and prover actors. When no prover actor runs, generator actors write one stream each
(``...-to-00``), read by the generator trainer. Every rank of a trainer group reads all of its input
streams and keeps the records it owns (``jobs._group``); :func:`group_cursor` is what such a group has
committed.
"""

from __future__ import annotations

from typing import Any

ROLE_JOB_NAMES = {
    "generator_actor": "generator-actor",
    "prover_actor": "prover-actor",
    "generator_trainer": "generator-trainer",
    "prover_trainer": "prover-trainer",
    "evaluator": "evaluator",
}


def job_name(role: str, rank: int) -> str:
    """``prover_actor``, 3 -> ``prover-actor-03`` (also the name of the job's output stream, if any)."""
    return f"{ROLE_JOB_NAMES[role]}-{rank:02d}"


def generation_stream(generator_rank: int, prover_rank: int) -> str:
    return f"generator-actor-{generator_rank:02d}-to-{prover_rank:02d}"


def generation_streams_written(generator_rank: int, prover_actors: int) -> list[str]:
    """The streams generator actor ``generator_rank`` writes (one per prover actor, at least one)."""
    return [generation_stream(generator_rank, p) for p in range(max(prover_actors, 1))]


def generation_streams_read(prover_rank: int, generator_actors: int) -> list[str]:
    """The streams prover actor ``prover_rank`` reads."""
    return [generation_stream(g, prover_rank) for g in range(generator_actors)]


def all_generation_streams(generator_actors: int, prover_actors: int) -> list[str]:
    return [s for g in range(generator_actors) for s in generation_streams_written(g, prover_actors)]


def result_streams(prover_actors: int) -> list[str]:
    return [job_name("prover_actor", p) for p in range(prover_actors)]


def group_cursor(meta: dict[str, Any]) -> dict[str, int]:
    """The position up to which a trainer group has consumed each stream, from its checkpoint metadata.

    Ranks that share streams by record (``sharing: by-record``) each read every stream: the group is past a
    shard only when its slowest rank is (the lowest cursor; a rank without a stream counts as 0). Older
    groups divided the streams among ranks: their cursors are disjoint, and joined.
    """
    cursors = [cursor or {} for cursor in (meta.get("cursors") or {}).values()]
    streams = sorted({stream for cursor in cursors for stream in cursor})
    if meta.get("sharing") == "by-record":
        return {stream: min(int(cursor.get(stream, 0)) for cursor in cursors) for stream in streams}
    return {stream: max(int(cursor.get(stream, 0)) for cursor in cursors) for stream in streams}


HEURISTIC_REWARD_SETUPS = ("generator-only", "generator-reward")


def generator_trainer_reads_generations(setup: str) -> bool:
    """In the heuristic-reward setups the generator trainer reads the generation streams (else the results)."""
    return setup in HEURISTIC_REWARD_SETUPS


EVALUATION_STREAM = "evaluator-00"
PROVER_CHECKPOINTS = "prover"
GENERATOR_CHECKPOINTS = "generator"
