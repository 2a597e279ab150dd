"""RankedPolicy: the baseline's candidates, re-scored by the model in one teacher-forced call, best first."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.metamath.environment import Tactic
from core.metamath.splits import split_theorems
from core.models.decoding import score
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.merged import MergedPolicy, baseline_for, tactic_key, with_baseline
from core.search.model_policy import ModelPolicy
from core.search.policy import BackwardQuery, ForwardQuery
from core.search.ranked import RankedPolicy
from core.search.runner import SearchSettings

from .conftest import LearnedScriptedPolicy as Learned

GOALS = ("syl", "a1i", "mpd", "id")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def learned(untrained) -> ModelPolicy:
    model, vocab = untrained
    return ModelPolicy(model, vocab, device="cpu")


def queries(hilbert) -> list[BackwardQuery]:
    return [BackwardQuery(hilbert.backward(label), hilbert.theorem(label).statement) for label in GOALS]


def model_logprob(policy: ModelPolicy, query: BackwardQuery, tactic: Tactic) -> float:
    """The model's log-probability of one tactic, scored alone (what the ranking must agree with)."""
    source = policy.codec.backward_source(query.goal, [h.statement for h in query.env.theorem.essential])
    target = policy.codec.backward_target(tactic, query.env.db.assertion(tactic.label))
    mask = policy._first_tokens(query.env, stop=False) & policy._index(query.env).unifiable_mask(query.env, query.goal)
    with torch.no_grad():
        return float(score(policy.model, [source], [target], allowed_first=mask[None]))  # as the beam search scores


def test_each_query_gets_its_best_candidates_by_the_model_with_the_model_s_log_probabilities(hilbert, learned):
    baseline = BaselinePolicy(hilbert.db, grammar=hilbert.grammar)
    batch = queries(hilbert)
    pools = baseline.propose_backward(batch, 12)
    ranked = RankedPolicy(learned, baseline, pool=12).propose_backward(batch, k=5)
    for query, pool, proposals in zip(batch, pools, ranked):
        assert len(pool) > 1, f"{query.env.theorem.label} must have candidates to rank"
        expected = sorted(((model_logprob(learned, query, p.tactic), p.tactic) for p in pool), key=lambda s: -s[0])
        assert [tactic_key(p.tactic) for p in proposals] == [tactic_key(t) for _, t in expected[:5]]
        torch.testing.assert_close(torch.tensor([p.logprob for p in proposals]),
                                   torch.tensor([v for v, _ in expected[:5]]), atol=1e-4, rtol=1e-5)  # fmt: skip
    assert [len(p) for p in RankedPolicy(learned, baseline, pool=1).propose_backward(batch, k=5)] == [1] * 4


def test_a_candidate_the_model_cannot_encode_keeps_the_baseline_s_score_after_the_scored_ones(
    hilbert, learned, monkeypatch
):
    baseline = BaselinePolicy(hilbert.db, grammar=hilbert.grammar)
    [query] = queries(hilbert)[:1]
    [pool] = baseline.propose_backward([query], 8)
    unknown = pool[0].tactic.label
    encode = learned.codec.backward_target
    monkeypatch.setattr(learned.codec, "backward_target",
                        lambda tactic, assertion: None if tactic.label == unknown else encode(tactic, assertion))  # fmt: skip
    policy = RankedPolicy(learned, baseline, pool=8)
    [proposals] = policy.propose_backward([query], k=8)
    kept = [p for p in proposals if p.tactic.label == unknown]
    assert kept and proposals[-len(kept) :] == kept  # last, as the baseline proposed them
    assert [p.logprob for p in kept] == [p.logprob for p in pool if p.tactic.label == unknown]
    assert policy.unscored == len(kept) and policy.scored == len(pool) - len(kept)


def test_forward_queries_go_to_the_model_and_bad_settings_are_refused(hilbert, learned):
    baseline = BaselinePolicy(hilbert.db, grammar=hilbert.grammar)
    policy = RankedPolicy(learned, baseline)
    forward = ForwardQuery(hilbert.forward_factory("syl")(), hilbert.theorem("syl").statement)
    calls = learned.model_calls
    policy.propose_forward([forward], 2)
    assert learned.model_calls == calls + 1 and policy.counters is learned.counters
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="pool must be an integer >= 1"):
            RankedPolicy(learned, baseline, pool=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k must be >= 1"):
        policy.propose_backward(queries(hilbert), k=0)


def test_with_baseline_ranks_only_for_a_model_policy_searching_backward(hilbert, learned):
    ranked = with_baseline(learned, hilbert.db, hilbert.grammar, prover="htps", merge=True, rank=True, pool=5)
    assert isinstance(ranked, RankedPolicy) and ranked.model is learned and ranked.pool == 5
    assert ranked.baseline is baseline_for(hilbert.db, hilbert.grammar)
    assert with_baseline(ranked, hilbert.db, hilbert.grammar, prover="backward", merge=True, rank=True) is ranked
    assert (
        with_baseline(learned, hilbert.db, hilbert.grammar, prover="forward-greedy", merge=True, rank=True) is learned
    )
    scripted = Learned()  # learned, but no model to score with: merged as before, or left alone
    assert isinstance(with_baseline(scripted, hilbert.db, hilbert.grammar, prover="backward", merge=True, rank=True),
                      MergedPolicy)  # fmt: skip
    assert with_baseline(scripted, hilbert.db, hilbert.grammar, prover="backward", merge=False, rank=True) is scripted
    assert isinstance(with_baseline(learned, hilbert.db, hilbert.grammar, prover="backward", merge=True), MergedPolicy)


def test_a_search_with_rank_baseline_asks_the_ranked_policy(hilbert, learned, monkeypatch):
    asked: list[int] = []
    propose = RankedPolicy.propose_backward

    def spy(self: RankedPolicy, queries, k):  # type: ignore[no-untyped-def]
        asked.append(len(queries))
        return propose(self, queries, k)

    monkeypatch.setattr(RankedPolicy, "propose_backward", spy)
    theorems = split_theorems(hilbert.db)["test"][:6]
    settings = SearchSettings(expansions=8, timeout_s=60.0, rank_baseline=True, rank_pool=12)
    results = prove_theorems(hilbert.db, theorems, learned, settings, grammar=hilbert.grammar, kernel=hilbert.kernel)
    assert len(results) == 6 and asked
    asked.clear()
    prove_theorems(hilbert.db, theorems, learned, SearchSettings(expansions=8, timeout_s=60.0), grammar=hilbert.grammar,
                   kernel=hilbert.kernel)  # fmt: skip
    assert not asked  # the twin: merged by default
    with pytest.raises(ConfigError, match="rank_pool"):
        SearchSettings(rank_pool=0)
