"""Forward greedy and sampling provers: find known proofs with the oracle, fail cleanly on budgets."""

from __future__ import annotations

import pytest

from core.metamath.environment import EnvErrorKind, Tactic
from core.metamath.prooftree import check_tree, make_theorem
from core.search.forward import ForwardGreedySearch, ForwardSamplingSearch
from core.search.oracle import OraclePolicy
from core.search.runner import SearchSettings, run_search, run_searches

from .conftest import Loaded, ScriptedPolicy

SEARCHES = {"forward-greedy": ForwardGreedySearch, "forward-sampling": ForwardSamplingSearch}


def forward(loaded: Loaded, label, policy, prover: str = "forward-greedy", **settings):
    s = SEARCHES[prover](loaded.forward_factory(label), SearchSettings(prover=prover, **settings))
    return run_search(s, policy)


@pytest.mark.parametrize("prover", sorted(SEARCHES))
def test_oracle_proves_every_embedded_theorem(hilbert: Loaded, prover: str) -> None:
    theorems = hilbert.provable()
    oracle = OraclePolicy.from_database(hilbert.db, distractors=2, true_rank=2)
    searches = [
        SEARCHES[prover](hilbert.forward_factory(t), SearchSettings(prover=prover, expansions=500, max_depth=500))
        for t in theorems
    ]
    results = run_searches(searches, oracle, batch=16)
    assert all(r.proved for r in results), [r.label for r in results if not r.proved]
    for theorem, result in zip(theorems, results):
        check_tree(hilbert.db, hilbert.grammar, theorem, result.proof)
        hypotheses = {h.label for h in theorem.essential}
        steps = {n.statement for n in result.proof.nodes() if n.label not in hypotheses}
        assert result.expansions == len(steps)  # one step per new node
    assert EnvErrorKind.NO_UNIFICATION.value not in {k for r in results for k in r.invalid}
    assert {k for r in results for k in r.invalid}  # the distractors (tried first) were refused


@pytest.mark.parametrize("prover", sorted(SEARCHES))
def test_oracle_proves_prop_theorems(prop: Loaded, prover: str) -> None:
    theorems = prop.provable()[::40]
    oracle = OraclePolicy.from_database(prop.db, [t.label for t in theorems])
    searches = [
        SEARCHES[prover](prop.forward_factory(t), SearchSettings(prover=prover, expansions=2000, max_depth=2000))
        for t in theorems
    ]
    assert all(r.proved for r in run_searches(searches, oracle, batch=8))


def long_theorem(loaded: Loaded) -> str:
    """A theorem whose proof has at least 4 steps."""
    return next(
        t.label
        for t in loaded.provable()
        if forward(loaded, t, OraclePolicy.from_database(loaded.db, [t.label]), expansions=100).expansions >= 4
    )


@pytest.mark.parametrize("prover", sorted(SEARCHES))
def test_fails_cleanly_on_expansion_budget(hilbert: Loaded, prover: str) -> None:
    label = long_theorem(hilbert)
    oracle = OraclePolicy.from_database(hilbert.db, [label], distractors=0)
    result = forward(hilbert, label, oracle, prover, expansions=2)
    assert not result.proved and result.proof is None
    assert result.stop_reason == "expansions" and result.expansions == 2
    assert forward(hilbert, label, oracle, prover, expansions=100).proved


def test_greedy_stops_at_max_depth(hilbert: Loaded) -> None:
    label = long_theorem(hilbert)
    oracle = OraclePolicy.from_database(hilbert.db, [label], distractors=0)
    result = forward(hilbert, label, oracle, expansions=100, max_depth=2)
    assert not result.proved and result.stop_reason == "max_depth" and result.expansions == 2


def test_sampling_restarts_rollouts_until_the_budget(hilbert: Loaded) -> None:
    label = long_theorem(hilbert)
    oracle = OraclePolicy.from_database(hilbert.db, [label], distractors=0)
    s = ForwardSamplingSearch(
        hilbert.forward_factory(label), SearchSettings(prover="forward-sampling", expansions=7, max_depth=2)
    )
    result = run_search(s, oracle)
    assert not result.proved and result.stop_reason == "expansions" and result.expansions == 7
    assert s.rollouts == 4  # rollouts of 2 steps each: 2 + 2 + 2 + 1


def test_greedy_stuck_when_nothing_applies(hilbert: Loaded) -> None:
    label = long_theorem(hilbert)
    policy = ScriptedPolicy(forward=lambda query: [Tactic("ax-mp"), Tactic("no-such-label")])
    result = forward(hilbert, label, policy, expansions=100)
    assert not result.proved and result.stop_reason == "exhausted" and result.expansions == 1
    assert result.invalid == {EnvErrorKind.MISSING_SUBSTITUTION.value: 1, EnvErrorKind.UNKNOWN_LABEL.value: 1}


def test_goal_among_the_hypotheses_is_proved_at_once(hilbert: Loaded) -> None:
    statement = ("|-", "(", "ph", "->", "ps", ")")
    theorem = make_theorem(hilbert.db, "same", statement, [("|-", "ph"), statement])
    for prover, search in SEARCHES.items():
        result = run_search(search(hilbert.forward_factory(theorem), SearchSettings(prover=prover)), ScriptedPolicy())
        assert result.proved and result.expansions == 0
