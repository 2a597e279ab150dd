"""The model-free baseline policy: what it proposes, its distribution, its determinism, and what it proves."""

from __future__ import annotations

import math

from core.metamath.environment import EnvError, EnvErrorKind, ForwardEnv
from core.search.baseline import BaselinePolicy
from core.search.evaluation import evaluate
from core.search.policy import BackwardQuery, ForwardQuery
from core.search.runner import SearchSettings

from .conftest import Loaded


def test_backward_proposals_unify_and_have_uniform_factorised_logprobs(hilbert: Loaded) -> None:
    policy = BaselinePolicy(hilbert.db, grammar=hilbert.grammar)
    theorem = hilbert.theorem("syl")
    env = hilbert.backward(theorem)
    query = BackwardQuery(env, theorem.statement)
    proposals = policy.propose_backward([query], 10_000)[0]
    assert proposals
    assert abs(sum(math.exp(p.logprob) for p in proposals) - 1) < 1e-9  # a distribution over the candidates
    assert [p.logprob for p in proposals] == sorted((p.logprob for p in proposals), reverse=True)
    labels = {p.tactic.label for p in proposals}
    allowed = set(env.allowed_labels())
    assert labels <= allowed and "syl" not in labels
    kinds = {r.kind for p in proposals if isinstance(r := env.apply(theorem.statement, p.tactic), EnvError)}
    assert not kinds & {
        EnvErrorKind.NO_UNIFICATION,
        EnvErrorKind.MISSING_SUBSTITUTION,
        EnvErrorKind.FORBIDDEN_LABEL,
        EnvErrorKind.UNKNOWN_LABEL,
    }
    # the backward format carries only the variables unification leaves free
    ax_mp = [p.tactic for p in proposals if p.tactic.label == "ax-mp"]
    assert ax_mp and all(set(t.substitution) == {"ph"} for t in ax_mp)
    assert policy.propose_backward([query], 3)[0] == proposals[:3]


def test_seed_changes_only_the_order_of_ties(hilbert: Loaded) -> None:
    theorem = hilbert.theorem("syl")
    query = BackwardQuery(hilbert.backward(theorem), theorem.statement)
    first = BaselinePolicy(hilbert.db, seed=0).propose_backward([query], 10_000)[0]
    again = BaselinePolicy(hilbert.db, seed=0).propose_backward([query], 10_000)[0]
    other = BaselinePolicy(hilbert.db, seed=1).propose_backward([query], 10_000)[0]
    assert first == again
    assert first != other
    assert sorted(map(repr, first)) == sorted(map(repr, other))


def test_forward_proposals_apply_and_add_new_statements(hilbert: Loaded) -> None:
    policy = BaselinePolicy(hilbert.db, grammar=hilbert.grammar)
    theorem = hilbert.theorem("syl")  # two hypotheses to combine
    env: ForwardEnv = hilbert.forward_factory(theorem)()
    for temperature in (None, 1.0):
        proposals = policy.propose_forward([ForwardQuery(env, theorem.statement)], 16, temperature)[0]
        assert len(proposals) == 16
        for proposal in proposals:
            probe = hilbert.forward_factory(theorem)()
            node = probe.apply(proposal.tactic)
            assert not isinstance(node, EnvError), node  # hypotheses matched, conclusion new
            assert node.statement not in env.by_statement
    best = policy.propose_forward([ForwardQuery(env, theorem.statement)], 4)[0]
    assert all(p.tactic.label != "syl" for p in best)  # itself is never proposed


def test_forward_sampling_is_reproducible_given_the_seed(hilbert: Loaded) -> None:
    theorem = hilbert.theorem("syl")
    env = hilbert.forward_factory(theorem)()
    query = ForwardQuery(env, theorem.statement)
    runs = [BaselinePolicy(hilbert.db, seed=s).propose_forward([query] * 3, 8, 1.0) for s in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def run(loaded: Loaded, labels: list[str], expansions: int) -> dict[str, bool]:
    policy = BaselinePolicy(loaded.db, grammar=loaded.grammar)
    summary = evaluate(
        loaded.db,
        [loaded.theorem(label) for label in labels],
        policy,
        SearchSettings(expansions=expansions),
        grammar=loaded.grammar,
        kernel=loaded.kernel,
    )
    return {t["label"]: t["proved"] for t in summary["theorems"]}


def test_baseline_proves_easy_embedded_theorems_and_fails_hard_ones(hilbert: Loaded) -> None:
    outcome = run(hilbert, ["mp2", "syl", "imim2i", "id", "com12"], expansions=64)
    assert outcome == {"mp2": True, "syl": True, "imim2i": True, "id": False, "com12": False}


def test_baseline_proves_easy_prop_theorems_and_fails_hard_ones(prop: Loaded) -> None:
    outcome = run(prop, ["id1", "pm2.27", "imbi2", "syl8", "luk-3"], expansions=64)
    assert outcome == {"id1": True, "pm2.27": True, "imbi2": True, "syl8": False, "luk-3": False}


def test_subexpressions_are_every_distinct_one_shortest_first_and_uncapped(hilbert: Loaded) -> None:
    theorem = hilbert.theorem("syl")  # |- ( ph -> ch ) from |- ( ph -> ps ) and |- ( ps -> ch )
    env = hilbert.backward("syl")
    capped = BaselinePolicy(hilbert.db, grammar=hilbert.grammar, max_pool=2)
    statements = [theorem.statement, *(h.statement for h in theorem.essential)]
    wffs = capped.subexpressions(env, statements)["wff"]
    assert [" ".join(e) for e in wffs] == ["ph", "ch", "ps", "( ph -> ch )", "( ph -> ps )", "( ps -> ch )"]
    assert capped.subexpressions(env, [("|-", "(", "ph")]) == {}  # a statement that does not parse adds nothing
