"""The learning logic of the roles, pinned line by line (tiny models, the embedded database, no processes).

- the generator trainer's REINFORCE moves log-probabilities up for rewards above the baseline and down
  below it; the baseline follows the rewards; the entropy bonus spreads the policy;
- routing: each trainer keeps exactly the records flagged for it; hindsight relabelling adds the rollout's
  intermediate theorems to the same replay item (nothing with ``hindsight_max_nodes=0``, no held-out statement); the prover actor's flags and rewards
  follow its outcome and the routing settings; the band reward searches each goal ``attempts`` times;
- the trainers' batches honour ``replay_min`` and ``supervised_weight``; a restarted trainer refills its
  buffer from the committed window; old checkpoint versions are pruned; the evaluator honours ``every``;
- job seeds come from the experiment seed, role, rank and restart counter, never the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch

from configs.databases import resolve_database
from configs.presets import preset
from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.hindsight import hindsight_theorems
from core.adversarial.records import GenerationRecord, ResultRecord, StreamRecord
from core.metamath.prooftree import ProofTree
from core.models.decoding import target_logprobs, target_logprobs_and_entropy
from core.models.examples import tree_examples
from core.models.formats import build_vocabulary
from core.models.training import Seq2SeqTrainer, new_model
from core.models.transformer import ModelConfig, Seq2Seq
from core.search.baseline import BaselinePolicy
from core.search.runner import SearchResult
from core.storage import (
    CheckpointStore,
    Cursor,
    ExperimentRoot,
    ShardBatch,
    ShardWriter,
    stream_bounds,
)
from jobs import _trainer, evaluator, generator_trainer, prover_actor, prover_trainer
from jobs._role import Runtime, job_seed
from jobs._trainer import TrainerJob
from tests.scripted_rollouts import INTERMEDIATE, A, scripted_record

FAST = ["generator_trainer.bootstrap_steps=0", "prover_trainer.bootstrap_steps=0", "database.path=embedded"]


def make_root(path: Path, *overrides: str) -> ExperimentRoot:
    config = preset("tiny").with_overrides([*FAST, *overrides])
    config = dataclasses.replace(config, database=resolve_database(config.database))
    return ExperimentRoot.create_or_open(str(path), config.to_dict())


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Any]:
    """``runtime(role, *overrides)``: a started job of a fresh tiny experiment (heartbeat stopped after)."""
    started: list[Runtime] = []

    def start(role: str, *overrides: str, name: str = "exp") -> Runtime:
        rt = Runtime.start(role, str(make_root(tmp_path / name, *overrides).url), 0, None)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt._closed.set()


def generated_records(rt: Runtime, count: int = 3) -> list[GenerationRecord]:
    """Real generation records (rollouts of the baseline policy on the embedded database)."""
    ws = rt.workspace
    generator = TheoremGenerator(
        ws, BaselinePolicy(ws.db, grammar=ws.grammar, seed=0), GenerationSettings(max_steps=3, min_steps=2), seed=1
    )
    records: list[GenerationRecord] = []
    while len(records) < count:
        for rollout in generator.run(8):
            chosen = generator.select(rollout)
            if chosen is not None and len(records) < count:
                records.append(GenerationRecord.of_generated(chosen, generator_version=0, source_stream="g"))
    return records


def tiny_toy_model(seed: int = 0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig.named("tiny", vocab_size=24))


def new_database_model(db: Any, size: str, *, max_source_tokens: int, max_target_tokens: int) -> tuple[Seq2Seq, Any]:
    vocab = build_vocabulary(db)
    return new_model(vocab, size, max_source_len=max_source_tokens, max_target_len=max_target_tokens), vocab


def generator_job(rt: Runtime) -> TrainerJob:
    return _trainer.new_job(rt, "generator", rt.config.generator_trainer, rt.config.generator_model, ("generator",))


def prover_job(rt: Runtime, section: Any = None) -> TrainerJob:
    return _trainer.new_job(rt, "prover", section or rt.config.prover_trainer, rt.config.prover_model, ("backward",))


def logprob(model: Seq2Seq, example: tuple[list[int], list[int]]) -> float:
    model.eval()
    with torch.no_grad():
        values, _ = target_logprobs(model, [example[0]], [example[1]])
    return float(values.sum())


# --- the generator trainer: REINFORCE, baseline, entropy ------------------------------------------------------

GOOD = ([11, 12, 13], [14, 15])
BAD = ([16, 17, 18], [19, 20])


def test_reinforce_raises_rewarded_and_lowers_unrewarded_rollouts(runtime) -> None:
    rt = runtime("generator_trainer")
    trainer = generator_job(rt)
    trainer.extra_state["baseline"] = 0.5
    examples, weights = generator_trainer.weigh(
        trainer, [{"examples": [GOOD], "reward": 1.0}, {"examples": [BAD], "reward": 0.0}]
    )
    assert weights == [0.5, -0.5]
    model = tiny_toy_model()
    before = (logprob(model, GOOD), logprob(model, BAD))
    optimizer = Seq2SeqTrainer(model, lr=3e-3, warmup_steps=0)
    for _ in range(5):
        optimizer.step(examples, weights)
    after = (logprob(model, GOOD), logprob(model, BAD))
    assert after[0] > before[0] + 0.1  # above the baseline: more likely
    assert after[1] < before[1] - 0.1  # below it: less likely


def test_rewards_equal_to_the_baseline_teach_nothing(runtime) -> None:
    rt = runtime("generator_trainer")
    trainer = generator_job(rt)
    trainer.extra_state["baseline"] = 1.0
    _, weights = generator_trainer.weigh(trainer, [{"examples": [GOOD, BAD], "reward": 1.0}])
    assert weights == [0.0, 0.0]


def test_the_baseline_follows_the_rewards(runtime) -> None:
    rt = runtime("generator_trainer", "generator_trainer.baseline_decay=0.5")
    trainer = generator_job(rt)
    item = [{"examples": [GOOD], "reward": 1.0}]
    assert generator_trainer.weigh(trainer, item)[1] == [1.0]  # nothing observed: baseline 0
    generator_trainer.observe(trainer, 0.0)
    assert generator_trainer.baseline(trainer) == 0.0
    for _ in range(3):
        generator_trainer.observe(trainer, 1.0)
    assert generator_trainer.baseline(trainer) == pytest.approx(0.875)  # 0 -> 0.5 -> 0.75 -> 0.875
    assert generator_trainer.weigh(trainer, item)[1] == [pytest.approx(0.125)]
    assert trainer.extra_state["rewards_seen"] == 4  # published with each version: survives a restart


def test_the_entropy_bonus_spreads_the_policy(runtime) -> None:
    rt = runtime("generator_trainer", "generator_trainer.entropy_weight=0.5")
    trainer = generator_job(rt)
    model, vocab = new_database_model(rt.workspace.db, "tiny", max_source_tokens=64, max_target_tokens=32)
    _trainer.set_model(trainer, model, vocab)
    assert trainer.trainer.entropy_weight == 0.0  # bootstrapping (supervised): no bonus
    _trainer.commit(trainer, None)
    generator_trainer.start(trainer)
    assert trainer.trainer.entropy_weight == 0.5  # policy-gradient training: the configured bonus

    def entropy(m: Seq2Seq) -> float:
        m.eval()
        with torch.no_grad():
            _, values, mask = target_logprobs_and_entropy(m, [GOOD[0]], [GOOD[1]])
        return float(values.sum() / mask.sum())

    results = {}
    for weight in (0.0, 1.0):
        toy = tiny_toy_model()
        sharpen = Seq2SeqTrainer(toy, lr=1e-2, warmup_steps=0)
        for _ in range(20):  # make the toy model confident first
            sharpen.step([GOOD])
        start = entropy(toy)
        spread = Seq2SeqTrainer(toy, lr=3e-3, warmup_steps=0)
        spread.entropy_weight = weight
        for _ in range(5):
            spread.step([GOOD], [0.0])  # no reward signal at all: only the bonus can move the model
        results[weight] = entropy(toy) - start
    assert results[1.0] > 0.05
    assert abs(results[0.0]) < results[1.0] / 5


# --- routing: what each trainer keeps ---------------------------------------------------------------------------


def result_of(generation: GenerationRecord, **flags: bool) -> ResultRecord:
    """A failed attempt's result on ``generation``, routed by ``flags`` (a flag not given is False)."""
    routing = {"for_generator_trainer": False, "for_prover_trainer": False, **flags}
    return ResultRecord(
        id=generation.id,
        generation=generation,
        prover_version=0,
        proved=False,
        attempts=1,
        successes=0,
        proof=None,
        search={},
        reward=1.0,
        **routing,
    )


def test_the_generator_trainer_keeps_exactly_the_records_flagged_for_it(runtime) -> None:
    rt = runtime("generator_trainer")
    trainer = generator_job(rt)
    model, vocab = new_database_model(rt.workspace.db, "tiny", max_source_tokens=256, max_target_tokens=64)
    _trainer.set_model(trainer, model, vocab)
    generation = generated_records(rt, 1)[0]
    kept = generator_trainer.derive(
        trainer, result_of(generation, for_generator_trainer=True, for_prover_trainer=False)
    )
    assert kept is not None and kept[0] and kept[1] == 1.0
    assert (
        generator_trainer.derive(trainer, result_of(generation, for_generator_trainer=False, for_prover_trainer=True))
        is None
    )
    assert generator_trainer.derive(trainer, result_of(generation, for_prover_trainer=True)) is None  # no flag


def test_the_prover_trainer_keeps_exactly_the_records_flagged_for_it(runtime) -> None:
    rt = runtime("prover_trainer")
    trainer = prover_job(rt)
    model, vocab = new_database_model(rt.workspace.db, "tiny", max_source_tokens=256, max_target_tokens=64)
    _trainer.set_model(trainer, model, vocab)
    generation = generated_records(rt, 1)[0]
    kept = prover_trainer.derive(trainer, result_of(generation, for_prover_trainer=True, for_generator_trainer=False))
    assert kept is not None and kept[0]
    assert (
        prover_trainer.derive(trainer, result_of(generation, for_prover_trainer=False, for_generator_trainer=True))
        is None
    )
    assert prover_trainer.derive(trainer, result_of(generation, for_generator_trainer=True)) is None


def trained_prover_job(rt: Runtime, hindsight_max_nodes: int) -> TrainerJob:
    section = dataclasses.replace(rt.config.prover_trainer, hindsight_max_nodes=hindsight_max_nodes)
    job = prover_job(rt, section)
    model, vocab = new_database_model(rt.workspace.db, "tiny", max_source_tokens=256, max_target_tokens=64)
    _trainer.set_model(job, model, vocab)
    return job


def published_examples(
    job: TrainerJob, generation: GenerationRecord, exclude: frozenset[tuple[str, ...]] = frozenset()
) -> list[tuple[list[int], list[int]]]:
    """What the prover learns from a generated record before hindsight: its published theorem's examples (none
    for a step proving an ``exclude``d statement)."""
    ws = job.rt.workspace
    theorem, tree = generation.goal.theorem(ws), ProofTree.from_json(generation.proof)
    return tree_examples(job.codec, ws.db, theorem, tree, "backward", exclude=exclude)  # type: ignore[arg-type]


def test_without_hindsight_the_prover_learns_the_published_theorem_only(runtime) -> None:
    rt = runtime("prover_trainer")
    job = trained_prover_job(rt, 0)
    generation = scripted_record(rt.workspace)
    kept = prover_trainer.derive(job, result_of(generation, for_prover_trainer=True))
    assert kept is not None and kept[0] == published_examples(job, generation)


def test_hindsight_adds_the_intermediate_theorems_to_the_same_replay_item(runtime) -> None:
    rt = runtime("prover_trainer")
    job = trained_prover_job(rt, 4)
    generation = scripted_record(rt.workspace)
    kept = prover_trainer.derive(job, result_of(generation, for_prover_trainer=True))
    assert kept is not None
    published = published_examples(job, generation)
    beside = next(t for t in hindsight_theorems(rt.workspace, generation, max_nodes=4, max_statement_tokens=128)
                  if " ".join(t.theorem.statement) == INTERMEDIATE[1])  # fmt: skip
    new = [e for e in tree_examples(job.codec, rt.workspace.db, beside.theorem, beside.tree, "backward")  # type: ignore[arg-type]
           if e not in published]  # fmt: skip
    # the theorem inside the published proof has the same (hypothesis-free) examples: deduplicated away
    assert len(new) == 2 and kept[0] == published + new
    assert rt.counters["hindsight_theorems"] == 2
    assert prover_trainer.derive(job, result_of(generation, for_generator_trainer=True)) is None  # same routing


def test_hindsight_never_trains_on_a_held_out_statement(runtime, monkeypatch) -> None:
    rt = runtime("prover_trainer")
    job = trained_prover_job(rt, 4)
    generation = scripted_record(rt.workspace)
    published = published_examples(job, generation)
    held_out = {tuple(text.split()) for text in INTERMEDIATE}
    monkeypatch.setitem(vars(rt.workspace), "held_out_statements", frozenset(held_out))
    kept = prover_trainer.derive(job, result_of(generation, for_prover_trainer=True))
    # no relabelled theorem, and the published proof's own step proving a held-out statement is left out too
    assert kept is not None and kept[0] == published_examples(job, generation, frozenset(held_out))
    assert len(kept[0]) < len(published)
    inner = f"|- ( {A} -> ( ch -> {A} ) )"  # a step inside the theorem beside the published proof
    monkeypatch.setitem(vars(rt.workspace), "held_out_statements", frozenset({tuple(inner.split())}))
    kept = prover_trainer.derive(job, result_of(generation, for_prover_trainer=True))
    assert kept is not None and len(kept[0]) == len(published) + 1  # the relabelled theorem's own step only


# --- the prover actor: outcomes, rewards, flags, attempts -------------------------------------------------------


def tries(generation: GenerationRecord, *proved: bool) -> list[SearchResult]:
    proof = ProofTree.from_json(generation.proof)
    return [SearchResult(label="g", prover="forward-sampling", proved=p, proof=proof if p else None) for p in proved]


@pytest.mark.parametrize("generator_only_failed", [False, True])
@pytest.mark.parametrize("prover_only_failed", [False, True])
def test_result_records_carry_the_outcome_reward_and_routing(
    runtime, generator_only_failed: bool, prover_only_failed: bool
) -> None:
    rt = runtime(
        "prover_actor",
        f"routing.generator_send_only_failed={generator_only_failed}",
        f"routing.prover_send_only_failed={prover_only_failed}",
    )
    generation = generated_records(rt, 1)[0]
    failed = prover_actor.result_record(rt, generation, tries(generation, False), 0)
    proved = prover_actor.result_record(rt, generation, tries(generation, True), 0)
    assert (failed.proved, failed.successes, failed.reward, failed.proof) == (False, 0, 1.0, None)
    assert (proved.proved, proved.successes, proved.reward) == (True, 1, 0.0)
    assert proved.proof == generation.proof
    assert failed.for_generator_trainer and failed.for_prover_trainer  # a failure goes to both
    assert proved.for_generator_trainer is not generator_only_failed
    assert proved.for_prover_trainer is not prover_only_failed
    dataset = dataclasses.replace(generation, source="dataset")  # database theorems never train the generator
    assert not prover_actor.result_record(rt, dataset, tries(generation, False), 0).for_generator_trainer


BAND = ["rewards.kind=band", "rewards.attempts=4", "rewards.tau=0.5", "prover_actor.search.prover=forward-sampling"]


def test_band_rewards_pay_hard_but_provable_goals(runtime) -> None:
    rt = runtime("prover_actor", *BAND)
    generation = generated_records(rt, 1)[0]
    rewards = [
        prover_actor.result_record(rt, generation, tries(generation, *outcome), 0).reward
        for outcome in [
            (True, False, False, False),
            (True, True, False, False),
            (True, True, True, False),
            (False,) * 4,
            (True,) * 4,
        ]
    ]
    assert rewards == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_band_rewards_search_each_goal_attempts_times(runtime, monkeypatch) -> None:
    calls: list[int] = []

    def fake_prove(db, theorems, policy, settings, **kwargs):
        calls.append(len(theorems))
        return [SearchResult(label=t.label, prover="forward-sampling", proved=len(calls) == 1) for t in theorems]

    monkeypatch.setattr(prover_actor, "prove_theorems", fake_prove)
    for overrides, attempts in ((BAND, 4), ([], 1)):
        calls.clear()
        rt = runtime("prover_actor", *overrides, name=f"exp{attempts}")
        generations = generated_records(rt, 2)
        batch = ShardBatch("generator-actor-00-to-00", 0, {}, [g.to_json() for g in generations])
        results = prover_actor.prove_batch(rt, batch, {"policy": None, "version": 0}, rt.config.prover_actor.search)
        assert calls == [2] * attempts and prover_actor.attempts_per_goal(rt.config) == attempts
        assert [(r.attempts, r.successes) for r in results] == [(attempts, 1)] * 2


# --- trainer batches, refill, retention ---------------------------------------------------------------------------

DATABASE_EXAMPLE = ((1,), (2,))
GENERATED_EXAMPLE = ((3,), (4,))


def batch_trainer(rt: Runtime, **section: Any) -> TrainerJob:
    trainer = prover_job(rt, dataclasses.replace(rt.config.prover_trainer, **section))
    trainer.database = [DATABASE_EXAMPLE]  # type: ignore[list-item]
    return trainer


def composition(trainer: TrainerJob) -> tuple[int, int]:
    examples, _ = _trainer.mixed_batch(trainer, prover_trainer.RULES)
    return examples.count(DATABASE_EXAMPLE), examples.count(GENERATED_EXAMPLE)


def test_batches_wait_for_replay_min_then_mix_by_supervised_weight(runtime) -> None:
    rt = runtime("prover_trainer")
    trainer = batch_trainer(rt, batch_size=8, replay_min=3, supervised_weight=0.25)
    for index in range(2):
        trainer.buffer.add("s", (0, index), {"examples": [GENERATED_EXAMPLE], "reward": 1.0})
    assert composition(trainer) == (8, 0)  # 2 < replay_min: database only
    trainer.buffer.add("s", (0, 2), {"examples": [GENERATED_EXAMPLE], "reward": 1.0})
    assert composition(trainer) == (2, 6)  # a quarter of the batch from the database
    trainer.section = dataclasses.replace(trainer.section, supervised_weight=0.0)
    assert composition(trainer) == (0, 8)
    trainer.section = dataclasses.replace(trainer.section, supervised_weight=1.0)
    assert composition(trainer) == (8, 0)
    trainer.section = dataclasses.replace(trainer.section, supervised_weight=0.5, replay_min=4)
    assert composition(trainer) == (8, 0)


@dataclasses.dataclass(frozen=True)
class EchoRecord(StreamRecord):
    """A test stream's record: a reward alone."""

    RECORD_TYPE: ClassVar[str] = "echo"
    reward: float


ECHO = _trainer.Rules(  # each record becomes one fixed example with the record's reward (no model needed)
    derive=lambda job, record: ([GENERATED_EXAMPLE], record.reward), weigh=_trainer.one_example_each
)


def test_a_restarted_trainer_refills_its_buffer_from_the_committed_window(runtime, monkeypatch) -> None:
    rt = runtime("prover_trainer")
    writer = ShardWriter(rt.root, "prover-actor-00", max_records=2, max_age_s=60.0)
    for reward in range(6):  # shards 0, 1, 2 of two records each
        writer.append({"reward": reward})
    writer.close()
    trainer = prover_job(rt)
    trainer.input_record = EchoRecord
    committed = SimpleNamespace(
        version=3, meta={"cursors": {"0": {"prover-actor-00": 2}}, "windows": {"0": {"prover-actor-00": [0, 1]}}}
    )
    trainer.store = SimpleNamespace(latest=lambda: committed)  # type: ignore[assignment]
    monkeypatch.setattr(_trainer, "resume", lambda job: committed)
    cursor = _trainer.start(trainer, ECHO)
    assert cursor == Cursor({"prover-actor-00": 2})
    assert [(i.position, i.record["reward"]) for i in trainer.buffer] == [((0, 1), 1.0), ((1, 0), 2.0), ((1, 1), 3.0)]
    assert trainer.records_in == 0  # refilled records were counted before the restart


def test_old_checkpoint_versions_are_pruned(runtime, monkeypatch) -> None:
    monkeypatch.setattr(_trainer, "RETENTION_GRACE_S", 0.0)
    rt = runtime("prover_trainer", "prover_trainer.keep_checkpoints=2")
    trainer = prover_job(rt)
    model, vocab = new_database_model(rt.workspace.db, "tiny", max_source_tokens=64, max_target_tokens=32)
    _trainer.set_model(trainer, model, vocab)
    for _ in range(4):
        _trainer.commit(trainer, None)
    assert CheckpointStore(rt.root, "prover").versions() == [2, 3]


def test_the_evaluator_takes_every_nth_version_and_the_latest() -> None:
    store = SimpleNamespace(versions=lambda: list(range(8)))
    done: set[Any] = set()
    order = []
    while (version := evaluator.next_version(store, done, 3)) is not None:  # type: ignore[arg-type]
        order.append(version)
        done.add(version)
    assert order == [0, 7, 6, 3]
    assert evaluator.next_version(store, set(), 1) == 0  # type: ignore[arg-type]
    assert evaluator.next_version(store, {0}, 1) == 7  # type: ignore[arg-type]


# --- seeds ----------------------------------------------------------------------------------------------------------


def test_job_seeds_are_reproducible_and_never_read_the_clock(runtime, monkeypatch) -> None:
    first = runtime("prover_trainer", name="a")
    monkeypatch.setattr("time.time", lambda: 4.0e9)  # a different start time changes nothing
    again = runtime("prover_trainer", name="b")
    assert first.seed == again.seed == job_seed(first.config.seed, "prover-trainer-00", 0)
    again.restart = 5
    assert again.seed != first.seed and again.seed == job_seed(first.config.seed, "prover-trainer-00", 5)
    other_seed = runtime("prover_trainer", "seed=1", name="c")
    assert other_seed.seed != first.seed
    assert job_seed(0, "prover-trainer-00", 0) != job_seed(0, "prover-trainer-01", 0)
    assert job_seed(0, "prover-trainer-00", 0) != job_seed(0, "generator-trainer-00", 0)


def test_a_resumed_trainer_reseeds_from_its_step(runtime) -> None:
    rt = runtime("prover_trainer")
    trainer = prover_job(rt)
    _trainer.reseed(trainer, 7)
    assert rt.restart == 7
    draws = [trainer.rng.random() for _ in range(3)]
    _trainer.reseed(trainer, 7)
    assert [trainer.rng.random() for _ in range(3)] == draws
    _trainer.reseed(trainer, 8)
    assert [trainer.rng.random() for _ in range(3)] != draws
    model, vocab = new_database_model(rt.workspace.db, "tiny", max_source_tokens=64, max_target_tokens=32)
    _trainer.set_model(trainer, model, vocab)
    trainer.trainer.steps = 7
    _trainer.commit(trainer, None)
    rt.restart = 0
    _trainer.resume(trainer)  # the restart counter is the committed step
    assert rt.restart == 7 and [trainer.rng.random() for _ in range(3)] == draws


def test_a_restarted_generator_actor_seeds_from_the_shards_it_published(tmp_path: Path, monkeypatch) -> None:
    from jobs import generator_actor

    seeds: list[int] = []
    original = generator_actor.TheoremGenerator

    def recording(*args: Any, seed: int = 0, **kwargs: Any) -> Any:
        seeds.append(seed)
        return original(*args, seed=seed, **kwargs)

    monkeypatch.setattr(generator_actor, "TheoremGenerator", recording)
    config = preset("fixed_generator").with_overrides(
        ["database.path=embedded", "generator_trainer.bootstrap_steps=2", "generator_actor.shard_records=1"]
    )
    config = dataclasses.replace(config, database=resolve_database(config.database))
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), config.to_dict())
    shards = []
    for _ in range(2):
        assert generator_actor.main(root.url, rank=0, minutes=1.0, max_records=2) == "finished"
        shards.append(sum(stream_bounds(root, stream)[1] for stream in root.streams("generator-actor-00")))
    assert shards[0] >= 1
    name = "generator-actor-00"
    assert seeds == [job_seed(config.seed, name, 0), job_seed(config.seed, name, shards[0])]  # reproducible, new
