"""Backward best-first search: finds known proofs with the oracle, fails cleanly, shares goals, avoids cycles,
and never reports a proof the kernel rejects."""

from __future__ import annotations

import logging
import time

import pytest

from core.errors import ConfigError, MetamathError
from core.metamath.environment import EnvErrorKind, Tactic
from core.metamath.prooftree import ProofTree, check_tree, make_theorem
from core.search.backward import BackwardSearch
from core.search.baseline import BaselinePolicy
from core.search.oracle import OraclePolicy
from core.search.runner import SearchResult, SearchSettings, run_search, run_searches

from .conftest import CountingPolicy, Loaded, ScriptedPolicy


def search(loaded: Loaded, label, policy, **settings) -> BackwardSearch:
    s = BackwardSearch(loaded.backward(label), SearchSettings(**settings))
    run_search(s, policy)
    return s


def test_oracle_proves_every_embedded_theorem(hilbert: Loaded) -> None:
    theorems = hilbert.provable()
    oracle = OraclePolicy.from_database(hilbert.db, distractors=3, true_rank=1)
    searches = [BackwardSearch(hilbert.backward(t), SearchSettings(expansions=500, max_depth=100)) for t in theorems]
    results = run_searches(searches, oracle, batch=16)
    assert [r.label for r in results] == [t.label for t in theorems]
    assert all(r.proved and r.stop_reason == "proved" for r in results), [r.label for r in results if not r.proved]
    for theorem, result in zip(theorems, results):
        check_tree(hilbert.db, hilbert.grammar, theorem, result.proof)  # the reported proof is a real proof
    assert sum(r.kernel_rejections for r in results) == 0
    invalid = {k for r in results for k in r.invalid}  # the distractors were tried and refused
    assert EnvErrorKind.NO_UNIFICATION.value in invalid


def test_oracle_proves_prop_theorems(prop: Loaded) -> None:
    theorems = prop.provable()[::25]  # 40 theorems spread over the database
    oracle = OraclePolicy.from_database(prop.db, [t.label for t in theorems])
    searches = [BackwardSearch(prop.backward(t), SearchSettings(expansions=1000, max_depth=200)) for t in theorems]
    results = run_searches(searches, oracle, batch=8)
    assert all(r.proved for r in results), [r.label for r in results if not r.proved]


def deep_theorem(loaded: Loaded, oracle: OraclePolicy) -> str:
    """A theorem whose oracle proof needs several expansions."""
    for theorem in loaded.provable():
        result = search(loaded, theorem.label, oracle, expansions=100)
        if result.proof is not None and result.expansions >= 3:
            return theorem.label
    raise AssertionError("no theorem needs 3 expansions")


def test_fails_cleanly_on_expansion_budget(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    label = deep_theorem(hilbert, oracle)
    enough = search(hilbert, label, oracle, expansions=100)
    assert enough.proof is not None
    tiny = search(hilbert, label, oracle, expansions=1)
    result = tiny.result()
    assert not result.proved and result.proof is None
    assert result.stop_reason == "expansions" and result.expansions == 1


class SlowPolicy:
    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def propose_backward(self, queries, k):
        time.sleep(self.seconds)
        return self.inner.propose_backward(queries, k)


def test_fails_cleanly_on_time_budget(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    label = deep_theorem(hilbert, oracle)
    result = search(hilbert, label, SlowPolicy(oracle, 0.09), expansions=100, timeout_s=0.1).result()
    assert not result.proved and result.stop_reason == "timeout"
    assert 1 <= result.expansions <= 2
    assert result.time_s >= 0.1  # the policy's time is charged to the search
    twin = search(hilbert, label, SlowPolicy(oracle, 0.0), expansions=100, timeout_s=5).result()
    assert twin.proved


def test_max_depth_bounds_the_search(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    label = deep_theorem(hilbert, oracle)
    depth = search(hilbert, label, oracle, expansions=100).result().proof_depth
    shallow = search(hilbert, label, oracle, expansions=100, max_depth=1).result()
    assert not shallow.proved and shallow.stop_reason == "exhausted" and shallow.expansions == 1
    assert search(hilbert, label, oracle, expansions=100, max_depth=depth).result().proved


def test_duplicate_goals_share_one_node(hilbert: Loaded) -> None:
    baseline = CountingPolicy(BaselinePolicy(hilbert.db, grammar=hilbert.grammar))
    shared = 0
    for theorem in hilbert.provable()[10:40]:
        s = search(hilbert, theorem, baseline, expansions=48)
        asked = [goal for label, goal in baseline.goals if label == theorem.label]
        assert len(asked) == len(set(asked)) == s.expansions  # no goal is ever expanded twice
        assert len(s.goals) == len({g.statement for g in s.goals.values()})
        shared += sum(len(g.parents) > 1 for g in s.goals.values())
    assert shared > 0  # some goals were reached by two tactics and shared


def _nested_implication(statement: tuple[str, ...]) -> bool:
    """``|- ( A -> ( B -> C ) )`` with single-symbol A, B, C, A != B."""
    return (
        len(statement) == 10
        and statement[:2] == ("|-", "(")
        and statement[3:5] == ("->", "(")
        and statement[6] == "->"
        and statement[8:] == (")", ")")
        and statement[2] != statement[5]
    )


def test_cycles_are_avoided(hilbert: Loaded) -> None:
    # com12 turns ( A -> ( B -> C ) ) into ( B -> ( A -> C ) ) and back: a cycle of two goals
    com12 = hilbert.theorem("com12")
    theorem = next(t for t in hilbert.provable() if t.number > com12.number and _nested_implication(t.statement))
    commuted = ("|-", "(", theorem.statement[5], "->", "(", theorem.statement[2], "->", *theorem.statement[7:])
    assert commuted not in {h.statement for h in theorem.essential}
    policy = ScriptedPolicy(lambda query: [Tactic("com12")])
    s = search(hilbert, theorem, policy, expansions=50)
    result = s.result()
    assert result.pruned == {"cycle": 1} and result.expansions == 2
    assert not result.proved and result.stop_reason == "exhausted"
    assert s.root.failed and len(s.goals) == 2


def test_root_equal_to_a_hypothesis_is_solved_at_once(hilbert: Loaded) -> None:
    statement = ("|-", "(", "ph", "->", "ps", ")")
    theorem = make_theorem(hilbert.db, "same", statement, [statement])
    s = BackwardSearch(hilbert.backward(theorem), SearchSettings())
    result = run_search(s, ScriptedPolicy())
    assert result.proved and result.expansions == 0 and result.proof_size == 1
    other = make_theorem(hilbert.db, "other", statement, [("|-", "ph")])
    assert not run_search(BackwardSearch(hilbert.backward(other), SearchSettings()), ScriptedPolicy()).proved


# --- the kernel check (a corrupted proof is rejected) -----------------------------------------------


def corrupt(tree: ProofTree) -> ProofTree:
    """The tree with the substitution of its first step that has one changed (a variable wrapped in -.)."""
    for node in tree.nodes():
        if node.substitution:
            variable = next(iter(node.substitution))
            wrong = dict(node.substitution)
            wrong[variable] = ("-.", *wrong[variable]) if wrong[variable] != ("ph",) else ("ps",)
            bad = ProofTree(node.label, wrong, node.children, node.statement)
            return _replace(tree, node, bad)
    raise AssertionError("no step with a substitution")


def _replace(tree: ProofTree, old: ProofTree, new: ProofTree) -> ProofTree:
    if tree is old:
        return new
    return ProofTree(tree.label, tree.substitution, tuple(_replace(c, old, new) for c in tree.children), tree.statement)


def test_found_proof_with_one_corrupted_step_is_rejected(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    label = deep_theorem(hilbert, oracle)
    found = search(hilbert, label, oracle, expansions=100).result()
    theorem = hilbert.theorem(label)
    check_tree(hilbert.db, hilbert.grammar, theorem, found.proof)
    with pytest.raises(MetamathError):
        check_tree(hilbert.db, hilbert.grammar, theorem, corrupt(found.proof))


def test_search_never_reports_a_proof_the_kernel_rejects(hilbert: Loaded, monkeypatch, caplog) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    label = deep_theorem(hilbert, oracle)
    s = BackwardSearch(hilbert.backward(label), SearchSettings(expansions=100))
    build = s.env.build_tree
    monkeypatch.setattr(s.env, "build_tree", lambda expansion, children: corrupt(build(expansion, children)))
    with caplog.at_level(logging.ERROR):
        result = run_search(s, oracle)
    assert not result.proved and result.proof is None
    assert result.stop_reason == "kernel_rejected" and result.kernel_rejections == 1
    assert any("BUG" in r.message and label in r.message for r in caplog.records)
    assert search(hilbert, label, oracle, expansions=100).result().proved  # the untouched twin


def test_result_json_round_trip(hilbert: Loaded) -> None:
    from core.search.runner import SearchResult

    oracle = OraclePolicy.from_database(hilbert.db)
    result = search(hilbert, deep_theorem(hilbert, oracle), oracle, expansions=100).result()
    again = SearchResult.from_json(result.to_json())
    assert again.to_json() == result.to_json()
    check_tree(hilbert.db, hilbert.grammar, hilbert.theorem(result.label), again.proof)
    with pytest.raises(MetamathError):
        SearchResult.from_json({"label": "x"})


def _subgoal_theorem(loaded: Loaded, root, statement, tree: ProofTree):
    """``statement`` as a theorem with the root's hypotheses that ``tree`` cites, in the root's context."""
    cited = {node.label for node in tree.nodes() if not node.children}
    used = [h for h in root.essential if h.label in cited]
    return make_theorem(
        loaded.db,
        f"{root.label}.sub",
        statement,
        [h.statement for h in used],
        sorted(root.disjoint),
        hypothesis_labels=[h.label for h in used],
        before=root,
    )


def _failed_with_subgoals(loaded: Loaded, oracle: OraclePolicy, limit: int):
    """The first (theorem, failed search) where a budget too small for the root leaves solved subgoals."""
    for theorem in loaded.provable():
        enough = search(loaded, theorem.label, oracle, expansions=200)
        for budget in range(enough.expansions - 1, 0, -1):
            s = BackwardSearch(loaded.backward(theorem), SearchSettings(expansions=budget), max_solved_subgoals=limit)
            result = run_search(s, oracle)
            if not result.proved and result.solved_subgoals:
                return theorem, s, result
    raise AssertionError("no failed search solved a subgoal")


def test_a_failed_search_reports_the_subgoals_it_proved_and_the_kernel_accepts_them(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    theorem, s, result = _failed_with_subgoals(hilbert, oracle, limit=2)
    assert 1 <= len(result.solved_subgoals) <= 2
    sizes = [tree.size for _, tree in result.solved_subgoals]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) >= 2
    for statement, tree in result.solved_subgoals:
        assert statement != theorem.statement and tree.statement == statement
        check_tree(hilbert.db, hilbert.grammar, _subgoal_theorem(hilbert, theorem, statement, tree), tree)
    twin = corrupt(result.solved_subgoals[0][1])  # one corrupted step: the kernel refuses it
    with pytest.raises(MetamathError):
        check_tree(hilbert.db, hilbert.grammar, _subgoal_theorem(hilbert, theorem, twin.statement, twin), twin)
    off = BackwardSearch(hilbert.backward(theorem), SearchSettings(expansions=s.expansions), max_solved_subgoals=0)
    assert run_search(off, oracle).solved_subgoals == []  # 0: none reported
    again = SearchResult.from_json(result.to_json())  # the JSON form keeps them
    assert [(st, tr.to_json()) for st, tr in again.solved_subgoals] == [
        (st, tr.to_json()) for st, tr in result.solved_subgoals
    ]


def test_a_proved_search_and_a_negative_limit_report_no_subgoals(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    theorem = hilbert.provable()[0]
    s = BackwardSearch(hilbert.backward(theorem), SearchSettings(expansions=200), max_solved_subgoals=4)
    assert run_search(s, oracle).proved and s.result().solved_subgoals == []
    with pytest.raises(ConfigError, match="max_solved_subgoals"):
        BackwardSearch(hilbert.backward(theorem), SearchSettings(), max_solved_subgoals=-1)
