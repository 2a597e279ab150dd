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
from typing import Any, NamedTuple, Protocol

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
    source: GoalSource = TrainSplitGoals(rt) if own_goals else StreamGoals(rt, writer)
    pruner = Pruner(rt.root, config, [writer.stream])
    produced = serve(rt, source, writer, ActorLoop(policy_box, reloader, pruner), max_records)
    writer.close()
    return rt.finish(records_out=produced, **pruner.summary())


class GoalSource(Protocol):
    """Where the prover actor's goals come from: the generation streams, or the train split (prover-only)."""

    def take(self, rt: Runtime, limit: int) -> list[tuple[GenerationRecord, Assertion]] | None:
        """The next goals to search (at most ``limit`` where the source can split its input), each with
        the record it came as; ``None`` when there is nothing new yet."""
        ...

    def commit(self, writer: ShardWriter) -> None:
        """Commit, in ``writer``'s next shard, the input consumed by the last :meth:`take`."""
        ...

    def counters(self) -> dict[str, Any]:
        """The source's own counters for the job's status."""
        ...


class StreamGoals:
    """The generation streams assigned to the rank (``generator-actor-*-to-RR``), one shard per
    :meth:`take` (so the committed cursor is exactly past it), resumed after the writer's last commit."""

    def __init__(self, rt: Runtime, writer: ShardWriter) -> None:
        streams = wiring_of(rt.config).read_by("prover_actor", rt.rank)
        self.reader = StreamReader(rt.root, streams, writer.last_cursor())
        logger.info(
            "%s: reading %s from %s",
            rt.name,
            ", ".join(self.reader.streams),
            self.reader.cursor.to_json() or "the start",
        )

    def take(self, rt: Runtime, limit: int) -> list[tuple[GenerationRecord, Assertion]] | None:
        batches = self.reader.poll(max_shards=1)  # one whole shard, whatever ``limit``
        if not batches:
            return None
        return [goal for batch in batches for goal in shard_goals(rt, batch)]

    def commit(self, writer: ShardWriter) -> None:
        writer.set_commit(self.reader.cursor)

    def counters(self) -> dict[str, Any]:
        return {"quarantined": self.reader.quarantined}


class TrainSplitGoals:
    """Prover-only: the rank's share of the train split (:func:`train_split_goals`), endlessly; no input
    cursor (each restart draws a new order)."""

    def __init__(self, rt: Runtime) -> None:
        self.goals = train_split_goals(rt.workspace, rt.rank, rt.config.prover_actor.count, rt.seed)
        self.stream = f"{TRAIN_SPLIT}-{rt.rank:02d}"

    def take(self, rt: Runtime, limit: int) -> list[tuple[GenerationRecord, Assertion]] | None:
        theorems = [next(self.goals) for _ in range(limit)]
        rt.add("records_in", len(theorems))
        return [(database_goal(rt.workspace, theorem, self.stream), theorem) for theorem in theorems]

    def commit(self, writer: ShardWriter) -> None:
        """Nothing to commit: the train split has no cursor."""

    def counters(self) -> dict[str, Any]:
        return {}


class ActorLoop(NamedTuple):
    """What the loop keeps up between batches: the policy (hot-reloaded) and the retention of its stream."""

    policy_box: dict[str, Any]
    reloader: Reloader
    pruner: Pruner


def serve(rt: Runtime, source: GoalSource, writer: ShardWriter, loop: ActorLoop, max_records: int | None) -> int:
    """Search the source's goals (``batch_goals`` at a time where it can split its input), one result record
    each, until the job must stop or has produced ``max_records``; returns how many it produced."""
    settings = rt.config.prover_actor.search
    produced = 0
    window = MetricsWindow()
    rt.update(records_in=0, records_out=0, proved=0, attempted=0, state="running")
    while rt.running() and (max_records is None or produced < max_records):
        loop.reloader.maybe_reload()
        loop.pruner.maybe_prune()
        limit = settings.batch_goals if max_records is None else min(settings.batch_goals, max_records - produced)
        goals = source.take(rt, limit)
        if goals is None:
            writer.maybe_flush()
            rt.update(state="idle (no new generations)", **source.counters())
            rt.sleep(POLL_SECONDS)
            continue
        rt.update(state="proving")
        results = prove_goals(rt, goals, loop.policy_box, settings)
        for record in results:
            writer.append(record.to_json())
        produced += len(results)
        source.commit(writer)
        writer.maybe_flush()
        rt.update(records_out=produced, **source.counters())
        window.add(rt, results)
    window.flush(rt)
    return produced


class MetricsWindow:
    """The results since the last live-metrics point (:func:`result_scalars`), published when due."""

    def __init__(self) -> None:
        self.results: list[ResultRecord] = []
        self.start = time.time()

    def add(self, rt: Runtime, results: list[ResultRecord]) -> None:
        self.results += results
        if self.results and rt.timed_scalars(result_scalars(self.results, time.time() - self.start)):
            self.results, self.start = [], time.time()

    def flush(self, rt: Runtime) -> None:
        if self.results:
            rt.timed_scalars(result_scalars(self.results, time.time() - self.start), force=True)


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
    return prove_goals(rt, shard_goals(rt, batch), policy_box, settings)


def shard_goals(rt: Runtime, batch: ShardBatch) -> list[tuple[GenerationRecord, Assertion]]:
    """The goals of one input shard, each with its generation record; a malformed record is counted
    (``malformed_goals``), logged and skipped."""
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
    return goals


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
