"""Generating theorems on the embedded database, with the model-free baseline as the generator policy."""

from __future__ import annotations

import pytest

from core.adversarial.generation import (
    GenerationSettings,
    TheoremGenerator,
    complete_tactic,
)
from core.adversarial.records import GenerationRecord, Goal
from core.adversarial.workspace import Workspace
from core.errors import MetamathError, MMVerificationError, RecordError
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import Tactic
from core.metamath.prooftree import ProofTree, check_tree
from core.search.baseline import BaselinePolicy
from core.search.policy import Proposal


@pytest.fixture(scope="module")
def workspace() -> Workspace:
    return Workspace.load(str(embedded_database_path()))


@pytest.fixture(scope="module")
def generated(workspace: Workspace) -> tuple[TheoremGenerator, list]:
    policy = BaselinePolicy(workspace.db, grammar=workspace.grammar, seed=0)
    generator = TheoremGenerator(
        workspace, policy, GenerationSettings(max_steps=4, min_steps=1, attempts_per_step=4), seed=3
    )
    results = [generator.select(rollout) for rollout in generator.run(24)]
    return generator, [g for g in results if g is not None]


def test_rollouts_give_checked_theorems(workspace: Workspace, generated) -> None:
    _generator, theorems = generated
    assert len(theorems) >= 5
    for item in theorems:
        check_tree(workspace.db, workspace.grammar, item.theorem, item.proof, workspace.kernel)
        assert not workspace.is_known_statement(item.theorem.statement)


def test_records_round_trip_to_the_same_theorem(workspace: Workspace, generated) -> None:
    _, theorems = generated
    for item in theorems:
        record = GenerationRecord.of_generated(item, generator_version=3, source_stream="g")
        theorem = record.goal.theorem(workspace)
        assert theorem.statement == item.theorem.statement
        assert [h.statement for h in theorem.essential] == [h.statement for h in item.theorem.essential]
        check_tree(workspace.db, workspace.grammar, theorem, ProofTree.from_json(record.proof), workspace.kernel)
        assert record.rollout is not None
        steps = [s.to_step() for s in record.rollout.steps]
        assert steps and all(s.tactic.label for s in steps)


def test_a_corrupted_generated_proof_is_rejected(workspace: Workspace, generated) -> None:
    _, theorems = generated
    item = next(t for t in theorems if t.proof.size > 1)
    record = GenerationRecord.of_generated(item, generator_version=0, source_stream="g")
    theorem = record.goal.theorem(workspace)
    proof = dict(record.proof)
    proof["substitution"] = {v: "( " + e + " -> " + e + " )" for v, e in proof["substitution"].items()}
    with pytest.raises(MMVerificationError):
        check_tree(workspace.db, workspace.grammar, theorem, ProofTree.from_json(proof), workspace.kernel)


def test_generator_never_uses_held_out_theorems(workspace: Workspace, generated) -> None:
    _, theorems = generated
    train = {t.label for t in workspace.train_theorems()}
    for item in theorems:
        assert item.rollout.source_label is None or item.rollout.source_label in train
        assert not {n.label for n in item.proof.nodes()} & workspace.held_out_labels


class FixedPolicy:
    """Always proposes ``ax-1`` with ph := ( ph -> ps ), ps := ch (so every rollout makes the same theorem)."""

    def propose_forward(self, queries, k, temperature=None):
        tactic = Tactic("ax-1", {"ph": ("(", "ph", "->", "ps", ")"), "ps": ("ch",)})
        return [[Proposal(tactic, 0.0)] for _ in queries]

    def propose_backward(self, queries, k):
        return [[] for _ in queries]


def test_recent_duplicates_are_filtered(workspace: Workspace) -> None:
    settings = GenerationSettings(goal_source="none", max_steps=1, min_steps=1, attempts_per_step=1, selection="last")
    generator = TheoremGenerator(workspace, FixedPolicy(), settings, seed=0)  # type: ignore[arg-type]
    kept = [generator.select(r) for r in generator.run(6)]
    assert sum(g is not None for g in kept) == 1
    assert generator.counters["filtered_duplicate"] == 5


def test_duplicates_are_kept_and_flagged_when_penalized(workspace: Workspace) -> None:
    settings = GenerationSettings(goal_source="none", max_steps=1, min_steps=1, attempts_per_step=1)
    generator = TheoremGenerator(
        workspace,
        FixedPolicy(),
        settings,
        seed=0,  # type: ignore[arg-type]
        keep_duplicates=True,
    )
    kept = [generator.select(r) for r in generator.run(3)]
    assert [g.duplicate for g in kept] == [False, True, True]


def test_completion_fills_variables_from_graph_nodes(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, BaselinePolicy(workspace.db), GenerationSettings(min_steps=1), seed=0)
    rollout = generator.new_rollout()
    while not rollout.env.theorem.essential:
        rollout = generator.new_rollout()
    done = complete_tactic(rollout.env, Tactic("ax-mp"), generator.rng) or complete_tactic(
        rollout.env, Tactic("a1i"), generator.rng
    )
    if done is not None:
        tactic, node = done
        assert set(tactic.substitution) == set(workspace.db.assertion(tactic.label).variables)
        assert node.statement in rollout.env.by_statement
    assert complete_tactic(rollout.env, Tactic("no-such-label"), generator.rng) is None


def test_goal_records_that_reuse_database_labels_are_refused(workspace: Workspace) -> None:
    goal = Goal.from_json({"label": "ax-1", "statement": "|- ( ph -> ph )", "hypotheses": [], "disjoint": []})
    with pytest.raises(MetamathError, match="reuses database label"):
        goal.theorem(workspace)
    with pytest.raises(RecordError, match="field 'label' is missing"):
        Goal.from_json({"statement": "|- ph", "hypotheses": []})
    with pytest.raises(RecordError, match=r"field 'hypotheses'\[0\]: should be a pair"):
        Goal.from_json({"label": "new.1", "statement": "|- ph", "hypotheses": [["new.h1"]]})
    with pytest.raises(MetamathError, match="malformed goal"):
        Goal("new.1", "|- ph", (("new.h1",),)).theorem(workspace)


def test_dataset_records_are_train_theorems(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, BaselinePolicy(workspace.db), GenerationSettings(min_steps=1), seed=5)
    theorem, tree = generator.dataset_theorem()
    record = GenerationRecord.of_database(theorem, tree, source_stream="g")
    assert record.goal.theorem(workspace) is workspace.db.assertion(theorem.label)
    assert theorem.label not in workspace.held_out_labels
