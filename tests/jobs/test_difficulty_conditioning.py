"""Difficulty conditioning in the roles (``generator_actor.difficulty_conditioning``, Minimo's hindsight):

- the generator trainer trains each rollout under the token of the difficulty the prover measured (a HARD
  and an EASY outcome of the same rollout differ by that token alone), by likelihood (weight 1); with the
  setting off its examples and weights are today's;
- the generator actor asks its policy for ``target_difficulty`` and records the level asked for.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.databases import resolve_database
from configs.presets import preset
from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.records import GenerationRecord, ResultRecord
from core.errors import ConfigError
from core.models.checkpoint import LoadedModel
from core.models.formats import GENERATOR, build_vocabulary
from core.models.training import new_model
from core.search.baseline import BaselinePolicy
from core.storage import CheckpointStore, ExperimentRoot, read_shard, stream_bounds
from jobs import _trainer, generator_actor, generator_trainer
from jobs._role import Runtime
from jobs._trainer import TrainerJob
from tests.roles import experiment, run_role
from tests.scripted_rollouts import scripted_record

FAST = ["generator_trainer.bootstrap_steps=0", "prover_trainer.bootstrap_steps=0", "database.path=embedded"]
ON = "generator_actor.difficulty_conditioning=true"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Any]:
    """``runtime(role, *overrides)``: a started job of a fresh tiny experiment (heartbeat stopped after)."""
    started: list[Runtime] = []

    def start(role: str, *overrides: str) -> Runtime:
        config = preset("tiny").with_overrides([*FAST, *overrides])
        config = dataclasses.replace(config, database=resolve_database(config.database))
        root = ExperimentRoot.create_or_open(str(tmp_path / f"exp{len(started)}"), config.to_dict())
        rt = Runtime.start(role, str(root.url), 0, None)
        started.append(rt)
        return rt

    yield start
    for rt in started:
        rt._closed.set()


def trainer_of(rt: Runtime) -> TrainerJob:
    job = _trainer.new_job(rt, "generator", rt.config.generator_trainer, rt.config.generator_model, ("generator",))
    vocab = build_vocabulary(rt.workspace.db)
    _trainer.set_model(job, new_model(vocab, "tiny", max_source_len=256, max_target_len=64), vocab)
    return job


def outcome(generation: GenerationRecord, successes: int, attempts: int = 2) -> ResultRecord:
    return ResultRecord(
        id=generation.id,
        generation=generation,
        prover_version=0,
        proved=successes > 0,
        attempts=attempts,
        successes=successes,
        proof=None,
        search={},
        reward=float(successes == 0),
        for_generator_trainer=True,
        for_prover_trainer=False,
    )


def examples(job: TrainerJob, record: ResultRecord) -> list[tuple[list[int], list[int]]]:
    derived = generator_trainer.derive(job, record)
    assert derived is not None
    return derived[0]


def test_each_rollout_is_trained_under_the_difficulty_it_turned_out_to_have(runtime) -> None:
    rt = runtime("generator_trainer", ON)
    job = trainer_of(rt)
    vocab = job.vocab
    generation = scripted_record(rt.workspace)
    hard, medium, easy = (examples(job, outcome(generation, s)) for s in (0, 1, 2))
    assert len(hard) == len(easy) == len(generation.rollout.steps) > 1  # type: ignore[union-attr]  # generated
    for level, pairs in (("<HARD>", hard), ("<MEDIUM>", medium), ("<EASY>", easy)):
        for source, _ in pairs:
            assert source[:2] == [vocab.special_id(GENERATOR), vocab.special_id(level)]
    for (hard_source, hard_target), (easy_source, easy_target) in zip(hard, easy):
        assert hard_target == easy_target
        assert hard_source[2:] == easy_source[2:] and hard_source[1] != easy_source[1]
    assert rt.counters["rollouts_hard"] == 1 and rt.counters["rollouts_easy"] == 1


def test_without_conditioning_the_examples_carry_no_level(runtime) -> None:
    rt_on, rt_off = runtime("generator_trainer", ON), runtime("generator_trainer")
    on, off = trainer_of(rt_on), trainer_of(rt_off)
    generation = scripted_record(rt_off.workspace)
    plain = examples(off, outcome(generation, 0))
    assert plain == examples(off, outcome(generation, 2))  # the outcome changes nothing
    levels = {off.vocab.special_id(token) for token in ("<EASY>", "<MEDIUM>", "<HARD>")}
    assert all(not levels & set(source) for source, _ in plain)
    conditioned = examples(on, outcome(generation, 0))
    assert [(s[:1] + s[2:], t) for s, t in conditioned] == plain  # today's examples, the level token aside


def test_conditioned_rollouts_are_weighted_by_likelihood_and_plain_ones_by_advantage(runtime) -> None:
    rt_on, rt_off = runtime("generator_trainer", ON), runtime("generator_trainer")
    on, off = trainer_of(rt_on), trainer_of(rt_off)
    items = [{"examples": [([1], [2])], "reward": 1.0}, {"examples": [([3], [4])], "reward": 0.0}]
    for job in (on, off):
        job.extra_state["baseline"] = 0.5
    assert generator_trainer.weigh(on, items)[1] == [1.0, 1.0]
    assert generator_trainer.weigh(off, items)[1] == [0.5, -0.5]


def loaded_generator(rt: Runtime, *, with_levels: bool = True, where: str = "test") -> LoadedModel:
    """A new tiny generator as a checkpoint reads back (its vocabulary without the level tokens if asked)."""
    vocab = build_vocabulary(rt.workspace.db) if with_levels else build_vocabulary(rt.workspace.db, conditioning=())
    model = new_model(vocab, "tiny", max_source_len=128, max_target_len=32)
    return LoadedModel(model, vocab, {"kind": "generator", "formats": ["generator"]}, where)


class RecordingPolicy:
    """The baseline policy, remembering the conditioning it was built with."""

    def __init__(self, rt: Runtime, conditioning: tuple[str, ...]) -> None:
        ws = rt.workspace
        self.conditioning = conditioning
        self.inner = BaselinePolicy(ws.db, grammar=ws.grammar, seed=0)

    def propose_forward(self, queries, k, temperature=None):  # type: ignore[no-untyped-def]  # the Policy protocol's signature
        return self.inner.propose_forward(queries, k, temperature)


@pytest.mark.parametrize(("overrides", "conditioning", "level"), [((ON,), ("<HARD>",), "HARD"), ((), (), None)])
def test_the_generator_actor_asks_for_the_target_level(runtime, monkeypatch, overrides, conditioning, level) -> None:
    rt = runtime("generator_actor", *overrides)
    built: list[dict[str, Any]] = []

    def recording(loaded: Any, **options: Any) -> RecordingPolicy:
        built.append(options)
        return RecordingPolicy(rt, options["conditioning"])

    monkeypatch.setattr(generator_actor, "policy_from_model", recording)
    policy = generator_actor.generator_policy(loaded_generator(rt), rt.config.generator_actor, seed=0, device="cpu")
    assert built[0]["conditioning"] == conditioning
    generator = TheoremGenerator(rt.workspace, policy, GenerationSettings(max_steps=3, min_steps=2), seed=1)  # type: ignore[arg-type]  # a duck-typed policy
    records: list[GenerationRecord] = []
    for turn in range(20):
        records += generator_actor.make_records(rt, generator, random.Random(0), {"generator": 1.0}, 0, ["g"], turn)
        if records:
            break
    assert records and all(r.requested_difficulty == level for r in records)


def test_the_generator_actor_asks_for_a_configured_level(runtime, monkeypatch) -> None:
    rt = runtime("generator_actor", ON, "generator_actor.target_difficulty=MEDIUM")
    monkeypatch.setattr(generator_actor, "policy_from_model", lambda loaded, **options: options["conditioning"])
    assert generator_actor.generator_policy(loaded_generator(rt), rt.config.generator_actor, seed=0, device="cpu") == (
        "<MEDIUM>",
    )


def test_the_real_policy_writes_the_level_after_the_generator_token(runtime) -> None:
    rt = runtime("generator_actor", ON)
    loaded = loaded_generator(rt)
    vocab = loaded.vocab
    policy = generator_actor.generator_policy(loaded, rt.config.generator_actor, seed=0, device="cpu")
    sources: list[list[int] | None] = []
    encode = policy.codec.graph_source
    policy.codec.graph_source = lambda *args, **kw: sources.append(encode(*args, **kw)) or sources[-1]  # type: ignore[method-assign]  # a spy
    generator = TheoremGenerator(rt.workspace, policy, GenerationSettings(max_steps=2, min_steps=1), seed=1)
    generator.run(2)
    assert sources and all(
        s is not None and s[:2] == [vocab.special_id(GENERATOR), vocab.special_id("<HARD>")] for s in sources
    )


def test_a_checkpoint_without_the_level_tokens_is_refused_naming_the_setting(runtime) -> None:
    rt = runtime("generator_actor", ON)
    loaded = loaded_generator(rt, with_levels=False, where="old.pt")
    with pytest.raises(
        ConfigError, match=r"difficulty_conditioning: the generator checkpoint \(old.pt\) has no <HARD>"
    ):
        generator_actor.generator_policy(loaded, rt.config.generator_actor, seed=0, device="cpu")
    section = dataclasses.replace(rt.config.generator_actor, difficulty_conditioning=False)
    assert generator_actor.generator_policy(loaded, section, seed=0, device="cpu").conditioning == ()


@pytest.mark.slow
def test_an_adversarial_run_with_conditioning_asks_for_hard_and_trains_on_every_outcome(tmp_path: Path) -> None:
    root = experiment(
        tmp_path / "exp",
        "tiny",
        ON,
        "database.path=embedded",
        "generator_trainer.bootstrap_steps=10",
        "prover_trainer.bootstrap_steps=10",
        "generator_actor.shard_records=2",
        "prover_actor.shard_records=2",
    )
    assert run_role("generator_trainer", root, max_steps=0) == "finished"  # version 0
    assert run_role("prover_trainer", root, max_steps=0) == "finished"
    assert run_role("generator_actor", root, max_records=2) == "finished"
    assert run_role("prover_actor", root, max_records=2) == "finished"
    assert run_role("generator_trainer", root, max_steps=2) == "finished"
    generations = [r for seq in range(*stream_bounds(root, "generator-actor-00-to-00"))
                   for r in read_shard(root, "generator-actor-00-to-00", seq)[1]]  # fmt: skip
    assert len(generations) == 2 and {r["requested_difficulty"] for r in generations} == {"HARD"}
    latest = CheckpointStore(root, "generator").latest()
    assert latest is not None and latest.meta["cursors"]["0"] == {"prover-actor-00": 1}
    assert latest.meta["counters"]["buffer"] == 2  # proved or not, every rollout is learned under its label
