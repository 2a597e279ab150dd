"""The critic targets a search reports (``max_critic_examples``): HTPS's soft targets and best-first's decided
goals, the root's first, at most the limit, none unless asked; what the prover actor carries in its records."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.metamath.prooftree import make_theorem
from core.search.backward import BackwardSearch
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.htps import HtpsSearch, HtpsSettings
from core.search.runner import SearchSettings, run_search

from .conftest import Loaded

MUTATED = ("|-", "(", "ph", "->", "(", "(", "ps", "->", "ph", ")", "->", "ps", ")", ")")  # pm2.27's false twin


@pytest.fixture(scope="module")
def baseline(prop: Loaded) -> BaselinePolicy:
    return BaselinePolicy(prop.db, grammar=prop.grammar)


def test_a_proved_and_a_failed_htps_search_report_their_root_first(prop: Loaded, baseline: BaselinePolicy) -> None:
    false = make_theorem(prop.db, "twin", MUTATED, before=prop.theorem("pm2.27"))
    settings = SearchSettings(prover="htps", expansions=48)
    proved, failed = prove_theorems(prop.db, [prop.theorem("syl5com"), false], baseline, settings,
                                    grammar=prop.grammar, kernel=prop.kernel, max_critic_examples=6)  # fmt: skip
    assert proved.proved and not failed.proved
    assert proved.critic_examples[0] == (tuple(prop.theorem("syl5com").statement), 1.0, proved.critic_examples[0][2])
    assert failed.critic_examples[0][0] == MUTATED and failed.critic_examples[0][1] < 1.0
    for result in (proved, failed):
        assert 1 <= len(result.critic_examples) <= 6
        assert all(0.0 <= target <= 1.0 and visits >= 0 for _, target, visits in result.critic_examples)
        visits = [v for _, _, v in result.critic_examples[1:]]
        assert visits == sorted(visits, reverse=True)  # then the most visited
    again = prove_theorems(prop.db, [false], baseline, settings, grammar=prop.grammar, kernel=prop.kernel)
    assert again[0].critic_examples == []  # not asked: none


def test_an_unproved_best_first_search_says_its_root_was_not_provable_within_the_budget(
    prop: Loaded, baseline: BaselinePolicy
) -> None:
    false = make_theorem(prop.db, "twin", MUTATED, before=prop.theorem("pm2.27"))
    search = BackwardSearch(prop.backward(false), SearchSettings(expansions=12), max_critic_examples=50)
    result = run_search(search, baseline)
    assert not result.proved and result.critic_examples[0] == (MUTATED, 0.0, result.expansions)
    decided = {goal.statement: goal for goal in search.goals.values() if goal.solved or goal.failed}
    assert {s for s, _, _ in result.critic_examples[1:]} <= set(decided)
    assert all(t == (1.0 if decided[s].solved else 0.0) for s, t, _ in result.critic_examples[1:])


def test_a_negative_limit_is_refused(prop: Loaded) -> None:
    with pytest.raises(ConfigError, match="max_critic_examples must be >= 0"):
        HtpsSearch(prop.backward("id1"), HtpsSettings(), max_critic_examples=-1)
