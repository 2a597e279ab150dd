"""The seed's presets (Evariste's Metamath debug setups): each builds, validates, and has the documented
semantics; its routing sends the generator trainer failed theorems only; an unknown name lists the presets."""

from __future__ import annotations

import dataclasses

import pytest

from configs.experiment import ExperimentConfig
from configs.presets import PRESETS, preset
from core.adversarial.records import GenerationRecord, GenerationStats, Goal, ResultRecord
from core.adversarial.topology import generator_trainer_reads_generations
from core.errors import ConfigError
from core.metamath.prooftree import ProofTree
from core.search.runner import SearchResult

SEED_PRESETS = {
    # name: (setup, reward kind, roles that do not run)
    "mm_adv_fwd_debug_local": ("adversarial", "hard", ()),
    "mm_gen_only_debug_local": ("generator-only", "heuristic", ("prover_actor", "prover_trainer", "evaluator")),
    "mm_adv_fwd_no_prover_reward_debug_local": ("generator-reward", "heuristic", ()),
}


@pytest.mark.parametrize("name", SEED_PRESETS)
def test_seed_preset_has_the_seeds_semantics(name: str) -> None:
    setup, reward, absent = SEED_PRESETS[name]
    config = preset(name)
    assert ExperimentConfig.from_dict(config.to_dict()) == config  # builds, validates, survives freezing
    assert (config.preset, config.setup, config.rewards.kind) == (name, setup, reward)
    assert config.prover_actor.search.prover == "forward-greedy"
    assert config.prover_trainer.examples == "forward"
    assert config.generator_actor.selection == "last"
    assert config.generator_actor.heuristic == "size_over_depth"  # Evariste's size_by_depth
    assert config.generator_actor.mix == "1,generator"
    assert config.routing.generator_send_only_failed and config.routing.prover_send_only_failed
    assert config.prover_trainer.replay_min == config.generator_trainer.replay_min == 10
    for role in ("generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator"):
        assert config.role_count(role) == (0 if role in absent else 1), role


def test_only_the_adversarial_seed_preset_rewards_the_generator_from_the_prover() -> None:
    reads_generations = {name: generator_trainer_reads_generations(preset(name).setup) for name in SEED_PRESETS}
    assert reads_generations == {
        "mm_adv_fwd_debug_local": False,
        "mm_gen_only_debug_local": True,
        "mm_adv_fwd_no_prover_reward_debug_local": True,
    }


def _generated() -> GenerationRecord:
    return GenerationRecord(
        id="generator-actor-00-to-00/1",
        source="generator",
        generator_version=1,
        goal=Goal("advgen.1", "|- ( ph -> ph )", ()),
        proof={},
        heuristic=1.0,
        duplicate=False,
        rollout=None,
        stats=GenerationStats(size=3, depth=2, statement_length=6, hypotheses=0, steps=2),
    )


def _result(config: ExperimentConfig, proved: bool) -> ResultRecord:
    proof = ProofTree("a1i", {}, (), ("|-", "(", "ph", "->", "ph", ")")) if proved else None
    search = SearchResult(label="advgen.1", prover="forward-greedy", proved=proved, proof=proof)
    return ResultRecord.of_attempts(
        _generated(),
        [search],
        prover_version=1,
        reward=0.0 if proved else 1.0,
        generator_send_only_failed=config.routing.generator_send_only_failed,
        prover_send_only_failed=config.routing.prover_send_only_failed,
    )


def test_adversarial_seed_preset_routes_only_failed_theorems_to_both_trainers() -> None:
    config = preset("mm_adv_fwd_debug_local")
    failed, proved = _result(config, proved=False), _result(config, proved=True)
    assert failed.for_generator_trainer and failed.for_prover_trainer
    assert not proved.for_generator_trainer and not proved.for_prover_trainer
    # the twin with generator_send_only_failed off sends the proved theorem to the generator trainer
    routing = dataclasses.replace(config.routing, generator_send_only_failed=False)
    assert _result(dataclasses.replace(config, routing=routing), proved=True).for_generator_trainer


@pytest.mark.parametrize("name", SEED_PRESETS)
def test_seed_preset_overrides_are_still_validated(name: str) -> None:
    with pytest.raises(ConfigError, match="min_steps"):
        preset(name).with_overrides(["generator_actor.min_steps=9"])


def test_an_unknown_preset_is_refused_with_the_list_of_names() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'mm_adv_fwd_debug'") as refused:
        preset("mm_adv_fwd_debug")
    listed = str(refused.value).split("presets: ", 1)[1].split(", ")
    assert listed == list(PRESETS) and set(SEED_PRESETS) <= set(listed)
