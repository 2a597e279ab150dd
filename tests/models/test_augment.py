"""Substitution instances of proofs as extra training data: each checked by the kernel, under split hygiene."""

from __future__ import annotations

import pytest

from core.errors import ConfigError, MMVerificationError
from core.metamath import read_database
from core.metamath.prooftree import check_tree, tree_from_proof
from core.metamath.splits import split_theorems
from core.models.augment import Augmentation, Augmenter, Drawn, substitute, substitute_tree, tree_variables
from core.models.examples import AUGMENT_INSTANCES, build_examples
from core.models.formats import Codec, build_vocabulary, tokens_text


def _proof(db, label: str):
    theorem = db.assertion(label)
    return theorem, tree_from_proof(db, theorem)


def test_substitute_tree_rewrites_every_statement_and_substitution(db):
    theorem, tree = _proof(db, "syl")
    mapping = {"ph": ("ps",), "ps": ("(", "ph", "->", "ch", ")")}
    renamed = substitute_tree(tree, mapping)
    pairs = list(zip(tree.nodes(), renamed.nodes(), strict=True))
    assert [new.statement for _, new in pairs] == [substitute(old.statement, mapping) for old, _ in pairs]
    assert all(new.label == old.label for old, new in pairs)
    for old, new in pairs:
        assert new.substitution == {v: substitute(e, mapping) for v, e in old.substitution.items()}
    assert renamed.statement == ("|-", "(", "ps", "->", "ch", ")")
    assert set(tree_variables(db, theorem, tree)) == {"ph", "ps", "ch"}


def test_every_instance_is_a_new_theorem_that_the_kernel_accepts(db):
    augmenter = Augmenter(db, Augmentation(copies=16, compound=0.5, seed=3))
    checked = 0
    for label in ("syl", "a2i", "mpd", "3syl"):
        theorem, tree = _proof(db, label)
        drawn = augmenter.instances(theorem, tree)
        instances = drawn.instances
        assert (drawn.rejected, drawn.skipped_disjoint) == (0, False) and len(instances) >= 4
        keys = {(i.statement, tuple(h.statement for h in i.essential)) for i, _ in instances}
        assert len(keys) == len(instances)
        assert (theorem.statement, tuple(h.statement for h in theorem.essential)) not in keys
        for instance, instance_tree in instances:
            assert instance_tree.statement == instance.statement
            check_tree(db, augmenter.grammar, instance, instance_tree, augmenter.kernel)
            checked += 1
    assert checked >= 16
    compound = [i for i, _ in augmenter.instances(*_proof(db, "syl")).instances]
    assert any(len(i.statement) > len(db.assertion("syl").statement) for i in compound)


def test_an_instance_of_a_tree_that_does_not_prove_its_theorem_is_refused(db):
    augmenter = Augmenter(db, Augmentation(copies=8, compound=0.0))
    theorem, _ = _proof(db, "syl")
    _, wrong_tree = _proof(db, "mpd")  # the same hypotheses' shape, another conclusion
    drawn = augmenter.instances(theorem, wrong_tree)
    assert drawn.instances == [] and drawn.rejected == 8
    # The refusal is the kernel's: the twin with the right tree is accepted (above), this one raises.
    with pytest.raises(MMVerificationError):
        check_tree(db, augmenter.grammar, theorem, wrong_tree, augmenter.kernel)


def test_a_theorem_with_disjoint_variable_conditions_is_not_augmented(db):
    theorem, tree = _proof(db, "syl")
    augmenter = Augmenter(db, Augmentation(copies=8))
    assert augmenter.instances(theorem._replace(disjoint=frozenset({("ph", "ps")})), tree) == Drawn(
        [], 0, skipped_disjoint=True
    )
    assert augmenter.instances(theorem, tree).instances


def test_instances_use_only_syntax_declared_before_the_theorem(db):
    theorem, tree = _proof(db, "a1i")  # declared after -> and -., before <-> /\ \/
    augmenter = Augmenter(db, Augmentation(copies=32, compound=1.0))
    drawn = augmenter.instances(theorem, tree)
    instances = drawn.instances
    assert drawn.rejected == 0 and instances
    symbols = {s for instance, _ in instances for s in instance.statement}
    earlier = {s for r in augmenter.grammar.rules.values() if db.assertion(r.label).number < theorem.number
               for s in r.body}  # fmt: skip
    later = {s for r in augmenter.grammar.rules.values() for s in r.body} - earlier
    assert {"<->", "/\\"} <= later
    assert symbols <= earlier | {"|-"} | set(db.variables) and "-." in symbols


def test_the_same_seed_draws_the_same_instances_and_zero_copies_draws_none(db):
    theorem, tree = _proof(db, "3syl")

    def draw(seed: int):
        drawn = Augmenter(db, Augmentation(copies=6, seed=seed)).instances(theorem, tree)
        return [i.statement for i, _ in drawn.instances]

    assert draw(1) == draw(1) and draw(1) != draw(2)
    assert Augmenter(db, Augmentation(copies=0)).instances(theorem, tree) == Drawn()


def test_augmented_train_examples_add_instances_and_never_pose_a_held_out_problem(db, codec):
    plain = build_examples(db, codec)
    augmented = build_examples(db, codec, augmentation=Augmentation(copies=16, compound=0.3))
    assert augmented.counters[AUGMENT_INSTANCES] > len(plain.theorems)
    assert len(augmented.examples) > 3 * len(plain.examples)
    assert set(map(tuple, (s for s, _ in plain.examples))) < set(map(tuple, (s for s, _ in augmented.examples)))
    splits = split_theorems(db)
    roots = set()
    for theorem in splits["valid"] + splits["test"]:
        roots.add(tuple(codec.backward_source(theorem.statement, [h.statement for h in theorem.essential])))
    leaked = [tokens_text(codec.vocab.decode(s)) for s, _ in augmented.examples if tuple(s) in roots]
    assert leaked == []
    # The twin without hygiene: some train proof (or instance) poses a held-out problem.
    unfiltered = build_examples(db, codec, hygiene=False, augmentation=Augmentation(copies=16, compound=0.3))
    assert any(tuple(s) in roots for s, _ in unfiltered.examples)


@pytest.mark.parametrize(
    ("field", "value"),
    [("copies", -1), ("copies", 1.5), ("copies", True), ("compound", 1.5), ("compound", -0.1), ("compound", "x"),
     ("extra", -2), ("seed", None)],
)  # fmt: skip
def test_bad_augmentation_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field) as refused:
        Augmentation(**{field: value})
    assert refused.value.field == field


def test_prop_mm_instances_that_prove_a_held_out_problem_give_no_example(prop_mm):
    db = read_database(prop_mm)
    codec = Codec(build_vocabulary(db), max_source_len=1024, max_target_len=255)
    splits = split_theorems(db)
    roots = {tuple(codec.backward_source(t.statement, [h.statement for h in t.essential]))
             for t in splits["valid"] + splits["test"]}  # fmt: skip
    plain = build_examples(db, codec)
    augmented = build_examples(db, codec, augmentation=Augmentation(copies=4, compound=0.3))
    assert augmented.counters[AUGMENT_INSTANCES] > 2 * len(plain.theorems)
    assert not [s for s, _ in augmented.examples if tuple(s) in roots]
    # The twin: some instances' steps do prove held-out problems, and were the ones filtered out.
    assert augmented.counters["held_out_step"] > plain.counters["held_out_step"]
