"""Training examples from proofs: exact sequences for one theorem, split hygiene, rollouts, counted skips."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from core.errors import ConfigError, MetamathError
from core.metamath import read_database
from core.metamath.environment import Tactic
from core.metamath.prooftree import ProofTree, tree_from_proof
from core.metamath.splits import split_of, split_theorems
from core.models.augment import Augmentation
from core.models.examples import (
    AUGMENT_INSTANCES,
    FOUND_KNOWN,
    FOUND_OUTSIDE_SPLIT,
    FOUND_PROOFS,
    backward_examples,
    build_examples,
    forward_examples,
    generator_examples,
    rollout_examples,
    tree_examples,
)  # fmt: skip
from core.models.formats import FORMATS, STOP_TACTIC, Codec, build_vocabulary, tokens_text
from core.search.baseline import BaselinePolicy
from core.search.evaluation import evaluate, found_proofs
from core.search.runner import SearchSettings


def texts(codec: Codec, examples) -> list[tuple[str, str]]:
    return [(tokens_text(codec.vocab.decode(s)), tokens_text(codec.vocab.decode(t))) for s, t in examples]


HYPS = "<HYP> |- ph <HYP> |- ps <HYP> |- ( ph -> ( ps -> ch ) )"


def test_the_examples_of_mp2_are_exactly_the_documented_sequences(db, codec):
    """mp2: from |- ph, |- ps, |- ( ph -> ( ps -> ch ) ) infer |- ch, by two modus ponens."""
    theorem = db.assertion("mp2")
    tree = tree_from_proof(db, theorem)
    assert texts(codec, backward_examples(codec, db, theorem, tree)) == [
        (f"<BACKWARD> <GOAL> |- ( ps -> ch ) {HYPS}", "ax-mp <SUBST> ph ph </SUBST>"),
        (f"<BACKWARD> <GOAL> |- ch {HYPS}", "ax-mp <SUBST> ph ps </SUBST>"),
    ]
    assert texts(codec, forward_examples(codec, db, theorem, tree)) == [
        (f"<FORWARD> <GOAL> |- ch {HYPS}", "ax-mp <SUBST> ph ph </SUBST> <SUBST> ps ( ps -> ch ) </SUBST>"),
        (
            f"<FORWARD> <GOAL> |- ch {HYPS} <NODE> |- ( ps -> ch )",
            "ax-mp <SUBST> ph ps </SUBST> <SUBST> ps ch </SUBST>",
        ),
    ]
    assert texts(codec, generator_examples(codec, db, theorem, tree, conditioning=["<EASY>"])) == [
        (f"<GENERATOR> <EASY> {HYPS}", "ax-mp <SUBST> ph ph </SUBST> <SUBST> ps ( ps -> ch ) </SUBST>"),
        (f"<GENERATOR> <EASY> {HYPS} <NODE> |- ( ps -> ch )", "ax-mp <SUBST> ph ps </SUBST> <SUBST> ps ch </SUBST>"),
        (f"<GENERATOR> <EASY> {HYPS} <NODE> |- ch <NODE> |- ( ps -> ch )", "<STOP>"),
    ]


def test_a_hypothesis_free_step_is_an_example_and_repeated_steps_count_once(db, codec):
    for label in ("a1i", "id", "pm2.43"):
        if label not in db:
            continue
        theorem = db.assertion(label)
        tree = tree_from_proof(db, theorem)
        steps = {n.statement for n in tree.nodes() if n.label not in {h.label for h in theorem.essential}}
        assert len(backward_examples(codec, db, theorem, tree)) == len(steps)
        assert len(forward_examples(codec, db, theorem, tree)) == len(steps)
        assert len(generator_examples(codec, db, theorem, tree)) == len(steps) + 1


def test_train_examples_never_see_a_valid_or_test_theorem(db, codec):
    splits = split_theorems(db)
    assert splits["test"] and splits["valid"]
    train = build_examples(db, codec, formats=FORMATS)
    assert train.theorems == [t.label for t in splits["train"]]
    assert all(split_of(label) == "train" for label in train.theorems)
    held_out = [t for name in ("valid", "test") for t in splits[name]]
    roots = {tuple(s) for s, _ in _root_sources(codec, db, held_out)}
    leaked = [tokens_text(codec.vocab.decode(s)) for s, _ in train.examples if tuple(s) in roots]
    assert leaked == [] and train.counters["held_out_step"] > 0
    # The rejection twins: train proofs without the filter, and the test split's own examples, pose them.
    unfiltered = build_examples(db, codec, formats=FORMATS, hygiene=False)
    assert any(tuple(s) in roots for s, _ in unfiltered.examples)
    test = build_examples(db, codec, formats=FORMATS, split="test")
    assert test.theorems == [t.label for t in splits["test"]]
    assert any(tuple(s) in roots for s, _ in test.examples)


def _root_sources(codec: Codec, db, theorems):
    """The backward and forward examples of each theorem's first goal (its own statement, its hypotheses)."""
    for theorem in theorems:
        hypotheses = [h.statement for h in theorem.essential]
        yield codec.backward_source(theorem.statement, hypotheses), None
        yield codec.graph_source(theorem.statement, hypotheses, []), None


def test_prop_mm_train_examples_stay_in_the_train_split(prop_mm):
    db = read_database(prop_mm)
    codec = Codec(build_vocabulary(db), max_source_len=1024, max_target_len=255)
    splits = split_theorems(db)
    train = build_examples(db, codec, formats=("backward", "forward"))
    duplicates = train.counters["held_out_duplicate"]
    assert len(train.theorems) + duplicates == len(splits["train"]) and train.counters["bad_proof"] == 0
    assert set(train.theorems) <= {t.label for t in splits["train"]} and 0 < duplicates < 20
    assert train.by_format["backward"] > 2 * len(train.theorems)
    roots = {tuple(s) for s, _ in _root_sources(codec, db, splits["test"] + splits["valid"])}
    assert not [s for s, _ in train.examples if tuple(s) in roots]
    unfiltered = build_examples(db, codec, formats=("backward", "forward"), hygiene=False)
    assert [s for s, _ in unfiltered.examples if tuple(s) in roots]


def test_too_long_examples_are_skipped_and_counted(db):
    cramped = Codec(build_vocabulary(db), max_source_len=24, max_target_len=8)
    result = build_examples(db, cramped, formats=("backward", "forward"))
    roomy = build_examples(db, Codec(cramped.vocab, max_source_len=256, max_target_len=63), formats=("backward",))
    assert result.counters["source_too_long"] > 0 and result.counters["target_too_long"] > 0
    assert result.by_format["backward"] < roomy.by_format["backward"]
    assert all(len(s) <= 24 and len(t) <= 8 for s, t in result.examples)
    assert result.counters["graph_capped"] > 0  # long graphs are capped, not dropped


def test_rollout_examples_line_up_with_the_steps(db, codec):
    hypotheses = [("|-", "ph")]
    mp = Tactic("ax-1", {"ph": ("ph",), "ps": ("ps",)})
    bad = Tactic("ax-mp", {"ph": ("ps",), "ps": ("ph",)})  # invalid: |- ps is no node; adds nothing
    steps = [(mp, ("|-", "(", "ph", "->", "(", "ps", "->", "ph", ")", ")")), (bad, None), (STOP_TACTIC, None)]
    examples = rollout_examples(codec, db, hypotheses, steps, conditioning=["<HARD>"])
    assert [tokens_text(codec.vocab.decode(e[0])) for e in examples] == [
        "<GENERATOR> <HARD> <HYP> |- ph",
        "<GENERATOR> <HARD> <HYP> |- ph <NODE> |- ( ph -> ( ps -> ph ) )",
        "<GENERATOR> <HARD> <HYP> |- ph <NODE> |- ( ph -> ( ps -> ph ) )",
    ]
    assert [tokens_text(codec.vocab.decode(e[1])) for e in examples] == [
        "ax-1 <SUBST> ph ph </SUBST> <SUBST> ps ps </SUBST>",
        "ax-mp <SUBST> ph ps </SUBST> <SUBST> ps ph </SUBST>",
        "<STOP>",
    ]
    unknown = rollout_examples(codec, db, hypotheses, [(Tactic("nosuch", {}), None)])
    assert unknown == [None]


def test_unknown_formats_and_splits_are_refused(db, codec):
    theorem = db.assertion("mp2")
    with pytest.raises(ConfigError, match="sideways"):
        tree_examples(codec, db, theorem, tree_from_proof(db, theorem), "sideways")
    with pytest.raises(ConfigError, match="sideways"):
        build_examples(db, codec, formats=("sideways",))
    with pytest.raises(ConfigError, match="dev"):
        build_examples(db, codec, split="dev")


@pytest.fixture(scope="module")
def searched(db) -> ProofTree:
    """The model-free baseline's proof of imim1i: kernel-checked by the search, and not the database's."""
    settings = SearchSettings(expansions=16, candidates=32)
    summary = evaluate(db, [db.assertion("imim1i")], BaselinePolicy(db, seed=0), settings, include_proofs=True)
    return found_proofs(json.loads(json.dumps(summary)), where="the summary")["imim1i"]


def _multiset(examples) -> Counter:
    return Counter((tuple(s), tuple(t)) for s, t in examples)


def test_a_found_proof_that_takes_new_steps_is_learned_as_a_second_proof(db, codec, searched):
    plain = build_examples(db, codec)
    more = build_examples(db, codec, found={"imim1i": [searched, searched]})
    own = backward_examples(codec, db, db.assertion("imim1i"), searched)
    assert _multiset(more.examples) - _multiset(plain.examples) == _multiset(own)  # exactly its examples, once
    assert any(example not in plain.examples for example in own)  # a step the database's proof does not take
    assert (more.counters[FOUND_PROOFS], more.counters[FOUND_KNOWN]) == (1, 1)  # the repeat is known
    assert more.theorems == plain.theorems


def test_a_found_proof_with_known_steps_or_of_a_held_out_theorem_adds_nothing(db, codec):
    plain = build_examples(db, codec)
    held_out = split_theorems(db)["valid"][0]
    found = {
        "imim1i": [tree_from_proof(db, db.assertion("imim1i"))],  # the database's own proof
        held_out.label: [tree_from_proof(db, held_out)],  # a valid theorem's proof: never learned
    }
    same = build_examples(db, codec, found=found)
    assert same.examples == plain.examples
    assert (same.counters[FOUND_PROOFS], same.counters[FOUND_KNOWN], same.counters[FOUND_OUTSIDE_SPLIT]) == (0, 1, 1)


def test_a_found_proof_is_augmented_like_the_database_proofs(db, codec, searched):
    augmentation = Augmentation(copies=4)
    plain = build_examples(db, codec, augmentation=augmentation)
    more = build_examples(db, codec, augmentation=augmentation, found={"imim1i": [searched]})
    own = backward_examples(codec, db, db.assertion("imim1i"), searched)
    # Without instances of the found proof, the seeded draws would be plain's, and the examples plain's + own.
    assert more.counters[AUGMENT_INSTANCES] > plain.counters[AUGMENT_INSTANCES]
    assert _multiset(more.examples) != _multiset(plain.examples) + _multiset(own)


def test_a_found_proof_that_does_not_verify_is_refused_naming_the_theorem(db, codec, searched):
    wrong = {v: ("(", "ph", "->", "ph", ")") for v in searched.substitution}  # the goal no longer matches
    mutated = dataclasses.replace(searched, substitution=wrong)
    with pytest.raises(MetamathError, match="a found proof of imim1i does not verify"):
        build_examples(db, codec, found={"imim1i": [mutated]})
