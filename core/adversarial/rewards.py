"""Rewards of generated theorems, and the heuristics that score them.

- ``hard``: 1 if the prover failed to prove the theorem, else 0 (Evariste's adversarial reward).
- ``band``: the prover makes ``attempts`` tries; the reward is 1 when its success rate lies in
  ``(0, tau]`` (hard but provable, as in STP), else 0.
- ``heuristic``: the generator's own score of the theorem (no prover), squashed into [0, 1).

Any of them can be shaped: ``+ heuristic_weight * squash(heuristic)``, and ``- duplicate_penalty`` for a
theorem generated before. Rewards may be zero or negative; nothing downstream divides by them.
"""

from __future__ import annotations

from core.errors import ConfigError

HEURISTICS = ("size", "depth", "size_over_depth", "statement_length")
REWARD_KINDS = ("hard", "band", "heuristic")


def heuristic_score(name: str, *, size: int, depth: int, statement_length: int) -> float:
    """A generated theorem's score: proof size, depth, size/depth or statement length."""
    if name == "size":
        return float(size)
    if name == "depth":
        return float(depth)
    if name == "size_over_depth":
        return size / max(depth, 1)
    if name == "statement_length":
        return float(statement_length)
    raise ConfigError(f"unknown heuristic {name!r}; choose one of {', '.join(HEURISTICS)}")


def squash(value: float) -> float:
    """Map a non-negative score to [0, 1): ``v / (1 + v)``; negative scores map to 0."""
    return value / (1.0 + value) if value > 0 else 0.0


def base_reward(kind: str, *, successes: int, attempts: int, tau: float, heuristic: float) -> float:
    """The unshaped reward of one generated theorem."""
    if kind == "heuristic":
        return squash(heuristic)
    if attempts <= 0:
        return 0.0  # not attempted (e.g. filtered out): no signal either way
    if kind == "hard":
        return 1.0 if successes == 0 else 0.0
    if kind == "band":
        rate = successes / attempts
        return 1.0 if 0.0 < rate <= tau else 0.0
    raise ConfigError(f"unknown reward kind {kind!r}; choose one of {', '.join(REWARD_KINDS)}")


def reward(
    kind: str,
    *,
    successes: int,
    attempts: int,
    heuristic: float,
    tau: float = 0.5,
    heuristic_weight: float = 0.0,
    duplicate: bool = False,
    duplicate_penalty: float = 0.0,
) -> float:
    """The shaped reward: base reward + heuristic shaping - duplicate penalty."""
    value = base_reward(kind, successes=successes, attempts=attempts, tau=tau, heuristic=heuristic)
    if heuristic_weight and kind != "heuristic":
        value += heuristic_weight * squash(heuristic)
    if duplicate:
        value -= duplicate_penalty
    return value
