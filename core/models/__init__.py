"""Policy models: a vocabulary, a transformer encoder-decoder, batched decoding and training.

This layer is generic (token ids in, token ids out) and knows nothing of Metamath; the sequence formats
(goal -> tactic) are built on top of it. Checkpoint files are the storage layer's business: here models,
vocabularies and trainers only expose state dicts and JSON-able configurations.
"""

from __future__ import annotations

from core.models.decoding import Candidate, DecodeStats, beam_search, greedy, measure, sample, score
from core.models.training import Seq2SeqTrainer, TrainStats, train_examples
from core.models.transformer import ModelConfig, Seq2Seq
from core.models.vocab import Token, Vocabulary

__all__ = [
    "Candidate", "DecodeStats", "ModelConfig", "Seq2Seq", "Seq2SeqTrainer", "Token", "TrainStats",
    "Vocabulary", "beam_search", "greedy", "measure", "sample", "score", "train_examples",
]  # fmt: skip
