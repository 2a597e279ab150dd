"""The prover actor: tries to prove every generated theorem routed to it, and publishes the results.

    python -m jobs.prover_actor --exp ROOT [--rank R] [--minutes M] [--max-records N]

It follows the generation streams assigned to its rank (``generator-actor-*-to-RR``), searches each goal
with the configured prover and budget (many goals at once, their model calls batched), checks every
proof with the kernel, computes the generator's reward, and publishes one result record per goal on its
stream ``prover-actor-RR``. Each shard's header commits the input cursor: after a crash it resumes exactly
after the last committed input. It hot-reloads the newest prover checkpoint between batches.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from configs.experiment import ExperimentConfig
from core.adversarial.records import GenerationRecord, ResultRecord, decode_records
from core.adversarial.rewards import reward
from core.adversarial.topology import PROVER_CHECKPOINTS, job_name, wiring_of
from core.errors import MetamathError, RecordError
from core.metamath.database import Assertion
from core.metrics import mean
from core.models.checkpoint import load_version
from core.search.evaluation import prove_theorems
from core.search.model_policy import ModelPolicy, policy_from_model
from core.search.runner import SearchResult, SearchSettings
from core.storage import CheckpointInfo, CheckpointStore, ShardBatch, ShardWriter, StreamReader, stream_bounds
from jobs._cli import run_cli
from jobs._retention import Pruner
from jobs._role import Reloader, Runtime
from jobs._version_zero import ensure_version_zero, prover_formats

logger = logging.getLogger("jobs.prover_actor")

POLL_SECONDS = 0.5


def main(exp: str, rank: int = 0, minutes: float | None = None, max_records: int | None = None) -> str:
    """Run prover actor ``rank`` of the experiment at ``exp`` (until ``minutes`` or ``max_records``).

    Args:
        exp: the experiment root (a folder or URL) the launcher prepared.
        rank: which of the role's jobs this is (0 for the first).
        minutes: stop after this many minutes, committing the work done (default: no time bound).
        max_records: stop after this many records (default: no bound).
    """
    rt = Runtime.start("prover_actor", exp, rank, minutes)
    config = rt.config
    settings = config.prover_actor.search
    device = rt.device  # an unusable device fails here, before any work
    rt.restart = stream_bounds(rt.root, job_name("prover_actor", rank))[1]  # shards already published
    store = CheckpointStore(rt.root, PROVER_CHECKPOINTS)
    if config.setup == "fixed-prover" and rank == 0:
        formats = prover_formats(config.prover_trainer.examples, config.prover_actor.search.prover)
        ensure_version_zero(rt, "prover", config.prover_trainer, config.prover_model, formats)
    policy_box: dict[str, Any] = {}

    def load(info: CheckpointInfo) -> None:
        loaded, info = load_version(store, info.version, fallback=True)  # weights only, never the trainer's
        policy_box["policy"] = policy_from_model(
            loaded, seed=rt.seed, device=device, precision=config.prover_actor.precision
        )
        policy_box["version"] = info.version
        rt.update(prover_version=info.version)

    reloader = Reloader(store, config.prover_actor.reload_seconds, load)
    info = rt.wait_for_checkpoint(store, "the prover trainer")
    if info is None:
        return rt.finish()
    reloader.use(info)

    writer = ShardWriter(
        rt.root,
        job_name("prover_actor", rank),
        max_records=config.prover_actor.shard_records,
        max_age_s=config.prover_actor.shard_seconds,
        committing=True,
        producer={"role": "prover_actor", "rank": rank},
        **ResultRecord.header_fields(),
    )
    cursor = writer.last_cursor()
    reader = StreamReader(rt.root, wiring_of(config).read_by("prover_actor", rank), cursor)
    logger.info("%s: reading %s from %s", rt.name, ", ".join(reader.streams), reader.cursor.to_json() or "the start")
    pruner = Pruner(rt.root, config, [writer.stream])
    produced = 0
    window: list[ResultRecord] = []  # results since the last metrics point
    window_start = time.time()
    rt.update(records_in=0, records_out=0, proved=0, attempted=0, state="running")
    while rt.running() and (max_records is None or produced < max_records):
        reloader.maybe_reload()
        pruner.maybe_prune()
        batches = reader.poll(max_shards=1)  # one shard at a time: the reader's cursor is then exactly past it
        if not batches:
            writer.maybe_flush()
            rt.update(state="idle (no new generations)", quarantined=reader.quarantined)
            rt.sleep(POLL_SECONDS)
            continue
        rt.update(state="proving")
        for batch in batches:
            results = prove_batch(rt, batch, policy_box, settings)
            for record in results:
                writer.append(record.to_json())
            produced += len(results)
            writer.set_commit(reader.cursor)
            window += results
        writer.maybe_flush()
        rt.update(records_out=produced, quarantined=reader.quarantined)
        if window and rt.timed_scalars(result_scalars(window, time.time() - window_start)):
            window, window_start = [], time.time()
    if window:
        rt.timed_scalars(result_scalars(window, time.time() - window_start), force=True)
    writer.close()
    return rt.finish(records_out=produced, **pruner.summary())


def prove_batch(
    rt: Runtime, batch: ShardBatch, policy_box: dict[str, Any], settings: SearchSettings
) -> list[ResultRecord]:
    """Search every goal of one input shard; one result record per generation record."""
    ws = rt.workspace
    config = rt.config
    goals: list[tuple[GenerationRecord, Assertion]] = []
    for record in decode_records(GenerationRecord, batch.header, batch.records, stream=batch.stream):
        rt.add("records_in")
        try:
            if isinstance(record, RecordError):
                raise record
            goals.append((record, record.goal.theorem(ws)))
        except (MetamathError, RecordError) as error:
            rt.add("malformed_goals")
            logger.warning("%s: skipping malformed generation record: %s", rt.name, error)
    if not goals:
        return []
    attempts = attempts_per_goal(config)
    policy: ModelPolicy = policy_box["policy"]
    outcomes: list[list[SearchResult]] = [[] for _ in goals]
    start = time.perf_counter()
    for _ in range(attempts):
        results = prove_theorems(
            ws.db,
            [t for _, t in goals],
            policy,
            settings,
            forbidden=ws.generator_forbidden,
            grammar=ws.grammar,
            kernel=ws.kernel,
        )
        for slot, result in zip(outcomes, results):
            slot.append(result)
    rt.add("search_seconds", round(time.perf_counter() - start, 3))
    return [result_record(rt, record, tries, policy_box["version"]) for (record, _), tries in zip(goals, outcomes)]


def result_scalars(results: list[ResultRecord], seconds: float) -> dict[str, float | None]:
    """Live metrics of a window of result records: throughput, success on generated theorems, rewards."""
    return {
        "actor/results_per_s": len(results) / max(seconds, 1e-9),
        "actor/proved_rate": mean(float(r.proved) for r in results),
        "actor/proved_rate_generated": mean(float(r.proved) for r in results if r.generation.generated),
        "actor/mean_reward": mean(r.reward for r in results),
        "actor/prover_version": results[-1].prover_version,
    }


def attempts_per_goal(config: ExperimentConfig) -> int:
    """How many times each goal is searched: ``rewards.attempts`` for the band reward, else once."""
    return config.rewards.attempts if config.rewards.kind == "band" else 1


def result_record(rt: Runtime, generation: GenerationRecord, tries: list[SearchResult], version: int) -> ResultRecord:
    config = rt.config
    successes = sum(r.proved for r in tries)
    rt.add("attempted")
    rt.add("proved", int(successes > 0))
    value = reward(
        config.rewards.kind,
        successes=successes,
        attempts=len(tries),
        heuristic=generation.heuristic,
        tau=config.rewards.tau,
        heuristic_weight=config.rewards.heuristic_weight,
        duplicate=generation.duplicate,
        duplicate_penalty=config.rewards.duplicate_penalty,
    )
    return ResultRecord.of_attempts(
        generation,
        tries,
        prover_version=version,
        reward=value,
        generator_send_only_failed=config.routing.generator_send_only_failed,
        prover_send_only_failed=config.routing.prover_send_only_failed,
    )


if __name__ == "__main__":
    run_cli(main)
