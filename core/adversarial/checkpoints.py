"""What a trainer's checkpoint holds, and how models are built and restored from it.

A published checkpoint is a policy state (:func:`core.search.model_policy.policy_state`: the model's
weights; metadata with its configuration, vocabulary, kind and formats) plus, under :data:`TRAINER_KEY`,
the trainer's optimizer state and step, so that a restarted trainer resumes exactly. Actors ignore the
trainer part. The metadata also commits the trainer's input cursor (``cursor``), the position of the
oldest record in its replay buffer (``window``) and its counters.
"""

from __future__ import annotations

from typing import Any

import torch

from core.metamath.database import Database
from core.models.formats import build_vocabulary
from core.models.transformer import ModelConfig, Seq2Seq
from core.models.vocab import Vocabulary

TRAINER_KEY = "__trainer__"


def split_state(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(model weights, trainer state or None) of a published state dict."""
    weights = {k: v for k, v in state_dict.items() if k != TRAINER_KEY}
    return weights, state_dict.get(TRAINER_KEY)


def with_trainer_state(weights: dict[str, Any], trainer_state: dict[str, Any]) -> dict[str, Any]:
    """A state dict holding the model weights and the trainer's state (minus its copy of the weights)."""
    extra = {k: v for k, v in trainer_state.items() if k != "model"}
    return {**weights, TRAINER_KEY: extra}


def new_model(db: Database, size: str, *, max_source_tokens: int, max_target_tokens: int,
              seed: int = 0) -> tuple[Seq2Seq, Vocabulary]:
    """A freshly initialised model of a named size, with the database's vocabulary."""
    vocab = build_vocabulary(db)
    torch.manual_seed(seed)
    config = ModelConfig.named(size, vocab_size=len(vocab), max_source_len=max_source_tokens,
                               max_target_len=max_target_tokens)
    return Seq2Seq(config), vocab
