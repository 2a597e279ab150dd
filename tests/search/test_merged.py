"""MergedPolicy: the baseline's candidates after the model's, so a learned search never loses to the baseline."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from configs.experiment import ProverActorConfig
from configs.presets import preset
from core.errors import ConfigError
from core.metamath.environment import Tactic, tactic_key
from core.metamath.reader import read_database
from core.metamath.splits import split_theorems
from core.models.checkpoint import save_policy_file
from core.search.baseline import BaselinePolicy
from core.search.evaluation import prove_theorems
from core.search.merged import MergedPolicy, _typecode, baseline_for, with_baseline
from core.search.model_policy import ModelPolicy
from core.search.policy import BackwardQuery, ForwardQuery
from core.search.runner import SearchSettings
from jobs.prove import prove

from .conftest import LearnedScriptedPolicy as Learned
from .conftest import ScriptedPolicy

A = Tactic("ax-1", {"ph": ("ph",)})
B = Tactic("ax-2", {})
C = Tactic("mp", {"ph": ("ps",)})


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_model_s_proposals_come_first_then_the_baseline_s_others_once(hilbert):
    query = BackwardQuery(hilbert.backward("syl"), hilbert.theorem("syl").statement)
    model = Learned(lambda q: [A, B])
    merged = MergedPolicy(model, ScriptedPolicy(lambda q: [Tactic("ax-2", {}), C, Tactic("ax-1", {"ph": ("ps",)})]))
    [proposals] = merged.propose_backward([query], k=3)
    assert [p.tactic for p in proposals] == [A, B, C, Tactic("ax-1", {"ph": ("ps",)})]
    assert (merged.from_model, merged.from_baseline) == (2, 2)
    forward = ForwardQuery(hilbert.forward_factory("syl")(), None)
    assert [p.tactic for p in merged.propose_forward([forward], 2)[0]] == []
    assert model.calls == [("backward", 1), ("forward", 1)]  # forward queries go to the model alone


def test_with_baseline_wraps_only_a_learned_policy_searching_backward(hilbert):
    learned, baseline = Learned(), BaselinePolicy(hilbert.db, grammar=hilbert.grammar)
    merged = with_baseline(learned, hilbert.db, hilbert.grammar, prover="backward", merge=True)
    assert isinstance(merged, MergedPolicy) and merged.model is learned
    assert merged.baseline is baseline_for(hilbert.db, hilbert.grammar)  # built once per database
    assert with_baseline(merged, hilbert.db, hilbert.grammar, prover="backward", merge=True) is merged
    assert with_baseline(learned, hilbert.db, hilbert.grammar, prover="backward", merge=False) is learned
    assert with_baseline(learned, hilbert.db, hilbert.grammar, prover="forward-greedy", merge=True) is learned
    assert with_baseline(baseline, hilbert.db, hilbert.grammar, prover="backward", merge=True) is baseline


def test_merging_is_the_default_setting_and_can_be_turned_off():
    assert SearchSettings().merge_baseline and ProverActorConfig().search.merge_baseline
    assert not SearchSettings(merge_baseline=False).merge_baseline
    assert not SearchSettings.from_dict({"merge_baseline": False}).merge_baseline
    changed = preset("tiny").with_overrides(["evaluator.search.merge_baseline=false"])
    assert preset("tiny").evaluator.search.merge_baseline and not changed.evaluator.search.merge_baseline
    assert changed.prover_actor.search.merge_baseline
    with pytest.raises(ConfigError, match="merge_baseline"):
        SearchSettings(merge_baseline="no")  # type: ignore[arg-type]


def test_an_untrained_merged_search_proves_what_the_baseline_proves_and_alone_it_proves_less(hilbert, untrained):
    model, vocab = untrained
    theorems = split_theorems(hilbert.db)["test"]
    settings = SearchSettings(expansions=16, timeout_s=60.0)

    def proved(policy, **change) -> set[str]:
        results = prove_theorems(
            hilbert.db,
            theorems,
            policy,
            dataclasses.replace(settings, **change),
            grammar=hilbert.grammar,
            kernel=hilbert.kernel,
        )
        return {r.label for r in results if r.proved}

    baseline = proved(BaselinePolicy(hilbert.db, grammar=hilbert.grammar))
    merged = proved(ModelPolicy(model, vocab, device="cpu"))  # merged by default
    alone = proved(ModelPolicy(model, vocab, device="cpu"), merge_baseline=False)
    assert baseline, "the fixed set must have theorems the baseline proves"
    assert baseline <= merged
    assert len(alone) < len(baseline)


def test_jobs_prove_merges_a_checkpoint_s_policy_unless_told_not_to(tmp_path: Path, hilbert, untrained, capsys):
    model, vocab = untrained
    checkpoint = tmp_path / "prover.safetensors"
    save_policy_file(str(checkpoint), model, vocab, "prover")
    database = hilbert.db.path
    common = dict(split="test", expansions=16, candidates=8, checkpoint=str(checkpoint), device="cpu")
    prove(database, split="test", expansions=16, candidates=8)  # a narrow search, where the merge shows
    baseline = capsys.readouterr().out.splitlines()[-1]
    prove(database, **common)
    merged = capsys.readouterr().out.splitlines()[-1]
    prove(database, merge_baseline=False, **common)
    alone = capsys.readouterr().out.splitlines()[-1]
    count = lambda line: int(line.split()[1])  # noqa: E731 - "proved K of N in T s"
    assert count(merged) >= count(baseline) > count(alone)
    prove(database, fill_lemmas=True, json=str(tmp_path / "filled.json"), **common)
    assert json.loads((tmp_path / "filled.json").read_text())["settings"]["fill_lemmas"] is True


def test_fill_lemmas_tries_the_model_s_lemma_with_every_subexpression_once(hilbert):
    theorem = hilbert.theorem("syl")  # |- ( ph -> ch ) from |- ( ph -> ps ) and |- ( ps -> ch )
    query = BackwardQuery(hilbert.backward("syl"), theorem.statement)
    wrong = [Tactic("ax-mp", {"ph": ("ps",)}), Tactic("ax-mp", {"ph": ("ch",)}), Tactic("ax-1", {}), Tactic("mp2", {})]
    baseline = baseline_for(hilbert.db, hilbert.grammar)
    [plain] = MergedPolicy(Learned(lambda q: wrong), baseline).propose_backward([query], k=4)
    merged = MergedPolicy(Learned(lambda q: wrong), baseline, fill_lemmas=True)
    [filled] = merged.propose_backward([query], k=4)
    fillings = filled[4 : 4 + merged.from_fillings]
    assert [p.tactic for p in filled[:4]] == wrong  # the model's own first, unchanged
    # ax-mp leaves ph free; every wff of the goal, the theorem and its hypotheses fills it, but ps and ch
    # (the model's own); ax-1 leaves no variable free and mp2 two (ph, ps): no fillings
    assert {tactic_key(p.tactic) for p in fillings} == {
        tactic_key(Tactic("ax-mp", {"ph": tuple(filler.split())}))
        for filler in ("ph", "( ph -> ps )", "( ps -> ch )", "( ph -> ch )")
    }
    assert merged.from_fillings == 4 and len(fillings) == 4
    mass, count = math.log(2 * math.exp(-1.0)), 6  # the two ax-mp proposals at -1 each; 6 distinct wffs
    assert all(p.logprob == pytest.approx(mass - math.log(count)) for p in fillings)
    made = {tactic_key(p.tactic) for p in fillings}  # then the baseline's others, as without fill_lemmas
    assert [p.tactic for p in filled[4 + len(fillings) :]] == [
        p.tactic for p in plain[4:] if tactic_key(p.tactic) not in made
    ]
    assert MergedPolicy(Learned(lambda q: wrong), baseline).from_fillings == 0
    with pytest.raises(ConfigError, match="fill_lemmas fills from the model-free BaselinePolicy"):
        MergedPolicy(Learned(), ScriptedPolicy(), fill_lemmas=True)


def test_filled_lemmas_prove_what_a_model_with_a_wrong_filler_misses(hilbert):
    targets = [hilbert.theorem(label) for label in ("syl", "mpd", "mp2", "a2i", "simpli")]

    def proved(fill: bool) -> set[str]:
        model = Learned(lambda q: [Tactic("ax-mp", {"ph": ("ph",)})])  # the right lemma, a wrong filler
        settings = SearchSettings(expansions=16, timeout_s=60.0, candidates=2, fill_lemmas=fill)
        results = prove_theorems(hilbert.db, targets, model, settings, grammar=hilbert.grammar, kernel=hilbert.kernel)
        return {r.label for r in results if r.proved}

    assert proved(False) == set()
    assert proved(True) == {"syl", "mpd", "mp2", "a2i", "simpli"}


def test_fill_lemmas_is_off_by_default_and_refuses_a_non_boolean():
    assert not SearchSettings().fill_lemmas and not ProverActorConfig().search.fill_lemmas
    assert SearchSettings.from_dict({"fill_lemmas": True}).fill_lemmas
    changed = preset("tiny").with_overrides(["evaluator.search.fill_lemmas=true"])
    assert changed.evaluator.search.fill_lemmas and not changed.prover_actor.search.fill_lemmas
    with pytest.raises(ConfigError, match="fill_lemmas"):
        SearchSettings(fill_lemmas="yes")  # type: ignore[arg-type]


def test_a_filled_variable_takes_the_typecode_of_its_own_floating_hypothesis(tmp_path):
    mm = tmp_path / "two.mm"
    mm.write_text(
        "$c wff setvar |- A. ( ) $. $v ph x $. wph $f wff ph $. vx $f setvar x $.\n"
        "wal $a wff A. x ph $. ax-gen $a |- A. x ph $.\n"
    )
    gen = read_database(mm).labels["ax-gen"]
    assert (_typecode(gen, "ph"), _typecode(gen, "x")) == ("wff", "setvar")
    assert _typecode(gen, "ps") is None  # not in its frame: nothing to fill it with
