"""The truth-table critic: it values exactly the goals the theorem's hypotheses do not entail at 1e-6, it
reaches backward and HTPS searches through ``SearchSettings.truth_table``, and it makes best-first search
prove more at a small budget."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.metamath.tautologies import wff_variables
from core.search.baseline import BaselinePolicy
from core.search.evaluation import make_search, prove_theorems
from core.search.htps import ConstantCritic
from core.search.runner import SearchSettings
from core.search.truth_table import FALSE_VALUE, ProductCritic, TruthTableCritic

from .conftest import Loaded


def test_the_critic_refutes_exactly_the_goals_the_hypotheses_do_not_entail(hilbert: Loaded) -> None:
    critic = TruthTableCritic(hilbert.db, hilbert.theorem("mp2"))  # ph, ps, ( ph -> ( ps -> ch ) ) |- ch
    entailed = ("|-", "ch")
    refuted = ("|-", "th")  # a mutated twin: nothing says th
    also_refuted = ("|-", "-.", "ph")
    unknown = ("wff", "ch")  # not a provable statement: no judgement
    assert critic.values([entailed, refuted, also_refuted, unknown]) == [1.0, FALSE_VALUE, FALSE_VALUE, 1.0]
    assert (critic.judged, critic.refuted) == (3, 2)
    assert TruthTableCritic(hilbert.db, hilbert.theorem("mp2"), false_value=0.25).values([refuted]) == [0.25]


def test_a_goal_or_hypothesis_outside_propositional_notation_is_not_judged(tmp_path) -> None:
    mm = tmp_path / "quantified.mm"
    mm.write_text(
        "$c wff setvar |- A. ( ) -> $. $v ph ps x $. wph $f wff ph $. wps $f wff ps $. vx $f setvar x $.\n"
        "wi $a wff ( ph -> ps ) $. wal $a wff A. x ph $.\n"
        "${ h $e |- A. x ph $. ax-q $a |- ph $. $}\n"
        "ax-p $a |- ( ph -> ph ) $.\n"
    )
    db = read_database(mm)
    assert wff_variables(db) == {"ph", "ps"}
    quantified = TruthTableCritic(db, db.labels["ax-q"])  # its hypothesis is not propositional: no judgement
    assert quantified.values([("|-", "ps")]) == [1.0] and quantified.judged == 0
    plain = TruthTableCritic(db, db.labels["ax-p"])
    assert plain.values([("|-", "A.", "x", "ph"), ("|-", "ps")]) == [1.0, FALSE_VALUE]
    assert plain.judged == 1


def test_the_product_critic_multiplies_each_goal_s_values(hilbert: Loaded) -> None:
    table = TruthTableCritic(hilbert.db, hilbert.theorem("mp2"))
    product = ProductCritic(ConstantCritic(0.5), table)
    assert product.values([("|-", "ch"), ("|-", "th")]) == [0.5, pytest.approx(0.5 * FALSE_VALUE)]


@pytest.mark.parametrize("prover", ["backward", "htps"])
def test_the_setting_gives_backward_and_htps_searches_the_theorem_s_table(hilbert: Loaded, prover: str) -> None:
    theorem = hilbert.theorem("mp2")

    def critic_of(truth_table: bool, critic: ConstantCritic | None = None):
        settings = SearchSettings(prover=prover, truth_table=truth_table)
        search = make_search(
            hilbert.db, theorem, settings, grammar=hilbert.grammar, kernel=hilbert.kernel, critic=critic
        )
        return search.critic

    assert not isinstance(critic_of(False), (TruthTableCritic, ProductCritic))
    learned = ConstantCritic(0.5)
    with_learned = critic_of(True, learned)
    assert with_learned.values([("|-", "ch"), ("|-", "th")]) == [0.5, pytest.approx(0.5 * FALSE_VALUE)]
    alone = critic_of(True)
    default = 1.0 if prover == "backward" else SearchSettings().htps.critic_value  # htps: times its constant
    assert alone.values([("|-", "ch"), ("|-", "th")]) == [default, pytest.approx(default * FALSE_VALUE)]


def test_best_first_search_proves_more_at_a_small_budget_with_the_table(hilbert: Loaded) -> None:
    theorems = split_theorems(hilbert.db)["test"] + split_theorems(hilbert.db)["valid"]
    policy = BaselinePolicy(hilbert.db, grammar=hilbert.grammar)

    def proved(truth_table: bool) -> set[str]:
        settings = SearchSettings(expansions=4, timeout_s=60.0, candidates=8, truth_table=truth_table)
        results = prove_theorems(hilbert.db, theorems, policy, settings, grammar=hilbert.grammar, kernel=hilbert.kernel)
        return {r.label for r in results if r.proved}  # prove_theorems checks every proof with the kernel

    without, with_table = proved(False), proved(True)
    assert without < with_table  # strictly more, and nothing lost
    assert {"con1", "pm2.54", "simprim"} <= with_table - without


def test_the_setting_is_off_by_default_and_refuses_a_non_boolean() -> None:
    assert not SearchSettings().truth_table
    assert SearchSettings.from_dict({"truth_table": True}).truth_table
    with pytest.raises(ConfigError, match="truth_table"):
        SearchSettings.from_dict({"truth_table": 3})


def test_the_setting_with_a_forward_prover_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="truth_table applies to the backward and htps provers"):
        SearchSettings(prover="forward-greedy", truth_table=True)
    assert SearchSettings(prover="htps", truth_table=True).truth_table
