"""The runner: batched policy calls give the same results as one search at a time; settings validation."""

from __future__ import annotations

import pytest

from configs.experiment import ProverActorConfig
from core.errors import ConfigError, ModelError
from core.metamath.prooftree import proof_tokens
from core.search.baseline import BaselinePolicy
from core.search.evaluation import make_search
from core.search.oracle import OraclePolicy
from core.search.runner import SearchSettings, run_searches

from .conftest import CountingPolicy, Loaded


def outcomes(loaded: Loaded, results) -> list[tuple]:
    return [
        (
            r.label,
            r.proved,
            r.expansions,
            r.stop_reason,
            r.invalid,
            r.pruned,
            r.nodes,
            proof_tokens(loaded.db, loaded.grammar, loaded.theorem(r.label), r.proof, compressed=False)
            if r.proof
            else None,
        )
        for r in results
    ]


@pytest.mark.parametrize("prover", ["backward", "forward-greedy"])
def test_batched_equals_one_at_a_time(hilbert: Loaded, prover: str) -> None:
    theorems = hilbert.provable()[:24]
    settings = SearchSettings(prover=prover, expansions=24, max_depth=8)

    def searches():
        return [make_search(hilbert.db, t, settings, grammar=hilbert.grammar, kernel=hilbert.kernel) for t in theorems]

    policy = CountingPolicy(BaselinePolicy(hilbert.db, grammar=hilbert.grammar))
    alone = run_searches(searches(), policy, batch=1)
    assert {size for _, size in policy.calls} == {1}
    policy.calls.clear()
    together = run_searches(searches(), policy, batch=8)
    assert max(size for _, size in policy.calls) == 8
    assert outcomes(hilbert, alone) == outcomes(hilbert, together)
    assert any(r.proved for r in together) and not all(r.proved for r in together)


def test_one_policy_call_per_kind_per_round(hilbert: Loaded) -> None:
    theorems = hilbert.provable()[:12]
    oracle = OraclePolicy.from_database(hilbert.db, [t.label for t in theorems], distractors=0)
    policy = CountingPolicy(oracle)
    mixed = []
    for i, theorem in enumerate(theorems):
        prover = ("backward", "forward-greedy", "forward-sampling")[i % 3]
        mixed.append(
            make_search(
                hilbert.db,
                theorem,
                SearchSettings(prover=prover, expansions=50),
                grammar=hilbert.grammar,
                kernel=hilbert.kernel,
            )
        )
    seen = []
    results = run_searches(mixed, policy, batch=12, on_result=seen.append)
    assert all(r.proved for r in results)
    assert [r.label for r in results] == [t.label for t in theorems]  # input order
    assert sorted(r.label for r in seen) == sorted(t.label for t in theorems)  # each reported once
    # rounds: one backward call, one greedy (temperature None) and one sampling call at most per round
    assert sum(size for kind, size in policy.calls) == sum(r.expansions for r in results)
    assert len(policy.calls) <= 3 * max(r.expansions for r in results)
    assert policy.calls[0][1] + policy.calls[1][1] + policy.calls[2][1] == 12  # round 1: all 12, in 3 calls


class ShortPolicy:
    def propose_backward(self, queries, k):
        return [[] for _ in queries][1:]


def test_a_policy_that_skips_queries_is_an_error(hilbert: Loaded) -> None:
    searches = [
        make_search(hilbert.db, t, SearchSettings(), grammar=hilbert.grammar, kernel=hilbert.kernel)
        for t in hilbert.provable()[:2]
    ]
    with pytest.raises(ModelError, match="answered 1 of 2"):
        run_searches(searches, ShortPolicy(), batch=2)


def test_settings_are_validated_and_are_the_config_section() -> None:
    with pytest.raises(ConfigError, match="prover"):
        SearchSettings(prover="sideways")
    with pytest.raises(ConfigError, match="expansions"):
        SearchSettings(expansions=0)
    with pytest.raises(ConfigError, match="timeout_s"):
        SearchSettings(timeout_s=0)
    with pytest.raises(ConfigError, match="unknown field.*'expansion'"):
        SearchSettings.from_dict({"expansion": 3})
    settings = SearchSettings(prover="forward-sampling", expansions=7, timeout_s=2.5, candidates=3)
    assert ProverActorConfig(search=settings).search is settings  # the section is the settings, not a copy
    assert SearchSettings.from_dict(settings.to_dict()) == settings
