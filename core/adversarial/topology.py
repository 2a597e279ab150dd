"""Who writes and who reads which stream: names of jobs and streams, and how streams are shared out.

Generator actor ``g`` writes one stream per prover actor ``p`` (``generator-actor-gg-to-pp``); prover actor
``p`` reads all streams ending in ``-to-pp``. So every stream has one writer and one prover reader, for any
numbers of generator and prover actors. When no prover actor runs, generator actors write one stream each
(``...-to-00``), read by the generator trainer. Trainer groups split their input streams by index.
"""

from __future__ import annotations

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


def share(streams: list[str], rank: int, count: int) -> list[str]:
    """The streams trainer ``rank`` of a group of ``count`` reads (disjoint shares, all covered)."""
    return [s for i, s in enumerate(sorted(streams)) if i % count == rank]


HEURISTIC_REWARD_SETUPS = ("generator-only", "generator-reward")


def generator_trainer_reads_generations(setup: str) -> bool:
    """In the heuristic-reward setups the generator trainer reads the generation streams (else the results)."""
    return setup in HEURISTIC_REWARD_SETUPS


EVALUATION_STREAM = "evaluator-00"
PROVER_CHECKPOINTS = "prover"
GENERATOR_CHECKPOINTS = "generator"
