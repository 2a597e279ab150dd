"""Rewards of generated theorems, and the heuristics that score them.

- ``hard``: 1 if the prover failed to prove the theorem, else 0 (Evariste's adversarial reward).
- ``band``: the prover makes ``attempts`` tries; the reward is 1 when its success rate lies in
  ``(0, tau]`` (hard but provable, as in STP), else 0.
- ``heuristic``: the generator's own score of the theorem (no prover), squashed into [0, 1).

Heuristics score a node of a rollout (:class:`NodeFeatures`): proof size, depth, size/depth, statement
length, and the mean or max frequency of its statement's tokens in the database (Evariste's heuristics).
A heuristic spec is one name (``size``) or a weighted combination (``1,size;0.5,depth;-4,mean_token_frequency``).

Any of them can be shaped: ``+ heuristic_weight * squash(heuristic)``, and ``- duplicate_penalty`` for a
theorem generated before. Rewards may be zero or negative; nothing downstream divides by them.

Difficulty labels (Minimo's conditioning, :func:`difficulty_label`): a generated theorem is ``EASY`` when the
prover proved it on every attempt, ``HARD`` when it never did, ``MEDIUM`` otherwise (with one attempt:
proved is EASY, failed is HARD). Its conditioning token (:func:`difficulty_token`) is ``<EASY>``,
``<MEDIUM>`` or ``<HARD>``, one of the specials of every vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import ConfigError

HEURISTICS = ("size", "depth", "size_over_depth", "statement_length", "mean_token_frequency", "max_token_frequency")
REWARD_KINDS = ("hard", "band", "heuristic")
DIFFICULTIES = ("EASY", "MEDIUM", "HARD")


@dataclass(frozen=True)
class NodeFeatures:
    """What the heuristics know of a node: its proof's size and depth, its statement's length and token
    frequencies (relative frequencies in the database's statements, each in [0, 1])."""

    size: int
    depth: int
    statement_length: int
    mean_token_frequency: float = 0.0
    max_token_frequency: float = 0.0


def heuristic_value(name: str, features: NodeFeatures) -> float:
    """One named heuristic of a node."""
    if name == "size":
        return float(features.size)
    if name == "depth":
        return float(features.depth)
    if name == "size_over_depth":
        return features.size / max(features.depth, 1)
    if name == "statement_length":
        return float(features.statement_length)
    if name == "mean_token_frequency":
        return features.mean_token_frequency
    if name == "max_token_frequency":
        return features.max_token_frequency
    raise ConfigError(f"unknown heuristic {name!r}; choose one of {', '.join(HEURISTICS)}")


def parse_heuristic(spec: str) -> dict[str, float]:
    """``"size"`` -> ``{"size": 1.0}``; ``"1,size;-2,mean_token_frequency"`` -> the named weights.

    Raises :class:`ConfigError` (naming ``generator_actor.heuristic``) for an unknown name, a weight that
    is not a finite number, or a combination whose weights are all zero.
    """
    text = spec.strip()
    if "," not in text and ";" not in text:
        parts = [(1.0, text)]
    else:
        parts = weighted_parts(text, "generator_actor.heuristic")
    weights: dict[str, float] = {}
    for weight, name in parts:
        if name not in HEURISTICS:
            raise ConfigError(
                f"generator_actor.heuristic {spec!r}: unknown heuristic {name!r}; choose among {', '.join(HEURISTICS)}"
            )
        weights[name] = weights.get(name, 0.0) + weight
    if not any(weights.values()):
        raise ConfigError(f"generator_actor.heuristic {spec!r}: some weight must be non-zero")
    return weights


def weighted_parts(text: str, field: str, form: str = "weight,name") -> list[tuple[float, str]]:
    """``"3,a;1,b"`` -> ``[(3.0, "a"), (1.0, "b")]``: the syntax of every weighted setting (the generator's
    heuristic combination, its source mix). ConfigError naming ``field`` for a part that is not ``form`` or a
    weight that is not a finite number."""
    parts = []
    for part in text.split(";"):
        pieces = [p.strip() for p in part.split(",")]
        if len(pieces) != 2:
            raise ConfigError(f"{field} {text!r}: each part must read {form}")
        try:
            weight = float(pieces[0])
        except ValueError:
            raise ConfigError(f"{field} {text!r}: {pieces[0]!r} is not a number") from None
        if not math.isfinite(weight):
            raise ConfigError(f"{field} {text!r}: weights must be finite numbers, not {pieces[0]!r}")
        parts.append((weight, pieces[1]))
    return parts


def combined_score(weights: dict[str, float], features: NodeFeatures) -> float:
    """The weighted sum of the named heuristics of a node."""
    return sum(weight * heuristic_value(name, features) for name, weight in weights.items())


def heuristic_score(name: str, *, size: int, depth: int, statement_length: int) -> float:
    """A generated theorem's score by one heuristic spec (frequencies unknown: taken as 0)."""
    return combined_score(parse_heuristic(name), NodeFeatures(size, depth, statement_length))


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


def difficulty_label(*, successes: int, attempts: int) -> str | None:
    """``EASY`` if every attempt proved the theorem, ``HARD`` if none did, ``MEDIUM`` otherwise; None if it was
    not attempted (no outcome to label)."""
    if attempts <= 0:
        return None
    if successes >= attempts:
        return "EASY"
    return "HARD" if successes <= 0 else "MEDIUM"


def difficulty_token(level: str) -> str:
    """The conditioning special of a difficulty level (``HARD`` -> ``<HARD>``)."""
    if level not in DIFFICULTIES:
        raise ConfigError(f"unknown difficulty {level!r}; choose one of {', '.join(DIFFICULTIES)}")
    return f"<{level}>"
