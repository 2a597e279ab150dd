"""Hindsight relabelling: the intermediate statements of a generated rollout become checked theorems."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from core.adversarial import hindsight
from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.hindsight import hindsight_theorems
from core.adversarial.records import GenerationRecord
from core.adversarial.workspace import Workspace
from core.metamath.embedded import embedded_database_path
from core.metamath.prooftree import check_tree, tree_from_proof
from core.search.baseline import BaselinePolicy
from tests.scripted_rollouts import INTERMEDIATE, PUBLISHED, scripted_record

LONG = 10_000  # no statement is too long


@pytest.fixture(scope="module")
def workspace() -> Workspace:
    return Workspace.load(str(embedded_database_path()))


@pytest.fixture(scope="module")
def record(workspace: Workspace) -> GenerationRecord:
    return scripted_record(workspace)


def statements(found: list) -> list[str]:
    return [" ".join(item.theorem.statement) for item in found]


def test_every_intermediate_statement_becomes_a_kernel_checked_theorem(workspace, record) -> None:
    counters: Counter[str] = Counter()
    found = hindsight_theorems(workspace, record, max_nodes=10, max_statement_tokens=LONG, counters=counters)
    assert record.goal.statement == PUBLISHED
    assert statements(found) == INTERMEDIATE  # the one inside the published proof, the one beside it
    for item in found:
        check_tree(workspace.db, workspace.grammar, item.theorem, item.tree, workspace.kernel)
        assert item.tree.size > 1 and item.theorem.label.startswith(record.goal.label)
    assert counters == Counter(hindsight_theorems=2, hindsight_published=1, hindsight_one_step=4)


def test_relabelled_theorems_are_capped_largest_first(workspace, record) -> None:
    assert statements(hindsight_theorems(workspace, record, max_nodes=1, max_statement_tokens=LONG)) == INTERMEDIATE[:1]
    assert hindsight_theorems(workspace, record, max_nodes=0, max_statement_tokens=LONG) == []


def test_too_long_statements_are_skipped(workspace, record) -> None:
    counters: Counter[str] = Counter()
    assert hindsight_theorems(workspace, record, max_nodes=10, max_statement_tokens=13, counters=counters) == []
    assert counters["hindsight_too_long"] == 2  # both have 14 tokens (and no hypotheses)
    assert statements(hindsight_theorems(workspace, record, max_nodes=10, max_statement_tokens=14)) == INTERMEDIATE


def test_a_held_out_statement_is_never_relabelled(workspace, record, monkeypatch) -> None:
    monkeypatch.setitem(vars(workspace), "held_out_statements", frozenset({tuple(INTERMEDIATE[0].split())}))
    counters: Counter[str] = Counter()
    found = hindsight_theorems(workspace, record, max_nodes=10, max_statement_tokens=LONG, counters=counters)
    assert statements(found) == INTERMEDIATE[1:]
    assert counters["hindsight_held_out"] == 1


def test_the_workspace_holds_out_every_valid_and_test_statement(workspace) -> None:
    held_out = [t for name in ("valid", "test") for t in workspace.split(name)]
    assert held_out and {t.statement for t in held_out} == workspace.held_out_statements
    assert not {t.statement for t in workspace.train_theorems()} - workspace.known_statements


def corrupted(record: GenerationRecord, index: int, **change: object) -> GenerationRecord:
    assert record.rollout is not None
    steps = list(record.rollout.steps)
    steps[index] = dataclasses.replace(steps[index], **change)  # type: ignore[arg-type]
    return dataclasses.replace(record, rollout=dataclasses.replace(record.rollout, steps=tuple(steps)))


@pytest.mark.parametrize(
    "change",
    [
        {"added": "|- ( ( ph -> ps ) -> ( ph -> ps ) )"},  # records a statement the step does not prove
        {"substitution": {"ph": "ph", "ps": "ps"}},  # ax-mp from nodes the graph does not have
        {"label": "ax-3"},  # another axiom
    ],
)
def test_a_rollout_that_does_not_replay_as_recorded_gives_nothing(workspace, record, change) -> None:
    counters: Counter[str] = Counter()
    assert hindsight_theorems(workspace, corrupted(record, 2, **change), max_nodes=10, max_statement_tokens=LONG,
                              counters=counters) == []  # fmt: skip
    assert counters == Counter(hindsight_replay_failed=1)


def test_a_rollout_citing_a_held_out_theorem_gives_nothing(workspace, record) -> None:
    held_out = next(t for name in ("valid", "test") for t in workspace.split(name) if not t.essential)
    last = record.rollout.steps[-1]
    cited = dataclasses.replace(last, label=held_out.label, substitution={v: v for v in held_out.variables},
                                added=" ".join(held_out.statement))  # fmt: skip
    twin = dataclasses.replace(
        record, rollout=dataclasses.replace(record.rollout, steps=(*record.rollout.steps, cited))
    )
    counters: Counter[str] = Counter()
    assert hindsight_theorems(workspace, twin, max_nodes=10, max_statement_tokens=LONG, counters=counters) == []
    assert counters == Counter(hindsight_replay_failed=1)


def test_database_records_and_records_without_rollout_give_nothing(workspace, record) -> None:
    theorem = workspace.train_theorems()[0]
    database = GenerationRecord.of_database(theorem, tree_from_proof(workspace.db, theorem), source_stream="g")
    assert hindsight_theorems(workspace, database, max_nodes=10, max_statement_tokens=LONG) == []
    no_rollout = dataclasses.replace(record, rollout=None)
    assert hindsight_theorems(workspace, no_rollout, max_nodes=10, max_statement_tokens=LONG) == []


def test_generated_rollouts_relabel_distinct_checked_theorems_on_their_hypotheses(workspace) -> None:
    generator = TheoremGenerator(
        workspace,
        BaselinePolicy(workspace.db, grammar=workspace.grammar, seed=0),
        GenerationSettings(max_steps=5, min_steps=3, attempts_per_step=4),
        seed=3,
    )
    records = [GenerationRecord.of_generated(g, generator_version=0, source_stream="g")
               for g in map(generator.select, generator.run(8)) if g is not None]  # fmt: skip
    total = 0
    for generation in records:
        found = hindsight_theorems(workspace, generation, max_nodes=10, max_statement_tokens=LONG)
        assert len(set(statements(found))) == len(found) and generation.goal.statement not in statements(found)
        rollout = set(generation.rollout.hypotheses)
        for item in found:
            check_tree(workspace.db, workspace.grammar, item.theorem, item.tree, workspace.kernel)
            assert {" ".join(h.statement) for h in item.theorem.essential} <= rollout
            assert item.theorem.statement not in workspace.held_out_statements
        total += len(found)
    assert records and total >= len(records)


def test_an_intermediate_theorem_the_kernel_refuses_is_skipped_and_counted(workspace, record, monkeypatch) -> None:
    """Each relabelled theorem is re-checked by the kernel: one stated as something its proof does not prove
    (here: the first intermediate stated as the second) is dropped, and the other kept (the accepted twin)."""
    real = hindsight.make_theorem
    first, second = (tuple(text.split()) for text in INTERMEDIATE)

    def misstated(db, label, statement, *args, **kwargs):
        return real(db, label, second if tuple(statement) == first else statement, *args, **kwargs)

    monkeypatch.setattr(hindsight, "make_theorem", misstated)
    counters: Counter[str] = Counter()
    found = hindsight_theorems(workspace, record, max_nodes=10, max_statement_tokens=LONG, counters=counters)
    assert statements(found) == INTERMEDIATE[1:]
    assert counters["hindsight_kernel_rejected"] == 1 and counters["hindsight_theorems"] == 1
