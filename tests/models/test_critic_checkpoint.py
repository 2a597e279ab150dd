"""A goal critic travels inside a prover checkpoint: it round-trips through a policy file and a published
version (the trainer's view too), a checkpoint without one reads as a policy without one, and a checkpoint
whose critic is missing, damaged or not finite is refused naming the critic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.models.checkpoint import (
    load_trainer_version,
    load_version,
    model_weights,
    policy_meta,
    publish_version,
    read_model,
    save_policy_file,
)
from core.models.critic import CRITIC_PREFIX, CriticTrainer, GoalCritic
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.storage import CheckpointStore, ExperimentRoot, save_checkpoint_file

GOALS = [("|-", "(", "ph", "->", "ph", ")"), ("|-", "ph"), ("|-", "(", "ps", "->", "(", "ph", "->", "ps", ")", ")")]


@pytest.fixture(scope="module")
def policy():
    vocab = build_vocabulary(read_database(embedded_database_path()))
    return new_model(vocab, "tiny", seed=0), vocab


def trained_critic() -> GoalCritic:
    """A small critic moved away from its initialisation (so a fresh one would not pass for it)."""
    trainer = CriticTrainer(GoalCritic(buckets=512, dim=8, hidden=8, seed=3), lr=0.05)
    for _ in range(5):
        trainer.step(GOALS, [1.0, 0.0, 1.0])
    return trainer.critic


def test_a_critic_round_trips_through_a_policy_file_and_a_published_version(tmp_path: Path, policy) -> None:
    model, vocab = policy
    critic = trained_critic()
    expected = critic.values(GOALS)
    path = tmp_path / "with-critic.safetensors"
    save_policy_file(str(path), model, vocab, "prover", critic=critic)
    read = read_model(str(path), kind="prover")
    assert read.critic is not None and read.critic.values(GOALS) == pytest.approx(expected)
    assert read.meta["critic"] == critic.config()
    assert read.model.state_dict().keys() == model.state_dict().keys()  # the policy is untouched by it

    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {})
    store = CheckpointStore(root, "prover")
    state = {"steps": 1, "critic": CriticTrainer(critic).state_dict()}
    publish_version(store, model, vocab, "prover", {"step": 1}, trainer_state=state, critic=critic)
    loaded, _ = load_version(store)
    assert loaded.critic is not None and loaded.critic.values(GOALS) == pytest.approx(expected)
    resumed, trainer_state, _ = load_trainer_version(store)
    assert resumed.critic is not None and resumed.critic.values(GOALS) == pytest.approx(expected)
    assert trainer_state is not None and trainer_state["critic"]["steps"] == 0


def test_a_checkpoint_without_a_critic_reads_as_a_policy_without_one(tmp_path: Path, policy) -> None:
    model, vocab = policy
    path = tmp_path / "policy.safetensors"
    save_policy_file(str(path), model, vocab, "prover")
    assert read_model(str(path), kind="prover").critic is None


def write(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> str:
    save_checkpoint_file(str(path), tensors, meta)
    return str(path)


def test_a_checkpoint_with_a_missing_or_damaged_critic_is_refused_naming_it(tmp_path: Path, policy) -> None:
    model, vocab = policy
    critic = trained_critic()
    meta = {**policy_meta(model, vocab, "prover"), "critic": critic.config()}
    weights = model_weights(model, critic)

    missing = write(tmp_path / "missing.safetensors", model_weights(model), meta)
    with pytest.raises(CheckpointError, match="metadata names a critic but the weights hold no critic tensors"):
        read_model(missing)
    unnamed = write(tmp_path / "unnamed.safetensors", weights, policy_meta(model, vocab, "prover"))
    with pytest.raises(CheckpointError, match="critic tensors but the metadata no critic configuration"):
        read_model(unnamed)
    misfit = write(tmp_path / "misfit.safetensors", weights, {**meta, "critic": {**critic.config(), "buckets": 64}})
    with pytest.raises(CheckpointError, match=r"unusable critic \(critic weights do not fit"):
        read_model(misfit)
    foreign = write(tmp_path / "foreign.safetensors", weights, {**meta, "critic": {"buckets": 512}})
    with pytest.raises(CheckpointError, match="unusable critic .*not a critic configuration"):
        read_model(foreign)
    broken = dict(weights)
    broken[CRITIC_PREFIX + "out.weight"] = torch.full_like(broken[CRITIC_PREFIX + "out.weight"], float("nan"))
    diverged = write(tmp_path / "nan.safetensors", broken, meta)
    with pytest.raises(CheckpointError, match=r"weights critic\.out\.weight are not finite"):
        read_model(diverged)
