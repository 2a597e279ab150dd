"""A small critic for HyperTree Proof Search: the probability that a goal is provable within the budget.

:class:`GoalCritic` is a model of its own, separate from the prover's sequence-to-sequence model (the
smaller change: no new head, checkpoint field or training mode on :mod:`core.models.transformer`). A goal
(a statement, a sequence of Metamath symbols) is read as a bag of hashed features: its symbols, its
adjacent symbol pairs, and a length bucket, each hashed with CRC-32 (stable across processes) into
``buckets`` embedding rows. The mean of their embeddings goes through a two-layer MLP to one logit;
the value is its sigmoid. It needs no vocabulary, so it reads goals of any database.

It implements :class:`core.search.htps.Critic` (``values``). :func:`critic_step` is one optimiser step of
binary cross-entropy against targets in [0, 1] (the soft targets of
:func:`core.search.htps.critic_examples` included), optionally weighted per example.

:class:`CriticTrainer` is what the prover trainer keeps of it: the critic, its Adam optimiser and step count,
with a state dict for the trainer's extras. A critic is published inside a prover checkpoint
(:mod:`core.models.checkpoint`: its weights under :data:`CRITIC_PREFIX`, its :meth:`GoalCritic.config` in
the metadata); :func:`critic_from_state` rebuilds one from those, checking that they fit.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from core.errors import ConfigError

LENGTH_BUCKETS = (4, 8, 16, 32, 64, 128)
CRITIC_FORMAT = "advprover-critic/1"
CRITIC_PREFIX = "critic."  # the critic's tensors in a prover checkpoint's weights


class GoalCritic(nn.Module):
    """Goal -> probability of being provable (see the module docstring)."""

    def __init__(self, *, buckets: int = 1 << 14, dim: int = 64, hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        for name, value in (("buckets", buckets), ("dim", dim), ("hidden", hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"critic {name} must be an integer >= 1, got {value!r}")
        generator = torch.Generator().manual_seed(seed)
        self.buckets, self.dim, self.hidden_size = buckets, dim, hidden
        self.embedding = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)

    def config(self) -> dict[str, Any]:
        """What rebuilds this critic's shape (JSON, for a checkpoint's metadata)."""
        return {"format": CRITIC_FORMAT, "buckets": self.buckets, "dim": self.dim, "hidden": self.hidden_size}

    def features(self, goal: Sequence[str]) -> list[int]:
        """The hashed feature ids of a goal."""
        keys = [f"s:{symbol}" for symbol in goal]
        keys += [f"p:{a} {b}" for a, b in itertools.pairwise(goal)]
        keys.append(f"len:{sum(len(goal) > b for b in LENGTH_BUCKETS)}")
        return [zlib.crc32(key.encode()) % self.buckets for key in keys]

    def forward(self, goals: Sequence[Sequence[str]]) -> torch.Tensor:
        """The logits of ``goals`` (a 1-D tensor)."""
        ids: list[int] = []
        offsets: list[int] = []
        for goal in goals:
            offsets.append(len(ids))
            ids.extend(self.features(goal))
        device = self.out.weight.device
        pooled = self.embedding(
            torch.tensor(ids, dtype=torch.long, device=device), torch.tensor(offsets, dtype=torch.long, device=device)
        )
        return self.out(torch.relu(self.hidden(pooled))).squeeze(-1)

    def values(self, goals: Sequence[Sequence[str]]) -> list[float]:
        """Probabilities in [0, 1], one per goal (no gradient); the :class:`core.search.htps.Critic` API."""
        if not goals:
            return []
        with torch.no_grad():
            return torch.sigmoid(self(goals)).tolist()


def critic_step(
    critic: GoalCritic,
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
    goals: Sequence[Sequence[str]],
    targets: Sequence[float],
    weights: Sequence[float] | None = None,
) -> float:
    """One optimiser step of (weighted) binary cross-entropy towards ``targets``; returns the loss.
    ``optimizer``: one, or several that share the parameters (e.g. :class:`CriticTrainer`'s)."""
    if len(goals) != len(targets) or (weights is not None and len(weights) != len(goals)):
        raise ConfigError(
            f"critic step: {len(goals)} goals, {len(targets)} targets"
            f"{'' if weights is None else f', {len(weights)} weights'}; give one of each per goal"
        )
    if not goals:
        raise ConfigError("critic step: no examples")
    if any(not 0.0 <= t <= 1.0 for t in targets):
        raise ConfigError("critic step: targets must be probabilities in [0, 1]")
    critic.train()
    device = critic.out.weight.device
    target = torch.tensor(list(targets), dtype=torch.float32, device=device)
    weight = None if weights is None else torch.tensor(list(weights), dtype=torch.float32, device=device)
    loss = nn.functional.binary_cross_entropy_with_logits(critic(goals), target, weight=weight)
    optimizers = [optimizer] if isinstance(optimizer, torch.optim.Optimizer) else list(optimizer)
    for each in optimizers:
        each.zero_grad()
    loss.backward()
    for each in optimizers:
        each.step()
    critic.eval()
    return float(loss.item())


def critic_from_state(config: Any, tensors: dict[str, torch.Tensor]) -> GoalCritic:
    """The critic (in eval mode, on the CPU) of a :meth:`GoalCritic.config` and its state dict; ConfigError
    if the config is not a critic's or the tensors do not fit it."""
    if not isinstance(config, dict) or config.get("format") != CRITIC_FORMAT:
        raise ConfigError(f"not a critic configuration (no format {CRITIC_FORMAT!r}): {str(config)[:80]}")
    try:
        critic = GoalCritic(buckets=config["buckets"], dim=config["dim"], hidden=config["hidden"])
        critic.load_state_dict(tensors)
    except (KeyError, RuntimeError) as error:
        detail = " ".join(str(error).split())[:300]
        raise ConfigError(f"critic weights do not fit its configuration ({detail})") from None
    return critic.eval()


class CriticTrainer:
    """A critic, its optimisers (learning rate ``lr``) and its step count.

    The embedding table is most of the critic's weights and a batch touches few of its rows, so its gradient
    is sparse and a lazy Adam (:class:`torch.optim.SparseAdam`) updates only those rows; Adam updates the
    MLP. (A dense Adam over the whole table made a step cost about as much as a small prover model's.)
    """

    def __init__(self, critic: GoalCritic, lr: float = 1e-3) -> None:
        self.critic = critic
        critic.embedding.sparse = True
        dense = [p for name, p in critic.named_parameters() if not name.startswith("embedding.")]
        self.optimizers = (
            torch.optim.SparseAdam(list(critic.embedding.parameters()), lr=lr),
            torch.optim.Adam(dense, lr=lr),
        )
        self.steps = 0
        self.loss = float("nan")

    @property
    def lr(self) -> float:
        return float(self.optimizers[1].param_groups[0]["lr"])

    def step(self, goals: Sequence[Sequence[str]], targets: Sequence[float]) -> float:
        """One :func:`critic_step`; returns its loss."""
        self.loss = critic_step(self.critic, self.optimizers, goals, targets)
        self.steps += 1
        return self.loss

    def state_dict(self) -> dict[str, Any]:
        """The optimisers' states and the step count (the weights travel in the checkpoint's weights)."""
        return {
            "sparse": self.optimizers[0].state_dict(),
            "dense": self.optimizers[1].state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; ConfigError if it is not one."""
        try:
            self.optimizers[0].load_state_dict(state["sparse"])
            self.optimizers[1].load_state_dict(state["dense"])
            self.steps = int(state["steps"])
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"critic trainer state is unusable ({error!r})") from None
