"""HyperTree Proof Search: proves with the model-free policy (proofs checked by the kernel), never proves a
non-theorem, propagates values (AND product, OR max), spreads selections with virtual loss, batches leaves,
respects its limits, validates its settings and yields critic targets."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.metamath.prooftree import check_tree, make_theorem
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.htps import (
    ConstantCritic,
    HGoal,
    HTactic,
    HtpsSearch,
    HtpsSettings,
    critic_examples,
    mark_failed,
    mark_solved,
    puct_choice,
    refresh_values,
    set_priors,
)
from core.search.oracle import OraclePolicy
from core.search.runner import SearchSettings, run_search, run_searches

from .conftest import CountingPolicy, Loaded

EASY = ("id1", "pm2.27", "syl5com", "pm2.21d")


@pytest.fixture(scope="module")
def baseline(prop: Loaded) -> BaselinePolicy:
    return BaselinePolicy(prop.db, grammar=prop.grammar)


def htps(loaded: Loaded, theorem, policy, critic=None, **settings) -> HtpsSearch:
    search = HtpsSearch(loaded.backward(theorem), HtpsSettings(**settings), critic)
    run_search(search, policy)
    return search


# --- proving ----------------------------------------------------------------------------------------


def test_proves_small_prop_theorems_with_the_baseline(prop: Loaded, baseline: BaselinePolicy) -> None:
    theorems = [prop.theorem(label) for label in EASY]
    searches = [HtpsSearch(prop.backward(t), HtpsSettings(num_expansions=64)) for t in theorems]
    counting = CountingPolicy(baseline)
    results = run_searches(searches, counting, batch=4)
    assert counting.calls[0] == ("backward", 4)  # one policy call serves the four searches' roots
    assert [r.label for r in results] == list(EASY)
    assert all(r.proved and r.stop_reason == "proved" for r in results), [r.label for r in results if not r.proved]
    for theorem, result in zip(theorems, results):
        check_tree(prop.db, prop.grammar, theorem, result.proof)  # a real proof, re-checked here
        assert result.prover == "htps" and result.expansions <= 64 and result.kernel_rejections == 0


def test_a_non_theorem_gets_no_proof(prop: Loaded, baseline: BaselinePolicy) -> None:
    original = prop.theorem("pm2.27")  # |- ( ph -> ( ( ph -> ps ) -> ps ) )
    mutated = ("|-", "(", "ph", "->", "(", "(", "ps", "->", "ph", ")", "->", "ps", ")", ")")  # not a tautology
    twin = make_theorem(prop.db, "pm2.27.twin", mutated, before=original)
    result = htps(prop, twin, baseline, num_expansions=64).result()
    assert not result.proved and result.proof is None and result.kernel_rejections == 0
    assert result.stop_reason in ("expansions", "exhausted")


def test_a_missing_hypothesis_gets_no_proof(prop: Loaded, baseline: BaselinePolicy) -> None:
    original = prop.theorem("syl5com")
    twin = make_theorem(prop.db, "syl5com.twin", original.statement, [original.essential[0].statement], before=original)
    assert htps(prop, original, baseline, num_expansions=64).result().proved
    result = htps(prop, twin, baseline, num_expansions=64).result()
    assert not result.proved and result.proof is None and result.kernel_rejections == 0


def test_a_too_small_budget_gets_no_proof(prop: Loaded, baseline: BaselinePolicy) -> None:
    enough = htps(prop, "syl5com", baseline, num_expansions=64).result()
    assert enough.proved and enough.expansions > 1
    tiny = htps(prop, "syl5com", baseline, num_expansions=1).result()
    assert not tiny.proved and tiny.proof is None
    assert tiny.stop_reason == "expansions" and tiny.expansions == 1


def test_leaves_are_expanded_in_batches(prop: Loaded, baseline: BaselinePolicy) -> None:
    counting = CountingPolicy(baseline)
    search = htps(prop, "syl5com", counting, num_expansions=64, succ_expansions=4)
    assert search.result().proved
    sizes = [size for _, size in counting.calls]
    assert sizes[0] == 1 and max(sizes) > 1 and max(sizes) <= 4  # one policy call serves several goals
    asked = [goal for _, goal in counting.goals]
    assert len(asked) == len(set(asked)) == search.expansions  # no goal is expanded twice


def test_limits_stop_the_search(prop: Loaded, baseline: BaselinePolicy) -> None:
    small = htps(prop, "syl5com", baseline, num_expansions=64, size_limit=2).result()
    assert not small.proved and small.stop_reason == "size_limit"
    shallow = htps(prop, "syl5com", baseline, num_expansions=64, depth_limit=1).result()
    assert not shallow.proved and shallow.stop_reason == "exhausted" and shallow.expansions == 1
    assert shallow.pruned.get("depth limit", 0) >= 1


def test_prover_htps_through_prove_theorems(prop: Loaded, baseline: BaselinePolicy) -> None:
    theorems = [prop.theorem(label) for label in EASY[:2]]
    results = prove_theorems(
        prop.db,
        theorems,
        baseline,
        SearchSettings(prover="htps", expansions=32),
        grammar=prop.grammar,
        kernel=prop.kernel,
    )
    assert all(r.proved and r.prover == "htps" for r in results)


def test_the_critic_is_asked_once_per_step(prop: Loaded, baseline: BaselinePolicy) -> None:
    class Recording(ConstantCritic):
        def __init__(self) -> None:
            super().__init__(0.7)
            self.calls: list[int] = []

        def values(self, goals):
            self.calls.append(len(goals))
            return super().values(goals)

    critic = Recording()
    search = htps(prop, "syl5com", baseline, critic, num_expansions=64, succ_expansions=4)
    assert search.result().proved
    assert critic.calls[0] == 1  # the root
    steps = len(critic.calls) - 1
    assert sum(critic.calls) == len(search.goals) and steps <= search.expansions
    assert all(g.prior == 0.7 for g in search.goals.values())


# --- critic targets -----------------------------------------------------------------------------------


def test_critic_examples_of_a_solved_and_a_failed_search(prop: Loaded, baseline: BaselinePolicy) -> None:
    solved = htps(prop, "syl5com", baseline, num_expansions=64)
    examples = critic_examples(solved, count_threshold=1)
    by_goal = {e.goal: e for e in examples}
    assert by_goal[solved.root.statement].target == 1.0
    assert all(0.0 <= e.target <= 1.0 for e in examples)
    assert all(e.target == 1.0 for e in examples if solved.goals[e.goal].solved)
    original = prop.theorem("pm2.27")
    mutated = ("|-", "(", "ph", "->", "(", "(", "ps", "->", "ph", ")", "->", "ps", ")", ")")
    failed = htps(prop, make_theorem(prop.db, "twin", mutated, before=original), baseline, num_expansions=64)
    soft = {e.goal: e for e in critic_examples(failed, count_threshold=1)}
    assert soft[failed.root.statement].target < 1.0 and soft[failed.root.statement].visits >= 1
    assert all(e.visits >= 1 or e.target in (0.0, 1.0) for e in soft.values())
    assert len(critic_examples(failed, count_threshold=10**6)) <= len(soft)


# --- the hypergraph, by hand --------------------------------------------------------------------------


def goal(name: str, prior: float = 0.5, index: int = 0) -> HGoal:
    return HGoal(("|-", name), index, 0, prior)


def tactic(parent: HGoal, subgoals, logprob: float = 0.0) -> HTactic:
    node = HTactic(parent, None, logprob, subgoals)
    parent.add_tactic(node)
    return node


def test_values_are_products_over_and_nodes_and_maxima_over_or_nodes() -> None:
    root, a, b, c, d = goal("R"), goal("A", 0.5, 1), goal("B", 0.4, 2), goal("C", 0.3, 3), goal("D", 0.9, 4)
    root.expanded = True
    t1, t2 = tactic(root, [a, None, b]), tactic(root, [c])
    refresh_values([root])
    assert t1 is not None and root.value == pytest.approx(max(0.5 * 0.4, 0.3))
    c.expanded = True
    tactic(c, [d])
    refresh_values([c])  # C's value becomes its tactic's: D's 0.9, and the root's max follows
    assert c.value == pytest.approx(0.9) and root.value == pytest.approx(0.9)
    d.expanded = True
    refresh_values(mark_failed(d))  # D has no tactic: it fails, then C, then t2
    assert d.failed and c.failed and t2.failed and root.value == pytest.approx(0.2)
    a.expanded = True
    mark_solved(tactic(a, []))
    refresh_values([a])
    assert a.solved and root.value == pytest.approx(0.4)  # 1 * 0.4
    b.expanded = True
    mark_solved(tactic(b, [None]))
    refresh_values([b])
    assert root.solved and root.value == 1.0


def test_virtual_loss_spreads_selections() -> None:
    root = goal("R")
    root.expanded = True
    first, second = tactic(root, [goal("A", 0.5, 1)]), tactic(root, [goal("B", 0.5, 2)])
    set_priors(root)
    assert first.prior == second.prior == 0.5
    assert puct_choice(root, 1.0) is first  # a tie: the first
    first.virtual += 1  # a pending selection went through it
    assert puct_choice(root, 1.0) is second
    second.virtual += 1
    assert puct_choice(root, 1.0) is first
    first.virtual = second.virtual = 0
    first.visits, first.total = 1, 0.5  # without virtual loss, a visit with value 0.5 ...
    assert puct_choice(root, 0.0) is first  # ... ties Q with the unvisited one: the first again
    second.failed = True
    assert puct_choice(root, 1.0) is first
    first.failed = True
    assert puct_choice(root, 1.0) is None


def test_virtual_loss_spreads_the_leaves_of_one_step(prop: Loaded, baseline: BaselinePolicy) -> None:
    spread = HtpsSearch(prop.backward("jca31"), HtpsSettings(num_expansions=64, succ_expansions=6, virtual_loss=3))
    spread.feed(baseline.propose_backward(spread.pending(), spread.k))
    assert len(spread.pending()) == 6  # the second step's selections went through different tactics
    none = HtpsSearch(prop.backward("jca31"), HtpsSettings(num_expansions=64, succ_expansions=6, virtual_loss=0))
    none.feed(baseline.propose_backward(none.pending(), none.k))
    assert len(none.pending()) < 6  # without virtual loss every selection takes the same tactic


# --- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("exploration", -1.0),
        ("exploration", float("nan")),
        ("num_expansions", 0),
        ("succ_expansions", 0),
        ("virtual_loss", -1),
        ("num_tactics", 0),
        ("depth_limit", 0),
        ("size_limit", 0),
        ("critic_value", 1.5),
        ("count_threshold", -1),
        ("timeout_s", 0),
        ("num_expansions", True),
        ("num_tactics", 2.5),
    ],
)
def test_settings_reject_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        HtpsSettings(**{field: value})


def test_settings_from_search_settings() -> None:
    settings = HtpsSettings.from_search(
        SearchSettings(expansions=7, candidates=3, max_depth=5, timeout_s=2.0), exploration=2.0
    )
    assert (settings.num_expansions, settings.num_tactics, settings.depth_limit, settings.timeout_s) == (7, 3, 5, 2.0)
    assert settings.exploration == 2.0 and settings.virtual_loss == HtpsSettings().virtual_loss
    assert settings.search_settings().prover == "htps"
    with pytest.raises(ConfigError, match="explore"):
        HtpsSettings.from_search(SearchSettings(), explore=1.0)


def test_a_critic_trained_on_search_targets_guides_htps(prop: Loaded, baseline: BaselinePolicy) -> None:
    import torch

    from core.models.critic import GoalCritic, critic_step

    searches = [htps(prop, label, baseline, num_expansions=64) for label in EASY]
    examples = [e for s in searches for e in critic_examples(s, count_threshold=1)]
    assert {e.target for e in examples} >= {1.0}
    critic = GoalCritic(buckets=1024, dim=16, hidden=16)
    solved = [e.goal for e in examples if e.target == 1.0]
    before = sum(critic.values(solved))
    optimizer = torch.optim.Adam(critic.parameters(), lr=0.02)
    for _ in range(30):
        critic_step(critic, optimizer, [e.goal for e in examples], [e.target for e in examples])
    assert sum(critic.values(solved)) > before  # the solved goals' predicted values went up
    guided = htps(prop, "syl5com", baseline, critic, num_expansions=64)
    assert guided.result().proved and guided.root.prior != HtpsSettings().critic_value


def test_a_critic_orders_best_first_search(prop: Loaded, baseline: BaselinePolicy) -> None:
    from core.search.backward import BackwardSearch

    def asked(critic, expansions: int) -> tuple[BackwardSearch, list]:
        counting = CountingPolicy(baseline)
        search = BackwardSearch(prop.backward("jca31"), SearchSettings(expansions=expansions), critic)
        run_search(search, counting)
        return search, [goal for _, goal in counting.goals]

    plain, order = asked(None, 2)
    waiting = [g.statement for g in plain.goals.values() if g.depth == 1 and not g.expanded]
    assert waiting  # root children the plain search did not expand second
    favourite = waiting[-1]

    class Favouring:
        def values(self, goals):
            return [1.0 if goal == favourite else 0.01 for goal in goals]

    assert asked(Favouring(), 2)[1] == [order[0], favourite]  # the critic's favourite is expanded next
    assert asked(ConstantCritic(0.5), 8)[1] == asked(None, 8)[1]  # a constant critic changes nothing


def test_a_failed_htps_search_reports_solved_subgoals_the_kernel_accepts(hilbert: Loaded) -> None:
    oracle = OraclePolicy.from_database(hilbert.db, distractors=0)
    for theorem in hilbert.provable():
        for budget in range(1, 6):
            s = HtpsSearch(hilbert.backward(theorem), HtpsSettings(num_expansions=budget), max_solved_subgoals=3)
            result = run_search(s, oracle)
            if not result.proved and result.solved_subgoals:
                break
        else:
            continue
        break
    else:
        raise AssertionError("no failed HTPS search solved a subgoal")
    assert len(result.solved_subgoals) <= 3
    for statement, tree in result.solved_subgoals:
        cited = {node.label for node in tree.nodes() if not node.children}
        used = [h for h in theorem.essential if h.label in cited]
        sub = make_theorem(
            hilbert.db,
            "sub",
            statement,
            [h.statement for h in used],
            hypothesis_labels=[h.label for h in used],
            before=theorem,
        )
        check_tree(hilbert.db, hilbert.grammar, sub, tree)
    off = HtpsSearch(hilbert.backward(theorem), HtpsSettings(num_expansions=budget), max_solved_subgoals=0)
    assert run_search(off, oracle).solved_subgoals == []
