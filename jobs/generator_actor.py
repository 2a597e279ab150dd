"""The generator actor: generates theorems, with their proofs, for the prover actors.

    python -m jobs.generator_actor --exp ROOT [--rank R] [--minutes M] [--max-records N]

It samples forward rollouts from the newest generator checkpoint (hot-reloaded), many at once with
their model calls batched, selects and filters one theorem per rollout, checks it with the kernel, and
publishes it round-robin on its streams (one per prover actor: ``generator-actor-GG-to-PP``). With a
source mix (``generator_actor.mix``, e.g. ``3,generator;1,dataset``) some records are train-split
theorems of the database instead. It pauses while its readers lag more than ``max_lag_shards`` behind.

With ``generator_actor.difficulty_conditioning`` every rollout is asked for ``target_difficulty`` (default
``HARD``: the level at which the prover fails): its token follows ``<GENERATOR>`` in every generator source,
and each record names the level it was asked for (``requested_difficulty``). The actor does not read the
prover's results, so the level is the configured one, not an estimate.
"""

from __future__ import annotations

import logging
import random
import time

import torch

from configs.experiment import GeneratorActorConfig, parse_mix
from core.adversarial.generation import TheoremGenerator
from core.adversarial.records import GenerationRecord
from core.adversarial.rewards import difficulty_token
from core.adversarial.topology import GENERATOR_CHECKPOINTS, wiring_of
from core.errors import ConfigError
from core.metrics import mean
from core.models.checkpoint import LoadedModel, load_version
from core.models.vocab import Token
from core.search.model_policy import ModelPolicy, policy_from_model
from core.storage import CheckpointInfo, CheckpointStore, ShardWriter
from jobs._cli import run_cli
from jobs._retention import Pruner, consumer_cursor
from jobs._role import Reloader, Runtime
from jobs._version_zero import ensure_version_zero

logger = logging.getLogger("jobs.generator_actor")

LAG_CHECK_SECONDS = 5.0


def main(exp: str, rank: int = 0, minutes: float | None = None, max_records: int | None = None) -> str:
    """Run generator actor ``rank`` of the experiment at ``exp`` (until ``minutes`` or ``max_records``).

    Args:
        exp: the experiment root (a folder or URL) the launcher prepared.
        rank: which of the role's jobs this is (0 for the first).
        minutes: stop after this many minutes, committing the work done (default: no time bound).
        max_records: stop after this many records (default: no bound).
    """
    rt = Runtime.start("generator_actor", exp, rank, minutes)
    config = rt.config
    section = config.generator_actor
    store = CheckpointStore(rt.root, GENERATOR_CHECKPOINTS)
    device = rt.device  # an unusable device fails here, before any work
    if config.setup == "fixed-generator" and rank == 0:
        ensure_version_zero(rt, "generator", config.generator_trainer, config.generator_model, ("generator",))
    ws = rt.workspace
    streams = wiring_of(config).written_by("generator_actor", rank)
    writers = [
        ShardWriter(
            rt.root,
            s,
            max_records=section.shard_records,
            max_age_s=section.shard_seconds,
            producer={"role": "generator_actor", "rank": rank},
            **GenerationRecord.header_fields(),
        )
        for s in streams
    ]
    rt.restart = sum(writer.next_seq for writer in writers)  # shards already published: a restart's seed differs
    generator = TheoremGenerator(
        ws,
        None,  # type: ignore[arg-type]  # the policy is set by load() before the first rollout
        section,
        seed=rt.seed,
        max_statement_tokens=config.prover_model.max_source_tokens // 2,
        keep_duplicates=config.rewards.duplicate_penalty > 0,
    )

    loaded_version = 0  # the version whose weights run: an older one than asked for when that one is damaged

    def load(info: CheckpointInfo) -> None:
        nonlocal loaded_version
        loaded, info = load_version(store, info.version, fallback=True)  # weights only, never the trainer's
        generator.policy = generator_policy(loaded, section, seed=rt.seed, device=device)
        loaded_version = info.version
        rt.update(generator_version=info.version)

    reloader = Reloader(store, section.reload_seconds, load)
    info = rt.wait_for_checkpoint(store, "the generator trainer")
    if info is None:
        return rt.finish()
    reloader.use(info)

    mix = parse_mix(section.mix)
    rng = random.Random(rt.seed)
    lag = LagWatch(rt, writers)
    pruner = Pruner(rt.root, config, streams)
    produced = turn = 0
    window: list[GenerationRecord] = []  # records since the last metrics point
    window_start = time.time()
    rt.update(records_out=0, state="running")
    while rt.running() and (max_records is None or produced < max_records):
        reloader.maybe_reload()
        pruner.maybe_prune()
        if lag.too_far_behind():
            rt.update(state="paused (readers lag behind)")
            for writer in writers:
                writer.maybe_flush()
            rt.sleep(1.0)
            continue
        rt.update(state="generating")
        for record in make_records(rt, generator, rng, mix, loaded_version, streams, turn):
            writers[turn % len(writers)].append(record.to_json())
            window.append(record)
            turn += 1
            produced += 1
            if max_records is not None and produced >= max_records:
                break
        for writer in writers:
            writer.maybe_flush()
        rt.update(records_out=produced, **{f"gen_{k}": v for k, v in generator.counters.items()})
        if window and rt.timed_scalars(generation_scalars(rt, window, time.time() - window_start)):
            window, window_start = [], time.time()
    if window:
        rt.timed_scalars(generation_scalars(rt, window, time.time() - window_start), force=True)
    for writer in writers:
        writer.close()
    return rt.finish(records_out=produced, **pruner.summary())


def requested_difficulty(section: GeneratorActorConfig) -> str | None:
    """The level every rollout is asked for (``target_difficulty``), or None without difficulty conditioning."""
    return section.target_difficulty if section.difficulty_conditioning else None


def generator_policy(
    loaded: LoadedModel, section: GeneratorActorConfig, *, seed: int, device: torch.device | str | None
) -> ModelPolicy:
    """The policy of a loaded generator checkpoint, conditioned on the requested difficulty's token if any."""
    level = requested_difficulty(section)
    conditioning = (difficulty_token(level),) if level is not None else ()
    missing = [token for token in conditioning if Token("special", token) not in loaded.vocab]
    if missing:
        raise ConfigError(
            f"generator_actor.difficulty_conditioning: the generator checkpoint ({loaded.where}) has no "
            f"{' '.join(missing)} token in its vocabulary: use a checkpoint built with the difficulty tokens"
        )
    return policy_from_model(loaded, seed=seed, device=device, precision=section.precision, conditioning=conditioning)


def make_records(
    rt: Runtime,
    generator: TheoremGenerator,
    rng: random.Random,
    mix: dict[str, float],
    version: int,
    streams: list[str],
    turn: int,
) -> list[GenerationRecord]:
    """One batch of records: a database theorem (with probability ``mix['dataset']``) or generated ones; the
    caller sends them round-robin from turn ``turn``, so record ``i`` names ``streams[(turn + i) % len(streams)]``."""
    stream = streams[turn % len(streams)]
    if rng.random() < mix.get("dataset", 0.0):
        theorem, tree = generator.dataset_theorem()
        rt.add("dataset_records")
        return [GenerationRecord.of_database(theorem, tree, source_stream=stream)]
    start = time.perf_counter()
    rollouts = generator.run(rt.config.generator_actor.rollouts_per_batch)
    level = requested_difficulty(rt.config.generator_actor)
    records: list[GenerationRecord] = []
    for rollout in rollouts:
        generated = generator.select(rollout)
        if generated is not None:
            records.append(
                GenerationRecord.of_generated(
                    generated,
                    generator_version=version,
                    source_stream=streams[(turn + len(records)) % len(streams)],  # the stream it is sent on
                    requested_difficulty=level,
                )
            )
    rt.add("rollouts", len(rollouts))
    rt.add("generation_seconds", round(time.perf_counter() - start, 3))
    return records


def generation_scalars(rt: Runtime, records: list[GenerationRecord], seconds: float) -> dict[str, float | None]:
    """Live metrics of a window of generation records: throughput, sources, duplicates, theorem sizes."""
    generated = [r for r in records if r.generated]
    return {
        "actor/records_per_s": len(records) / max(seconds, 1e-9),
        "actor/dataset_fraction": mean(float(not r.generated) for r in records),
        "actor/duplicate_fraction": mean(float(r.duplicate) for r in generated),
        "actor/mean_heuristic": mean(r.heuristic for r in generated),
        "actor/mean_proof_size": mean(r.stats.size for r in generated),
        "actor/mean_proof_depth": mean(r.stats.depth for r in generated),
        "actor/reader_lag_shards": rt.counters.get("reader_lag_shards"),
        "actor/generator_version": rt.counters.get("generator_version"),
    }


class LagWatch:
    """Says when the readers of our streams are more than ``max_lag_shards`` shards behind (checked every few s)."""

    def __init__(self, rt: Runtime, writers: list[ShardWriter]) -> None:
        self.rt = rt
        self.writers = writers
        self.limit = rt.config.generator_actor.max_lag_shards
        self._checked = 0.0
        self._behind = False

    def too_far_behind(self) -> bool:
        if time.time() - self._checked < LAG_CHECK_SECONDS:
            return self._behind
        self._checked = time.time()
        worst = 0
        for writer in self.writers:
            consumed = self.consumed(writer.stream)
            worst = max(worst, writer.next_seq - consumed)
        self.rt.update(reader_lag_shards=worst)
        self._behind = worst > self.limit
        return self._behind

    def consumed(self, stream: str) -> int:
        """How many shards of ``stream`` its paced reader has committed: the stream's first consumer in the
        wiring table (the prover actor when one runs, else the generator trainer)."""
        consumers = wiring_of(self.rt.config).consumers_of(stream)
        return consumer_cursor(self.rt.root, consumers[0]).get(stream, 0) if consumers else 0


if __name__ == "__main__":
    run_cli(main)
