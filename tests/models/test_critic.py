"""The goal critic: values are probabilities, training on known targets moves them the right way, and a
malformed batch is refused."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.models.critic import GoalCritic, critic_step

PROVABLE = [("|-", "(", "ph", "->", "ph", ")"), ("|-", "(", "ps", "->", "ps", ")"), ("|-", "(", "ch", "->", "ch", ")")]
UNPROVABLE = [("|-", "ph"), ("|-", "(", "ph", "->", "ps", ")"), ("|-", "-.", "(", "ph", "->", "ph", ")")]


def test_values_are_probabilities_one_per_goal() -> None:
    critic = GoalCritic(buckets=256, dim=8, hidden=8)
    values = critic.values(PROVABLE + UNPROVABLE)
    assert len(values) == 6 and all(0.0 < v < 1.0 for v in values)
    assert critic.values([]) == []
    assert GoalCritic(buckets=256, dim=8, hidden=8).values(PROVABLE) == values[:3]  # seeded: reproducible


def test_training_moves_predictions_towards_the_targets() -> None:
    critic = GoalCritic(buckets=256, dim=8, hidden=8)
    before = critic.values(PROVABLE + UNPROVABLE)
    optimizer = torch.optim.Adam(critic.parameters(), lr=0.05)
    goals, targets = PROVABLE + UNPROVABLE, [1.0] * 3 + [0.0] * 3
    losses = [critic_step(critic, optimizer, goals, targets) for _ in range(40)]
    after = critic.values(goals)
    assert losses[-1] < losses[0]
    assert all(a > b for a, b in zip(after[:3], before[:3]))  # provable goals: up
    assert all(a < b for a, b in zip(after[3:], before[3:]))  # unprovable goals: down
    assert min(after[:3]) > 0.8
    assert max(after[3:]) < 0.2


def test_soft_targets_are_approached() -> None:
    critic = GoalCritic(buckets=256, dim=8, hidden=8)
    optimizer = torch.optim.Adam(critic.parameters(), lr=0.05)
    for _ in range(150):
        critic_step(critic, optimizer, PROVABLE[:1], [0.3])
    assert critic.values(PROVABLE[:1])[0] == pytest.approx(0.3, abs=0.05)


def test_malformed_batches_are_refused() -> None:
    critic = GoalCritic(buckets=256, dim=8, hidden=8)
    optimizer = torch.optim.Adam(critic.parameters(), lr=0.05)
    with pytest.raises(ConfigError, match="targets"):
        critic_step(critic, optimizer, PROVABLE, [1.0])
    with pytest.raises(ConfigError, match="probabilities"):
        critic_step(critic, optimizer, PROVABLE[:1], [1.5])
    with pytest.raises(ConfigError, match="no examples"):
        critic_step(critic, optimizer, [], [])
    with pytest.raises(ConfigError, match="buckets"):
        GoalCritic(buckets=0)
