"""Rewards and the replay buffer at their edges: defaults, boundaries, repeated names, and errors that name the
field (written to kill the mutants scripts/mutation.sh found surviving; each test states a documented behaviour)."""

from __future__ import annotations

import pytest

from core.adversarial.replay import ReplayBuffer
from core.adversarial.rewards import NodeFeatures, heuristic_value, parse_heuristic, reward
from core.errors import ConfigError


def test_heuristic_reward_squashes_the_score_into_zero_one() -> None:
    assert reward("heuristic", successes=0, attempts=0, heuristic=3.0) == pytest.approx(0.75)
    assert reward("heuristic", successes=0, attempts=0, heuristic=0.5) == pytest.approx(1 / 3)
    assert reward("heuristic", successes=0, attempts=0, heuristic=-3.0) == 0.0  # negative scores pay nothing


def test_a_heuristic_reward_is_not_shaped_twice_by_its_own_heuristic() -> None:
    assert reward("heuristic", successes=0, attempts=0, heuristic=3.0, heuristic_weight=0.5) == pytest.approx(0.75)


def test_shaping_adds_to_the_base_reward() -> None:
    assert reward("hard", successes=0, attempts=1, heuristic=3.0, heuristic_weight=0.4) == pytest.approx(1.3)


def test_rewards_are_unshaped_and_unpenalised_by_default() -> None:
    assert reward("hard", successes=1, attempts=1, heuristic=3.0) == 0.0
    assert reward("hard", successes=0, attempts=1, heuristic=0.0, duplicate_penalty=1.0) == 1.0
    assert reward("hard", successes=0, attempts=1, heuristic=0.0, duplicate=True) == 1.0


def test_band_defaults_to_half_the_attempts() -> None:
    assert reward("band", successes=2, attempts=4, heuristic=0.0) == 1.0
    assert reward("band", successes=3, attempts=4, heuristic=0.0) == 0.0


def test_unknown_reward_kind_is_named_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'gold'; choose one of hard, band, heuristic"):
        reward("gold", successes=0, attempts=1, heuristic=0.0)


def test_size_over_depth_treats_depth_below_one_as_one() -> None:
    assert heuristic_value("size_over_depth", NodeFeatures(size=6, depth=1, statement_length=1)) == 6.0
    assert heuristic_value("size_over_depth", NodeFeatures(size=6, depth=0, statement_length=1)) == 6.0


def test_unknown_heuristic_is_named_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'beauty'; choose one of size, depth, size_over_depth"):
        heuristic_value("beauty", NodeFeatures(size=1, depth=1, statement_length=1))
    with pytest.raises(ConfigError, match=r"^generator_actor\.heuristic .*'beauty'; choose among size, depth,"):
        parse_heuristic("2,beauty")


def test_a_heuristic_named_twice_adds_its_weights() -> None:
    assert parse_heuristic("1,size;2,size;1,depth") == {"size": 3.0, "depth": 1.0}
    assert parse_heuristic("size") == {"size": 1.0}


def test_a_combination_without_weights_is_rejected_with_its_syntax() -> None:
    with pytest.raises(
        ConfigError, match=r"^generator_actor\.heuristic 'size;depth': each part must read weight,name$"
    ):
        parse_heuristic("size;depth")


def test_bad_weights_are_quoted_in_the_error() -> None:
    with pytest.raises(ConfigError, match=r"'abc' is not a number"):
        parse_heuristic("1,size;abc,depth")
    with pytest.raises(ConfigError, match=r"finite numbers, not 'inf'"):
        parse_heuristic("inf,size")


def test_a_buffer_of_one_keeps_the_latest_record() -> None:
    buffer = ReplayBuffer(1)
    buffer.add("s", (0, 0), {"i": 0})
    buffer.add("s", (0, 1), {"i": 1})
    assert [item.record["i"] for item in buffer] == [1]
    assert buffer.added == 2 and buffer.evicted == 1


def test_buffer_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"max_size must be >= 1, got 0"):
        ReplayBuffer(0)
    with pytest.raises(ConfigError, match=r"sampling must be 'uniform' or 'reward', got 'priority'"):
        ReplayBuffer(5, "priority")


def test_records_weigh_one_unless_told() -> None:
    buffer = ReplayBuffer(5)
    buffer.add("s", (0, 0), {"i": 0})
    assert [item.weight for item in buffer] == [1.0]


def test_sampling_draws_exactly_n_records_and_nothing_from_an_empty_buffer() -> None:
    assert ReplayBuffer(5).sample(3) == []
    for sampling in ("uniform", "reward"):
        buffer = ReplayBuffer(5, sampling)
        buffer.add("s", (0, 0), {"i": 0})
        assert buffer.sample(1) == [{"i": 0}]
        assert buffer.sample(4) == [{"i": 0}] * 4
        assert buffer.sample(0) == []


def test_buffers_with_the_same_seed_sample_the_same_records() -> None:
    def draws(buffer: ReplayBuffer) -> list[int]:
        for i in range(20):
            buffer.add("s", (0, i), {"i": i}, weight=1.0 + i)
        return [record["i"] for record in buffer.sample(30)]

    for sampling in ("uniform", "reward"):
        assert draws(ReplayBuffer(20, sampling)) == draws(ReplayBuffer(20, sampling))
        assert draws(ReplayBuffer(20, sampling, seed=3)) == draws(ReplayBuffer(20, sampling, seed=3))
