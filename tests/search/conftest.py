"""Fixtures for the search tests: the embedded database (always there) and prop.mm (skips when absent)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from core.metamath.database import Assertion, Database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import BackwardEnv, ForwardEnv, Tactic
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.models.formats import build_vocabulary
from core.models.training import new_model
from core.models.transformer import Seq2Seq
from core.models.vocab import Vocabulary
from core.search.policy import BackwardQuery, ForwardQuery, Proposal
from tests.torch_threads import one_torch_thread


@dataclass
class Loaded:
    """A database with its grammar and kernel, and helpers to build environments in it."""

    db: Database
    grammar: Grammar
    kernel: Kernel

    def theorem(self, label: str) -> Assertion:
        return self.db.assertion(label)

    def backward(self, label: str | Assertion, forbidden: Sequence[str] = ()) -> BackwardEnv:
        theorem = self.theorem(label) if isinstance(label, str) else label
        return BackwardEnv(self.db, theorem, grammar=self.grammar, kernel=self.kernel, forbidden=forbidden)

    def forward_factory(self, label: str | Assertion, forbidden: Sequence[str] = ()) -> Callable[[], ForwardEnv]:
        theorem = self.theorem(label) if isinstance(label, str) else label
        return lambda: ForwardEnv(self.db, theorem, grammar=self.grammar, kernel=self.kernel, forbidden=forbidden)

    def provable(self) -> list[Assertion]:
        return [a for a in self.db.theorems() if a.typecode == self.db.provable_typecode and not a.is_incomplete]


def load(path: Path | str) -> Loaded:
    db = read_database(path)
    return Loaded(db, Grammar(db), Kernel(db))


@pytest.fixture(scope="session")
def hilbert() -> Loaded:
    """The embedded database (hilbert.mm, 98 theorems)."""
    return load(embedded_database_path())


@pytest.fixture(scope="session")
def prop(prop_mm: Path) -> Loaded:
    """set.mm's propositional part (998 theorems); skips when the shared data is absent."""
    return load(prop_mm)


class ScriptedPolicy:
    """Answers from a script: goal text (backward) or a function of the query -> tactics, uniform log-probs.

    Records every query it is asked (``asked``) and every batch size (``calls``).
    """

    def __init__(
        self,
        backward: Mapping[str, Sequence[Tactic]] | Callable[[BackwardQuery], Sequence[Tactic]] | None = None,
        forward: Callable[[ForwardQuery], Sequence[Tactic]] | None = None,
    ) -> None:
        self.backward = backward or {}
        self.forward = forward
        self.asked: list[BackwardQuery | ForwardQuery] = []
        self.calls: list[tuple[str, int]] = []

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        self.calls.append(("backward", len(queries)))
        self.asked.extend(queries)
        out = []
        for query in queries:
            script = self.backward
            tactics = script(query) if callable(script) else script.get(" ".join(query.goal), ())
            out.append([Proposal(t, -1.0) for t in tactics][:k])
        return out

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        self.calls.append(("forward", len(queries)))
        self.asked.extend(queries)
        return [[Proposal(t, -1.0) for t in (self.forward(q) if self.forward else ())][:k] for q in queries]


class LearnedScriptedPolicy(ScriptedPolicy):
    """A scripted policy that says it is learned (so ``with_baseline`` wraps it), without a model."""

    learned = True


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models decode fastest on one thread (and do not fight other processes for the cores)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def untrained(hilbert: Loaded) -> tuple[Seq2Seq, Vocabulary]:
    """An untrained tiny prover of the embedded database: its substitutions are noise."""
    torch.manual_seed(0)
    vocab = build_vocabulary(hilbert.db)
    return new_model(vocab, "tiny", seed=0), vocab


class CountingPolicy:
    """Wraps a policy; records the size and kind of every call and every backward goal asked."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []
        self.goals: list[tuple[str, tuple[str, ...]]] = []

    def propose_backward(self, queries, k):
        self.calls.append(("backward", len(queries)))
        self.goals.extend((q.env.theorem.label, q.goal) for q in queries)
        return self.inner.propose_backward(queries, k)

    def propose_forward(self, queries, k, temperature=None):
        self.calls.append(("forward", len(queries)))
        return self.inner.propose_forward(queries, k, temperature)
