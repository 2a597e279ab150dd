"""The prover actor: tries to prove every generated theorem routed to it, and publishes the results.

    python -m jobs.prover_actor --exp ROOT [--rank R] [--minutes M] [--max-records N]

It follows the generation streams assigned to its rank (``generator-actor-*-to-RR``), searches each goal
with the configured prover and budget (many goals at once, their model calls batched), checks every
proof with the kernel, computes the generator's reward, and publishes one result record per goal on its
stream ``prover-actor-RR``. Each shard's header commits the input cursor: after a crash it resumes exactly
after the last committed input. It hot-reloads the newest prover checkpoint between batches.

In setup ``prover-only`` it reads no stream: it takes its goals from the database's train split (its share
of it, in an order seeded by the experiment's seed, its rank and restart counter; never a valid or test
theorem), and routes the theorems it proved, with their proofs, to the prover trainer (expert iteration).
When the prover trainer learns from the prover's own proofs, a failed search's record carries up to
``prover_actor.max_solved_subgoals`` goals it proved on the way (``solved_subgoals``), and in prover-only
such a failure is routed to the prover trainer too.

When the prover trainer trains a goal critic (``prover_trainer.critic``), every backward or HTPS search
reports up to ``prover_trainer.critic_max_examples`` critic targets, carried in its result record
(``critic_examples``); and when the prover checkpoint holds a critic, the searches use it (HTPS: the values
of new goals; best-first: the goal order) unless ``prover_actor.search.critic`` is false. The critic is
hot-reloaded with the policy.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from typing import Any

from configs.experiment import ExperimentConfig
from core.adversarial.records import GenerationRecord, ResultRecord, decode_records
from core.adversarial.rewards import reward
from core.adversarial.topology import (
    GIVEN_PROOFS,
    PROVER_CHECKPOINTS,
    TRAIN_SPLIT,
    job_name,
    prover_actor_reads_train_split,
    prover_learns_from,
    wiring_of,
)
from core.adversarial.workspace import Workspace
from core.errors import ConfigError, MetamathError, RecordError
from core.metamath.database import Assertion
from core.metamath.prooftree import tree_from_proof
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
        policy_box["critic"] = loaded.critic  # None when the version holds none
        policy_box["version"] = info.version
        rt.update(prover_version=info.version, critic=loaded.critic is not None)

    reloader = Reloader(store, config.prover_actor.reload_seconds, load)
    info = rt.wait_for_checkpoint(store, "the prover trainer")
    if info is None:
        return rt.finish()
    reloader.use(info)

    own_goals = prover_actor_reads_train_split(config.setup)
    writer = ShardWriter(
        rt.root,
        job_name("prover_actor", rank),
        max_records=config.prover_actor.shard_records,
        max_age_s=config.prover_actor.shard_seconds,
        committing=not own_goals,  # train-split goals: no input cursor to commit
        producer={"role": "prover_actor", "rank": rank},
        **ResultRecord.header_fields(),
    )
    if own_goals:
        produced, pruned = prove_train_split(rt, writer, policy_box, reloader, max_records)
        writer.close()
        return rt.finish(records_out=produced, **pruned)
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


def prove_train_split(
    rt: Runtime, writer: ShardWriter, policy_box: dict[str, Any], reloader: Reloader, max_records: int | None
) -> tuple[int, dict[str, Any]]:
    """Prover-only: search the train split's theorems (``batch_goals`` at a time), one result record each,
    until the job must stop or has produced ``max_records``; returns how many it produced, and the pruning
    summary."""
    config = rt.config
    settings = config.prover_actor.search
    pruner = Pruner(rt.root, config, [writer.stream])
    goals = train_split_goals(rt.workspace, rt.rank, config.prover_actor.count, rt.seed)
    stream = f"{TRAIN_SPLIT}-{rt.rank:02d}"
    produced = 0
    window: list[ResultRecord] = []
    window_start = time.time()
    rt.update(records_in=0, records_out=0, proved=0, attempted=0, state="running")
    while rt.running() and (max_records is None or produced < max_records):
        reloader.maybe_reload()
        pruner.maybe_prune()
        size = settings.batch_goals if max_records is None else min(settings.batch_goals, max_records - produced)
        theorems = [next(goals) for _ in range(size)]
        rt.add("records_in", len(theorems))
        rt.update(state="proving")
        batch = [(database_goal(rt.workspace, theorem, stream), theorem) for theorem in theorems]
        results = prove_goals(rt, batch, policy_box, settings)
        for record in results:
            writer.append(record.to_json())
        produced += len(results)
        window += results
        writer.maybe_flush()
        rt.update(records_out=produced)
        if window and rt.timed_scalars(result_scalars(window, time.time() - window_start)):
            window, window_start = [], time.time()
    if window:
        rt.timed_scalars(result_scalars(window, time.time() - window_start), force=True)
    return produced, pruner.summary()


def train_split_goals(ws: Workspace, rank: int, count: int, seed: int) -> Iterator[Assertion]:
    """Rank ``rank``'s share of the train split (every ``count``-th theorem), endlessly, each pass in a new
    order drawn from ``seed``. Only train theorems: the valid and test ones are never goals."""
    share = [t for i, t in enumerate(ws.train_theorems()) if i % max(count, 1) == rank]
    share = [t for t in share if t.label not in ws.held_out_labels]
    if not share:
        raise ConfigError(
            f"prover actor {rank}: the train split gives it no theorem (database.splits, prover_actor.count)"
        )
    rng = random.Random(seed)
    while True:
        order = list(share)
        rng.shuffle(order)
        yield from order


def database_goal(ws: Workspace, theorem: Assertion, stream: str) -> GenerationRecord:
    """The generation record of a train theorem searched in prover-only (its database proof included)."""
    return GenerationRecord.of_database(theorem, tree_from_proof(ws.db, theorem, ws.kernel), source_stream=stream)


def prove_batch(
    rt: Runtime, batch: ShardBatch, policy_box: dict[str, Any], settings: SearchSettings
) -> list[ResultRecord]:
    """Search every goal of one input shard; one result record per generation record."""
    ws = rt.workspace
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
    return prove_goals(rt, goals, policy_box, settings)


def prove_goals(
    rt: Runtime, goals: list[tuple[GenerationRecord, Assertion]], policy_box: dict[str, Any], settings: SearchSettings
) -> list[ResultRecord]:
    """Search every goal (its model calls batched); one result record per goal, in order."""
    ws, config = rt.workspace, rt.config
    if not goals:
        return []
    attempts = attempts_per_goal(config)
    policy: ModelPolicy = policy_box["policy"]
    learns = prover_learns_from(config.setup, config.prover_trainer.learn_from_own_proofs)
    subgoals = config.prover_actor.max_solved_subgoals if learns != GIVEN_PROOFS else 0
    targets = critic_examples_per_search(config, settings)
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
            max_solved_subgoals=subgoals,
            critic=policy_box.get("critic"),
            max_critic_examples=targets,
        )
        for slot, result in zip(outcomes, results):
            slot.append(result)
    rt.add("search_seconds", round(time.perf_counter() - start, 3))
    return [result_record(rt, record, tries, policy_box["version"]) for (record, _), tries in zip(goals, outcomes)]


def critic_examples_per_search(config: ExperimentConfig, search: SearchSettings) -> int:
    """How many critic targets each search reports: ``prover_trainer.critic_max_examples`` when the prover
    trainer trains a critic and the search is backward or HTPS (a forward search has no goal graph), else 0."""
    section = config.prover_trainer
    return section.critic_max_examples if section.critic and search.prover in ("backward", "htps") else 0


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
        prover_learns=prover_learns_from(config.setup, config.prover_trainer.learn_from_own_proofs),
    )


if __name__ == "__main__":
    run_cli(main)
