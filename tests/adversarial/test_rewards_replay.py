"""Rewards (hard, band, heuristic, shaping, duplicates) and the replay buffer."""

from __future__ import annotations

import pytest

from core.adversarial.replay import ReplayBuffer
from core.adversarial.rewards import heuristic_score, reward
from core.errors import ConfigError


def test_hard_reward_pays_only_failures() -> None:
    assert reward("hard", successes=0, attempts=1, heuristic=0) == 1.0
    assert reward("hard", successes=1, attempts=1, heuristic=0) == 0.0


def test_band_reward_pays_hard_but_provable() -> None:
    assert reward("band", successes=1, attempts=4, heuristic=0, tau=0.5) == 1.0
    assert reward("band", successes=0, attempts=4, heuristic=0, tau=0.5) == 0.0
    assert reward("band", successes=3, attempts=4, heuristic=0, tau=0.5) == 0.0


def test_zero_attempts_gives_zero_not_a_crash() -> None:
    assert reward("band", successes=0, attempts=0, heuristic=0) == 0.0


def test_shaping_and_duplicate_penalty_can_make_rewards_negative() -> None:
    value = reward(
        "hard", successes=1, attempts=1, heuristic=3.0, heuristic_weight=0.4, duplicate=True, duplicate_penalty=1.0
    )
    assert value == pytest.approx(0.4 * 0.75 - 1.0)


def test_heuristics() -> None:
    assert heuristic_score("size_over_depth", size=6, depth=3, statement_length=9) == 2.0
    assert heuristic_score("statement_length", size=6, depth=3, statement_length=9) == 9.0
    with pytest.raises(ConfigError):
        heuristic_score("beauty", size=1, depth=1, statement_length=1)


def test_replay_fifo_eviction_and_window() -> None:
    buffer = ReplayBuffer(3)
    for i in range(5):
        buffer.add("s", (i // 2, i % 2), {"i": i})
    assert [item.record["i"] for item in buffer] == [2, 3, 4]
    assert buffer.window() == {"s": [1, 0]}
    assert buffer.evicted == 2


def test_reward_sampling_never_draws_zero_weight_items_and_survives_all_zero() -> None:
    buffer = ReplayBuffer(10, "reward", seed=1)
    buffer.add("s", (0, 0), {"i": 0}, weight=0.0)
    buffer.add("s", (0, 1), {"i": 1}, weight=-2.0)
    assert len(buffer.sample(5)) == 5  # all weights <= 0: uniform, no crash
    buffer.add("s", (0, 2), {"i": 2}, weight=1.0)
    assert {r["i"] for r in buffer.sample(50)} == {2}


def test_bad_buffer_settings() -> None:
    with pytest.raises(ConfigError):
        ReplayBuffer(0)
    with pytest.raises(ConfigError):
        ReplayBuffer(5, "priority")
