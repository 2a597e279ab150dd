"""Fixtures for the model tests: a toy reversal task and a tiny model trained on it (once per session), and
the embedded hilbert.mm database with a codec over it (once per module)."""

from __future__ import annotations

import random

import pytest
import torch

from core.metamath import Database, read_database
from core.metamath.embedded import embedded_database_path
from core.models import ModelConfig, Seq2Seq, TrainStats, train_examples
from core.models.formats import Codec, build_vocabulary

VOCAB_SIZE = 24
FIRST_SYMBOL = 11  # ids below are the built-in specials' (pad 0, bos 1, eos 2, ...)


def reversal_examples(count: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """``count`` (source, reversed source) pairs of 2 to 6 symbols."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        source = [rng.randrange(FIRST_SYMBOL, VOCAB_SIZE) for _ in range(rng.randint(2, 6))]
        examples.append((source, source[::-1]))
    return examples


def tiny_model(seed: int = 0, **overrides: object) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig.named("tiny", vocab_size=VOCAB_SIZE, **overrides))


@pytest.fixture(scope="session")
def tiny():
    """``tiny(seed=0, **overrides)``: a fresh tiny model over the toy vocabulary of VOCAB_SIZE ids."""
    return tiny_model


@pytest.fixture(scope="session")
def reversal() -> list[tuple[list[int], list[int]]]:
    return reversal_examples(32, seed=0)


@pytest.fixture(scope="session")
def trained(reversal: list[tuple[list[int], list[int]]]) -> tuple[Seq2Seq, TrainStats]:
    """A tiny model overfitted on ``reversal`` (about 1 s on 2 cores). Tests must not train it further."""
    model = tiny_model()
    stats = train_examples(model, reversal, steps=150, batch_size=32, lr=1e-2, warmup_steps=20, log_every=50)
    return model.eval(), stats


@pytest.fixture
def untrained() -> Seq2Seq:
    return tiny_model(seed=1).eval()


@pytest.fixture(scope="module")
def db() -> Database:
    """The embedded hilbert.mm database."""
    return read_database(embedded_database_path())


@pytest.fixture(scope="module")
def codec(db: Database) -> Codec:
    """A codec over ``db``'s vocabulary, with room for hilbert.mm's longest statements."""
    return Codec(build_vocabulary(db), max_source_len=256, max_target_len=63)
