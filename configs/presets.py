"""Named presets: typed :class:`~configs.experiment.ExperimentConfig` objects, one per setup and scale.

Every preset is runnable as is (``./launch.sh local --preset NAME --exp DIR``) and can be adjusted with
``--set key=value`` overrides. The names:

- ``default``: the README's main job, an adversarial run sized for a workstation's CPUs.
- ``tiny``: the smallest adversarial run (tests, CI, and a two-minute look at the system).
- ``mm_adv_bwd_debug_local``: an adversarial debug run on Metamath with the backward (best-first) prover.
- ``mm_adv_fwd_debug_local``, ``mm_gen_only_debug_local``, ``mm_adv_fwd_no_prover_reward_debug_local``: the
  Metamath debug setups of Evariste (``formal/configs/adv_configs.py``), with their semantics as far as these
  settings express them (:func:`_evariste_mm`; the README lists where they differ and why).
- one preset per setup: ``adversarial``, ``fixed_prover``, ``fixed_generator``, ``generator_only``,
  ``generator_reward``, ``supervised_only``, ``prover_only`` (tiny-scale, so each runs in minutes on a laptop).
- ``prop_adversarial`` / ``prop_supervised`` / ``prop_prover_only``: the learning experiment's arms on prop.mm
  (``benchmarks/learning.py``, see the README).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from configs.experiment import (
    DatabaseConfig,
    EvaluatorConfig,
    ExperimentConfig,
    GeneratorActorConfig,
    GeneratorTrainerConfig,
    ModelSpec,
    ProverActorConfig,
    ProverTrainerConfig,
    RewardConfig,
    RoutingConfig,
)
from core.errors import ConfigError
from core.search.settings import SearchSettings

# Rollouts whose steps build on each other (benchmarks/generation.py, default database, 150-step generator: median
# generated proof size 5 against 2 without, 38% proved by the baseline at 24 expansions against 48%).
COMPOSED: dict[str, Any] = dict(compose=True, attempts_per_step=16, temperature=1.5)


def _tiny(name: str, prover: str = "backward") -> ExperimentConfig:
    search = SearchSettings(prover=prover, expansions=12, timeout_s=3.0, candidates=4, max_depth=8, batch_goals=8)
    trainer: dict[str, Any] = dict(
        batch_size=16,
        lr=1e-3,
        warmup_steps=10,
        replay_min=4,
        replay_max=2000,
        checkpoint_every_steps=25,
        checkpoint_every_minutes=0.5,
        bootstrap_steps=300,
        keep_checkpoints=3,
    )
    return ExperimentConfig(
        preset=name,
        database=DatabaseConfig(path="embedded"),
        prover_model=ModelSpec(size="tiny", max_source_tokens=256, max_target_tokens=64),
        generator_model=ModelSpec(size="tiny", max_source_tokens=256, max_target_tokens=64),
        generator_actor=GeneratorActorConfig(max_steps=4, shard_records=8, shard_seconds=3.0, reload_seconds=2.0),
        prover_actor=ProverActorConfig(search=search, shard_records=8, shard_seconds=3.0, reload_seconds=2.0),
        generator_trainer=GeneratorTrainerConfig(**trainer),
        prover_trainer=ProverTrainerConfig(**trainer),
        evaluator=EvaluatorConfig(search=dataclasses.replace(search, expansions=8, timeout_s=2.0)),
    )


def _setup(config: ExperimentConfig, setup: str, **counts: int) -> ExperimentConfig:
    """``config`` turned into ``setup``, with some roles' ``count`` changed (0 disables a role)."""
    changes = {role: dataclasses.replace(getattr(config, role), count=n) for role, n in counts.items()}
    return dataclasses.replace(config, setup=setup, **changes)


def tiny() -> ExperimentConfig:
    return _tiny("tiny")


def default() -> ExperimentConfig:
    search = SearchSettings(prover="backward", expansions=24, timeout_s=5.0, candidates=6, batch_goals=16)
    trainer: dict[str, Any] = dict(
        batch_size=32,
        lr=1e-3,
        warmup_steps=20,
        replay_min=8,
        checkpoint_every_steps=50,
        checkpoint_every_minutes=1.0,
        bootstrap_steps=150,
    )
    return ExperimentConfig(
        preset="default",
        database=DatabaseConfig(path="default"),
        prover_model=ModelSpec(size="tiny"),
        generator_model=ModelSpec(size="tiny"),
        generator_actor=GeneratorActorConfig(**COMPOSED, max_steps=6, shard_records=16, shard_seconds=10.0),
        prover_actor=ProverActorConfig(search=search, shard_records=16, shard_seconds=10.0),
        generator_trainer=GeneratorTrainerConfig(**trainer),
        prover_trainer=ProverTrainerConfig(**trainer),
        evaluator=EvaluatorConfig(search=dataclasses.replace(search, expansions=16), max_theorems=40),
    )


def mm_adv_bwd_debug_local() -> ExperimentConfig:
    return dataclasses.replace(_tiny("mm_adv_bwd_debug_local", prover="backward"), database=DatabaseConfig())


# Evariste's NodeSelectionConfig scores nodes by size_by_depth; in its heuristic-reward setups that score is the
# generator's reward.
EVARISTE_HEURISTIC = "size_over_depth"
EVARISTE_REPLAY_MIN = 10  # its debug configs' replay_buffer.min_len, for both trainers


def _evariste_mm(name: str, setup: str, rewards: str, **counts: int) -> ExperimentConfig:
    """One of Evariste's Metamath debug setups: a forward greedy prover trained on forward examples; each
    rollout's theorem is its last node (the rollout ends with STOP, or is cut at ``max_steps``); both
    ``send_only_failed`` routings on (its AdversarialConfig defaults); goals from the generator alone
    (``1,generator``); trainers start on generated data after 10 records. ``rewards`` is ``hard`` (the
    generator is rewarded when the prover fails) or ``heuristic`` (the setups where the generator learns from
    its own size/depth score, with no prover reward)."""
    config = _tiny(name, prover="forward-greedy")
    config = dataclasses.replace(
        config,
        database=DatabaseConfig(),
        generator_actor=dataclasses.replace(
            config.generator_actor, selection="last", heuristic=EVARISTE_HEURISTIC, mix="1,generator"
        ),
        generator_trainer=dataclasses.replace(config.generator_trainer, replay_min=EVARISTE_REPLAY_MIN),
        prover_trainer=dataclasses.replace(config.prover_trainer, examples="forward", replay_min=EVARISTE_REPLAY_MIN),
        rewards=RewardConfig(kind=rewards),
        routing=RoutingConfig(generator_send_only_failed=True, prover_send_only_failed=True),
    )
    return _setup(config, setup, **counts)


def mm_adv_fwd_debug_local() -> ExperimentConfig:
    """Evariste's ``mm_adv_fwd_debug_local`` (ADVERSARIAL): the generator is rewarded for the theorems the
    forward prover fails, and learns from those only; the prover learns from the theorems it fails."""
    return _evariste_mm("mm_adv_fwd_debug_local", "adversarial", "hard")


def mm_gen_only_debug_local() -> ExperimentConfig:
    """Evariste's ``mm_gen_only_debug_local`` (GENERATOR_ONLY): no prover; the generator learns from its
    heuristic score. The prover settings are kept (forward greedy) but unused, as in Evariste."""
    return _evariste_mm(
        "mm_gen_only_debug_local", "generator-only", "heuristic", prover_actor=0, prover_trainer=0, evaluator=0
    )


def mm_adv_fwd_no_prover_reward_debug_local() -> ExperimentConfig:
    """Evariste's ``mm_adv_fwd_no_prover_reward_debug_local`` (ADV_GENERATOR_REWARD): the generator learns from
    its heuristic score, not from the prover's outcome (so it reads every generation, and
    ``generator_send_only_failed`` has nothing to filter); the forward prover still learns from the generated
    theorems it fails."""
    return _evariste_mm("mm_adv_fwd_no_prover_reward_debug_local", "generator-reward", "heuristic")


def adversarial() -> ExperimentConfig:
    return _tiny("adversarial")


def fixed_prover() -> ExperimentConfig:
    """The prover never learns: version 0 is ``prover_trainer.init_checkpoint`` (or, if unset, a model trained
    for ``prover_trainer.bootstrap_steps`` on the database by prover actor 0); the generator learns."""
    return _setup(_tiny("fixed_prover"), "fixed-prover", prover_trainer=0)


def fixed_generator() -> ExperimentConfig:
    """The generator never learns: version 0 is ``generator_trainer.init_checkpoint`` (or a model bootstrapped
    on the database by generator actor 0); the prover learns."""
    return _setup(_tiny("fixed_generator"), "fixed-generator", generator_trainer=0)


def generator_only() -> ExperimentConfig:
    """No prover: the generator learns from its heuristic reward alone."""
    config = dataclasses.replace(_tiny("generator_only"), rewards=RewardConfig(kind="heuristic"))
    return _setup(config, "generator-only", prover_actor=0, prover_trainer=0, evaluator=0)


def generator_reward() -> ExperimentConfig:
    """The generator learns from its heuristic reward; the prover learns from the theorems it fails."""
    config = dataclasses.replace(_tiny("generator_reward"), rewards=RewardConfig(kind="heuristic"))
    return _setup(config, "generator-reward")


def supervised_only() -> ExperimentConfig:
    """No generation: the prover trains on the database alone (the baseline to beat)."""
    config = _tiny("supervised_only")
    config = dataclasses.replace(
        config, prover_trainer=dataclasses.replace(config.prover_trainer, supervised_weight=1.0)
    )
    return _setup(config, "supervised-only", generator_actor=0, prover_actor=0, generator_trainer=0)


def prover_only() -> ExperimentConfig:
    """No generator (Evariste's PROVER_ONLY, expert iteration): the prover actors search the train split's
    theorems and the prover trainer learns from the proofs they found, beside the database's examples."""
    return _setup(_tiny("prover_only"), "prover-only", generator_actor=0, generator_trainer=0)


def _prop(name: str) -> ExperimentConfig:
    """The learning experiment's scale: a small prover (start it from a supervised checkpoint with
    ``--set prover_trainer.init_checkpoint=...``), a tiny generator bootstrapped on the database, the
    test split evaluated with the same budget as ``jobs.prove --split test`` (64 expansions, k=8)."""
    actor_search = SearchSettings(prover="backward", expansions=32, timeout_s=10.0, candidates=8, batch_goals=16)
    evaluation = dataclasses.replace(actor_search, expansions=64, timeout_s=30.0, batch_goals=32)
    trainer: dict[str, Any] = dict(
        batch_size=32, warmup_steps=50, replay_min=32, checkpoint_every_steps=200, checkpoint_every_minutes=3.0
    )
    return ExperimentConfig(
        preset=name,
        database=DatabaseConfig(path="default"),
        prover_model=ModelSpec(size="small"),
        generator_model=ModelSpec(size="tiny"),
        generator_actor=GeneratorActorConfig(**COMPOSED, max_steps=6, rollouts_per_batch=16),
        prover_actor=ProverActorConfig(search=actor_search),
        generator_trainer=GeneratorTrainerConfig(**trainer, lr=1e-3, bootstrap_steps=1500),
        prover_trainer=ProverTrainerConfig(**trainer, lr=3e-4, bootstrap_steps=600),
        evaluator=EvaluatorConfig(search=evaluation),
    )


def prop_adversarial() -> ExperimentConfig:
    return _prop("prop_adversarial")


def prop_supervised() -> ExperimentConfig:
    config = _prop("prop_supervised")
    config = dataclasses.replace(
        config, prover_trainer=dataclasses.replace(config.prover_trainer, supervised_weight=1.0)
    )
    return _setup(config, "supervised-only", generator_actor=0, prover_actor=0, generator_trainer=0)


def prop_prover_only() -> ExperimentConfig:
    """The learning experiment's prover-only arm: the prop presets' prover and models, no generator; the
    prover actor searches the train split and the prover trainer learns from the proofs it finds."""
    return _setup(_prop("prop_prover_only"), "prover-only", generator_actor=0, generator_trainer=0)


PRESETS: dict[str, Callable[[], ExperimentConfig]] = {
    "default": default,
    "tiny": tiny,
    "mm_adv_bwd_debug_local": mm_adv_bwd_debug_local,
    "mm_adv_fwd_debug_local": mm_adv_fwd_debug_local,
    "mm_gen_only_debug_local": mm_gen_only_debug_local,
    "mm_adv_fwd_no_prover_reward_debug_local": mm_adv_fwd_no_prover_reward_debug_local,
    "adversarial": adversarial,
    "fixed_prover": fixed_prover,
    "fixed_generator": fixed_generator,
    "generator_only": generator_only,
    "generator_reward": generator_reward,
    "supervised_only": supervised_only,
    "prover_only": prover_only,
    "prop_adversarial": prop_adversarial,
    "prop_supervised": prop_supervised,
    "prop_prover_only": prop_prover_only,
}


def preset(name: str) -> ExperimentConfig:
    """The preset called ``name``; a :class:`ConfigError` listing the presets if there is none."""
    factory = PRESETS.get(name)
    if factory is None:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return factory()
