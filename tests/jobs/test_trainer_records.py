"""How records become training items: the generator's rewards in the heuristic setups, the REINFORCE baseline's
first steps and published metrics, what :func:`jobs._trainer.absorb` counts, keeps and skips, how batches mix,
the prover actor's result records and the prover trainer's examples (written against the mutants
scripts/mutation.sh found surviving; tiny models, the embedded database)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.databases import resolve_database
from configs.presets import preset
from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.records import GenerationRecord, ResultRecord, decode_records
from core.errors import RecordError, StorageError
from core.metamath.prooftree import ProofTree, tree_from_proof
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.search.baseline import BaselinePolicy
from core.search.runner import SearchResult
from core.search.settings import SearchSettings
from core.storage import ExperimentRoot, ShardBatch
from jobs import _trainer, generator_trainer, prover_actor, prover_trainer
from jobs._group import Group
from jobs._role import Runtime
from jobs._trainer import TrainerJob
from tests.sample_records import generation as sample_generation
from tests.sample_records import result as sample_result

FAST = ["generator_trainer.bootstrap_steps=0", "prover_trainer.bootstrap_steps=0", "database.path=embedded"]
EXAMPLE = ((3,), (4,))


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Any]:
    """``runtime(role, *overrides)``: a started job of a fresh tiny experiment (heartbeat stopped after)."""
    started: list[Runtime] = []

    def start(role: str, *overrides: str, name: str = "exp") -> Runtime:
        config = preset("tiny").with_overrides([*FAST, *overrides])
        config = dataclasses.replace(config, database=resolve_database(config.database))
        root = ExperimentRoot.create_or_open(str(tmp_path / name), config.to_dict())
        rt = Runtime.start(role, str(root.url), 0, None)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt._closed.set()


def generator_job(rt: Runtime, with_model: bool = False) -> TrainerJob:
    job = _trainer.new_job(rt, "generator", rt.config.generator_trainer, rt.config.generator_model, ("generator",))
    if with_model:
        vocab = build_vocabulary(rt.workspace.db)
        _trainer.set_model(job, new_model(vocab, "tiny", max_source_len=256, max_target_len=64), vocab)
    return job


def one_generation(rt: Runtime) -> GenerationRecord:
    """A real generation record (a rollout of the baseline policy on the embedded database)."""
    ws = rt.workspace
    generator = TheoremGenerator(ws, BaselinePolicy(ws.db, grammar=ws.grammar, seed=0),
                                 GenerationSettings(max_steps=3, min_steps=2), seed=1)  # fmt: skip
    while True:
        for rollout in generator.run(8):
            chosen = generator.select(rollout)
            if chosen is not None:
                return GenerationRecord.of_generated(chosen, generator_version=0, source_stream="g")


def result_of(generation: GenerationRecord, record_id: str = "r", **fields: Any) -> ResultRecord:
    """A result record on ``generation`` named ``record_id`` (routed to both trainers, reward 0 unless told)."""
    return dataclasses.replace(sample_result(generation), id=record_id, **fields)


def without(record: GenerationRecord | ResultRecord, *path: str) -> dict[str, Any]:
    """``record``'s JSON without the field at ``path`` (a record written before the field was required)."""
    data = record.to_json()
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return data


# --- the generator trainer's reward in the heuristic setups -------------------------------------------------------


HEURISTIC_SETUPS = [
    ["setup=generator-only", "prover_actor.count=0", "prover_trainer.count=0", "evaluator.count=0"],
    ["setup=generator-reward"],
]


@pytest.mark.parametrize("setup", HEURISTIC_SETUPS, ids=["generator-only", "generator-reward"])
def test_heuristic_setups_reward_the_squashed_heuristic_less_the_duplicate_penalty(runtime, setup: list[str]) -> None:
    rt = runtime("generator_trainer", *setup, "rewards.duplicate_penalty=0.25")
    job = generator_job(rt, with_model=True)
    generation = one_generation(rt)
    fresh = generator_trainer.derive(job, dataclasses.replace(generation, heuristic=3.0, duplicate=False))
    assert fresh is not None and fresh[0] and fresh[1] == pytest.approx(0.75)  # 3 / (1 + 3)
    again = generator_trainer.derive(job, dataclasses.replace(generation, heuristic=3.0, duplicate=True))
    assert again is not None and again[1] == pytest.approx(0.5)
    unscored = generator_trainer.derive(job, dataclasses.replace(generation, heuristic=0.0, duplicate=False))
    assert unscored is not None and unscored[1] == 0.0
    with pytest.raises(RecordError, match=r"generation record g/\w+, field 'heuristic': should be a number, got null"):
        GenerationRecord.parse(dict(generation.to_json(), heuristic=None), stream="g")  # unscored is not a record
    assert generator_trainer.derive(job, dataclasses.replace(generation, source="dataset")) is None  # never its own
    assert generator_trainer.derive(job, dataclasses.replace(generation, rollout=None)) is None


def test_an_adversarial_record_is_rewarded_by_the_prover_not_by_its_heuristic(runtime) -> None:
    rt = runtime("generator_trainer", "rewards.duplicate_penalty=0.25")
    job = generator_job(rt, with_model=True)
    generation = dataclasses.replace(one_generation(rt), heuristic=3.0, duplicate=True)
    kept = generator_trainer.derive(job, result_of(generation, reward=0.0, for_generator_trainer=True))
    assert kept is not None and kept[0] and kept[1] == 0.0
    no_rollout = dataclasses.replace(generation, rollout=None)
    assert generator_trainer.derive(job, result_of(no_rollout, reward=1.0, for_generator_trainer=True)) is None


def test_a_broken_rollout_is_skipped_counted_and_logged(runtime, caplog) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt, with_model=True)
    data = result_of(one_generation(rt), "r-17", reward=1.0, for_generator_trainer=True).to_json()
    data["generation"]["rollout"] = {"hypotheses": [], "steps": [{"nonsense": 1}]}
    [broken] = decode_records(ResultRecord, {}, [data], stream="s")  # the trainer's reader decodes it so
    with caplog.at_level(logging.WARNING, logger="jobs._trainer"):
        assert _trainer.absorb(job, generator_trainer.RULES, "s", (0, 0), broken) == 0
    assert rt.counters["rejected_records"] == 1
    assert (job.records_in, job.skipped, len(job.buffer)) == (1, 1, 0)
    assert (
        caplog.records[-1]
        .getMessage()
        .startswith(
            f"{rt.name}: skipping a malformed record: stream s: result record r-17, field 'generation', "
            "field 'rollout', field 'steps'[0]: field 'label' is missing"
        )
    )


def test_a_rollout_citing_an_unknown_label_is_rejected_and_logged(runtime, caplog) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt, with_model=True)
    good = result_of(one_generation(rt), "r-18", reward=1.0, for_generator_trainer=True)
    assert generator_trainer.derive(job, good) is not None  # its twin, as generated, is trained on
    rollout = good.generation.rollout
    assert rollout is not None
    bad_step = dataclasses.replace(rollout.steps[0], label="no-such-label")
    bad_rollout = dataclasses.replace(rollout, steps=(bad_step, *rollout.steps[1:]))
    bad = dataclasses.replace(good, generation=dataclasses.replace(good.generation, rollout=bad_rollout))
    with caplog.at_level(logging.WARNING, logger="jobs.generator_trainer"):
        assert generator_trainer.derive(job, bad) is None
    assert rt.counters["rejected_records"] == 1
    assert "r-18" in caplog.text and "no-such-label" in caplog.text


# --- the REINFORCE baseline ---------------------------------------------------------------------------------------


def test_the_baseline_starts_at_the_first_reward_and_is_published(runtime) -> None:
    rt = runtime("generator_trainer", "generator_trainer.baseline_decay=0.5")
    job = generator_job(rt)
    generator_trainer.observe(job, 0.8)
    assert generator_trainer.baseline(job) == pytest.approx(0.8)  # no average of nothing with the first reward
    generator_trainer.observe(job, 0.4)
    assert generator_trainer.baseline(job) == pytest.approx(0.6)
    generator_trainer.observe(job, 0.123456)
    assert rt.counters["reward_baseline"] == round(0.5 * 0.6 + 0.5 * 0.123456, 4)  # the gauge, rounded
    assert rt.counters["reward_sum"] == pytest.approx(0.8 + 0.4 + 0.123456)


# --- absorb: what enters the replay buffer ----------------------------------------------------------------------


RECORD = sample_result(sample_generation("g/1"))
USELESS = sample_result(sample_generation("g/useless"))  # echo derives no example from it


def echo(value: float | None, observed: list[float] | None = None) -> _trainer.Rules:
    """Rules deriving one fixed example of reward ``value`` from every record (None: derive nothing); the rewards
    it is told to observe are appended to ``observed``."""
    observed = [] if observed is None else observed

    def derive(job: TrainerJob, record: ResultRecord) -> tuple[list[Any], float] | None:
        if not isinstance(job, TrainerJob) or not isinstance(record, ResultRecord):
            raise TypeError("derive is given the trainer job and the typed record")
        return None if value is None else ([EXAMPLE] if record.id != USELESS.id else [], value)

    return _trainer.Rules(
        derive=derive,
        weigh=_trainer.one_example_each,
        observe=lambda job, v: observed.append(v if isinstance(job, TrainerJob) else float("nan")),
    )


def test_absorb_keeps_a_useful_record_with_its_reward_as_weight(runtime) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt)
    observed: list[float] = []
    rules = echo(0.7, observed)
    assert _trainer.absorb(job, rules, "s", (2, 5), RECORD) == 1
    assert _trainer.absorb(job, rules, "s", (2, 6), RECORD) == 1
    assert [(i.stream, i.position, i.record, i.weight) for i in job.buffer] == [
        ("s", (2, 5), {"examples": [EXAMPLE], "reward": 0.7}, 0.7),
        ("s", (2, 6), {"examples": [EXAMPLE], "reward": 0.7}, 0.7),
    ]
    assert (job.records_in, job.skipped, job.new_rewards) == (2, 0, [0.7, 0.7])
    assert observed == [0.7, 0.7]


def test_absorb_counts_but_skips_records_that_yield_nothing(runtime) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt)
    assert _trainer.absorb(job, echo(None), "s", (0, 0), RECORD) == 0
    assert _trainer.absorb(job, echo(1.0), "s", (0, 1), USELESS) == 0
    assert (job.records_in, job.skipped, len(job.buffer), job.new_rewards) == (2, 2, 0, [])


def test_refilled_records_are_not_counted_or_observed_again(runtime) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt)
    observed: list[float] = []
    rules = echo(0.5, observed)
    assert _trainer.absorb(job, rules, "s", (0, 0), RECORD, new=False) == 1
    assert _trainer.absorb(job, echo(None), "s", (0, 1), RECORD, new=False) == 0
    assert (job.records_in, job.skipped, job.new_rewards, len(job.buffer)) == (0, 0, [], 1)
    assert observed == []


def test_each_record_goes_to_exactly_one_rank_of_a_group(runtime) -> None:
    rt = runtime("generator_trainer")
    ranks = [generator_job(rt), generator_job(rt)]
    for rank, job in enumerate(ranks):
        job.group = Group(rank, 2)
    kept = [[_trainer.absorb(job, echo(1.0), "s", (seq, index), RECORD) for seq in range(3) for index in range(4)]
            for job in ranks]  # fmt: skip
    assert [a + b for a, b in zip(*kept)] == [1] * 12
    assert 0 < sum(kept[0]) < 12
    assert ranks[0].records_in + ranks[1].records_in == 12  # a record another rank owns is not read in


# --- batches: database examples and replayed items ---------------------------------------------------------------

DATABASE_EXAMPLE = ((1,), (2,))
HALF = _trainer.Rules(
    derive=lambda job, record: None, weigh=lambda job, items: ([EXAMPLE] * len(items), [0.5] * len(items))
)


def batch_job(rt: Runtime, database: list[Any], **section: Any) -> TrainerJob:
    job = generator_job(rt)
    job.section = dataclasses.replace(job.section, batch_size=8, **section)
    job.database = database
    return job


def test_a_batch_weighs_database_examples_one_and_replayed_items_as_the_role_says(runtime) -> None:
    rt = runtime("generator_trainer")
    job = batch_job(rt, [DATABASE_EXAMPLE], replay_min=1, supervised_weight=0.25)
    job.buffer.add("s", (0, 0), {"examples": [EXAMPLE], "reward": 1.0})
    examples, weights = _trainer.mixed_batch(job, HALF)
    assert examples == [DATABASE_EXAMPLE] * 2 + [EXAMPLE] * 6
    assert weights == [1.0] * 2 + [0.5] * 6


def test_one_replayed_item_is_enough_when_replay_min_is_zero(runtime) -> None:
    rt = runtime("generator_trainer")
    job = batch_job(rt, [DATABASE_EXAMPLE], replay_min=0, supervised_weight=0.0)
    assert _trainer.mixed_batch(job, HALF) == ([], [])  # empty buffer, no database share: nothing to train on
    job.buffer.add("s", (0, 0), {"examples": [EXAMPLE], "reward": 1.0})
    assert _trainer.mixed_batch(job, HALF) == ([EXAMPLE] * 8, [0.5] * 8)


def test_without_a_train_split_a_batch_holds_only_replayed_items(runtime) -> None:
    rt = runtime("generator_trainer")
    job = batch_job(rt, [], replay_min=1, supervised_weight=0.25)
    job.buffer.add("s", (0, 0), {"examples": [EXAMPLE], "reward": 1.0})
    assert _trainer.mixed_batch(job, HALF) == ([EXAMPLE] * 6, [0.5] * 6)


def test_the_train_split_examples_need_a_model_and_are_built_once(runtime) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt)
    with pytest.raises(StorageError, match=r"generator-trainer-00: no model yet \(resume first\)"):
        _trainer.train_split_examples(job)
    job = generator_job(rt, with_model=True)
    examples = _trainer.train_split_examples(job)
    assert examples and all(source and target for source, target in examples)
    assert _trainer.train_split_examples(job) is examples


# --- the prover actor's result record and the prover trainer's examples -----------------------------------------


def tries(generation: GenerationRecord, *proved: bool) -> list[SearchResult]:
    proof = ProofTree.from_json(generation.proof)
    return [SearchResult(label="g", prover="forward-sampling", proved=p, proof=proof if p else None) for p in proved]


def test_a_result_record_names_its_goal_and_prover_and_counts_the_outcome(runtime) -> None:
    rt = runtime("prover_actor")
    generation = one_generation(rt)
    failed = prover_actor.result_record(rt, generation, tries(generation, False), 7)
    proved = prover_actor.result_record(rt, generation, tries(generation, True), 7)
    for record in (failed, proved):
        assert (record.id, record.generation, record.prover_version) == (generation.id, generation, 7)
        assert record.search["prover"] == "forward-sampling" and "proof" not in record.search  # proof once
    assert (rt.counters["attempted"], rt.counters["proved"]) == (2, 1)


def test_a_result_reward_is_shaped_by_the_heuristic_and_penalised_for_a_duplicate(runtime) -> None:
    rt = runtime("prover_actor", "rewards.heuristic_weight=0.5", "rewards.duplicate_penalty=0.25")
    generation = one_generation(rt)
    rewarded = [
        prover_actor.result_record(
            rt, dataclasses.replace(generation, heuristic=h, duplicate=d), tries(generation, False), 0
        ).reward
        for h, d in ((3.0, False), (3.0, True), (0.0, False))
    ]
    assert rewarded == [pytest.approx(1.375), pytest.approx(1.125), 1.0]  # 1 + 0.5 * 3/4 (- 0.25); unscored: 1


def test_band_rewards_use_the_configured_tau(runtime) -> None:
    rt = runtime("prover_actor", "rewards.kind=band", "rewards.attempts=4", "rewards.tau=0.25",
                 "prover_actor.search.prover=forward-sampling")  # fmt: skip
    generation = one_generation(rt)
    rewards = [prover_actor.result_record(rt, generation, tries(generation, *outcome), 0).reward
               for outcome in ((True, False, False, False), (True, True, False, False))]  # fmt: skip
    assert rewards == [1.0, 0.0]  # 2 of 4 is above tau = 1/4


def test_the_hard_reward_searches_each_goal_once_whatever_attempts_says(runtime) -> None:
    rt = runtime("prover_actor", "rewards.kind=hard", "rewards.attempts=4")
    assert prover_actor.attempts_per_goal(rt.config) == 1


def prover_job(rt: Runtime, formats: tuple[str, ...] = ("backward",)) -> TrainerJob:
    job = _trainer.new_job(rt, "prover", rt.config.prover_trainer, rt.config.prover_model, formats)
    vocab = build_vocabulary(rt.workspace.db)
    _trainer.set_model(job, new_model(vocab, "tiny", max_source_len=256, max_target_len=64), vocab)
    return job


def routed(generation: GenerationRecord, **fields: Any) -> ResultRecord:
    return result_of(generation, "r-9", **{"reward": 0.5, "for_prover_trainer": True, **fields})


def test_the_prover_trainer_learns_every_format_and_keeps_the_reward(runtime) -> None:
    rt = runtime("prover_trainer")
    generation = one_generation(rt)
    both = prover_trainer.derive(prover_job(rt, ("backward", "forward")), routed(generation))
    backward = prover_trainer.derive(prover_job(rt, ("backward",)), routed(generation))
    forward = prover_trainer.derive(prover_job(rt, ("forward",)), routed(generation))
    assert both is not None and backward is not None and forward is not None
    assert both == (backward[0] + forward[0], 0.5)
    unrewarded = prover_trainer.derive(prover_job(rt), routed(generation, reward=0.0))
    assert unrewarded is not None and unrewarded[1] == 0.0


def test_the_prover_trainer_never_learns_a_held_out_theorem(runtime) -> None:
    rt = runtime("prover_trainer")
    ws = rt.workspace
    theorem = next(a for name in ("test", "valid") for a in ws.splits[name])
    held_out = GenerationRecord.of_database(theorem, tree_from_proof(ws.db, theorem, ws.kernel), source_stream="g")
    assert prover_trainer.derive(prover_job(rt), routed(held_out)) is None
    assert rt.counters["held_out_skipped"] == 1
    train = ws.train_theorems()[0]
    learned = GenerationRecord.of_database(train, tree_from_proof(ws.db, train, ws.kernel), source_stream="g")
    assert prover_trainer.derive(prover_job(rt), routed(learned)) is not None


def test_the_prover_trainer_rejects_a_proof_of_another_statement(runtime, caplog) -> None:
    rt = runtime("prover_trainer")
    generation = one_generation(rt)
    ws = rt.workspace
    train = ws.train_theorems()[0]
    wrong = dataclasses.replace(generation, proof=tree_from_proof(ws.db, train, ws.kernel).to_json())
    with caplog.at_level(logging.WARNING, logger="jobs.prover_trainer"):
        assert prover_trainer.derive(prover_job(rt), routed(wrong)) is None
    assert rt.counters["rejected_records"] == 1
    message = caplog.records[-1].getMessage()
    assert message.startswith(f"{rt.name}: skipping record r-9: ") and not message.endswith(": None")


def test_a_result_without_a_reward_teaches_neither_trainer(runtime, caplog) -> None:
    rt = runtime("generator_trainer")
    job = generator_job(rt, with_model=True)
    data = without(result_of(one_generation(rt), "r-5", for_generator_trainer=True, for_prover_trainer=True), "reward")
    [unrewarded] = decode_records(ResultRecord, {}, [data], stream="s")  # both trainers read result records so
    assert isinstance(unrewarded, RecordError) and "result record r-5: field 'reward' is missing" in str(unrewarded)
    with caplog.at_level(logging.WARNING, logger="jobs._trainer"):
        assert _trainer.absorb(job, generator_trainer.RULES, "s", (0, 0), unrewarded) == 0
    assert (rt.counters["rejected_records"], job.records_in, job.skipped, len(job.buffer)) == (1, 1, 1, 0)
    assert job.new_rewards == [] and generator_trainer.baseline(job) == 0.0  # no reward observed
    assert "field 'reward' is missing" in caplog.records[-1].getMessage()


def test_the_prover_actor_searches_without_held_out_lemmas_checks_by_kernel_and_skips_malformed_goals(
    runtime, monkeypatch, caplog
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_prove(db, theorems, policy, settings, **kwargs):
        calls.append(dict(kwargs, db=db, policy=policy, settings=settings))
        return [SearchResult(label=t.label, prover="forward-sampling", proved=False) for t in theorems]

    monkeypatch.setattr(prover_actor, "prove_theorems", fake_prove)
    rt = runtime("prover_actor")
    ws = rt.workspace
    good = one_generation(rt)
    malformed = {"id": "bad-1", "goal": {"nonsense": True}}
    clashing = dataclasses.replace(
        good, id="bad-2", goal=dataclasses.replace(good.goal, label=ws.train_theorems()[0].label)
    )
    policy, settings = object(), SearchSettings(prover="forward-sampling")
    records = [malformed, good.to_json(), clashing.to_json()]
    with caplog.at_level(logging.WARNING, logger="jobs.prover_actor"):
        results = prover_actor.prove_batch(rt, ShardBatch("g", 0, {}, records), {"policy": policy, "version": 3},
                                           settings)  # type: ignore[arg-type]  # fmt: skip
    assert [r.id for r in results] == [good.id]
    assert (rt.counters["records_in"], rt.counters["malformed_goals"]) == (3, 2)
    untyped, unbuildable = (record.getMessage() for record in caplog.records[-2:])
    assert untyped.startswith(f"{rt.name}: skipping malformed generation record: stream g: generation record bad-1")
    assert unbuildable.startswith(f"{rt.name}: skipping malformed generation record: ")
    assert "reuses database label" in unbuildable
    assert not untyped.endswith(": None") and not unbuildable.endswith(": None")  # the reason is given
    assert results[0].prover_version == 3  # the version of the policy that searched
    assert "search_seconds" in rt.counters
    [call] = calls
    assert call["forbidden"] == ws.generator_forbidden and ws.held_out_labels <= call["forbidden"]
    assert (call["db"], call["grammar"], call["kernel"]) == (ws.db, ws.grammar, ws.kernel)
    assert (call["policy"], call["settings"]) == (policy, settings)
    assert prover_actor.prove_batch(rt, ShardBatch("g", 1, {}, [malformed]), {"policy": policy, "version": 3},
                                    settings) == []  # type: ignore[arg-type]  # fmt: skip
    assert len(calls) == 1  # nothing to search: no search at all
