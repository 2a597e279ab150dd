"""Proof trees: from database proofs and back (normal and compressed), JSON, checking with mutated twins,
theorems made outside the database and their text checked by the reference verifier."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core.errors import MetamathError, MMVerificationError
from core.metamath.database import Assertion, Database
from core.metamath.embedded import embedded_database_path
from core.metamath.prooftree import (
    ProofTree,
    check_tree,
    make_theorem,
    proof_tokens,
    theorem_text,
    tree_from_proof,
)
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel


@pytest.fixture(scope="module")
def prop(prop_mm: Path) -> tuple[Database, Grammar, Kernel]:
    db = read_database(prop_mm)
    return db, Grammar(db), Kernel(db)


@pytest.fixture(scope="module")
def hilbert() -> tuple[Database, Grammar, Kernel]:
    db = read_database(embedded_database_path())
    return db, Grammar(db), Kernel(db)


def verify_tokens(kernel: Kernel, theorem: Assertion, tokens: list[str]) -> None:
    kernel.verify(theorem.with_proof(tokens))


def statement(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def metamath_verify(exe: str, path: Path) -> str:
    """The output of ``metamath``'s ``verify proof *`` on ``path``."""
    run = subprocess.run(
        [exe, f'read "{path}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=120, cwd=path.parent
    )
    return run.stdout + run.stderr


def has_errors(output: str) -> bool:
    return any(line.startswith(("?Error", "?Warning")) for line in output.splitlines())


# --- database proofs -> trees -> proofs ----------------------------------------------------------


def test_every_prop_mm_proof_round_trips_through_a_tree(prop) -> None:
    db, grammar, kernel = prop
    theorems = [t for t in db.theorems() if not t.is_incomplete]
    assert len(theorems) == 998
    for theorem in theorems:
        tree = tree_from_proof(db, theorem, kernel)
        assert tree.statement == theorem.statement
        for compressed in (False, True):
            tokens = proof_tokens(db, grammar, theorem, tree, compressed=compressed)
            assert (tokens[0] == "(") == compressed
            verify_tokens(kernel, theorem, tokens)


def test_every_embedded_proof_round_trips_and_the_trees_are_small_and_varied(hilbert) -> None:
    db, grammar, kernel = hilbert
    sizes = []
    for theorem in db.theorems():
        tree = tree_from_proof(db, theorem, kernel)
        assert check_tree(db, grammar, theorem, tree, kernel)
        sizes.append(tree.size)
    assert min(sizes) <= 2 and max(sizes) >= 12


def test_size_depth_and_nodes(hilbert) -> None:
    db, _grammar, kernel = hilbert
    tree = tree_from_proof(db, db.assertion("mp2"), kernel)  # ax-mp(mp2.2, ax-mp(mp2.1, mp2.3))
    assert [node.label for node in tree.nodes()] == ["mp2.2", "mp2.1", "mp2.3", "ax-mp", "ax-mp"]
    assert tree.size == 5 and tree.depth == 3
    assert tree.children[1].substitution == {"ph": ("ph",), "ps": ("(", "ps", "->", "ch", ")")}


def test_json_round_trip_gives_a_tree_that_still_checks(prop) -> None:
    db, grammar, kernel = prop
    theorem = db.assertion("pm2.61d")
    tree = tree_from_proof(db, theorem, kernel)
    record = json.loads(json.dumps(tree.to_json()))
    again = ProofTree.from_json(record)
    assert again.to_json() == tree.to_json()
    assert check_tree(db, grammar, theorem, again) == check_tree(db, grammar, theorem, tree)
    record["children"][0]["label"] = "ax-1"  # the mutated record is read, but does not check
    with pytest.raises(MMVerificationError):
        check_tree(db, grammar, theorem, ProofTree.from_json(record))


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"label": "x", "substitution": {}, "statement": "|- ph"},
        {"label": "x", "substitution": 3, "statement": "|- ph", "children": []},
    ],
)
def test_malformed_json_records_are_rejected(record: dict) -> None:
    with pytest.raises(MetamathError, match="malformed proof tree record"):
        ProofTree.from_json(record)


def test_a_proof_that_is_just_a_hypothesis(tmp_path: Path) -> None:
    path = tmp_path / "idi.mm"
    path.write_text("$c wff |- $. $v ph $. wph $f wff ph $. ${ idi.1 $e |- ph $. idi $p |- ph $= idi.1 $. $}\n")
    db = read_database(path)
    theorem = db.assertion("idi")
    tree = tree_from_proof(db, theorem)
    assert tree.label == "idi.1" and not tree.children
    assert check_tree(db, Grammar(db), theorem, tree) == ["idi.1"]


def test_syntax_and_incomplete_theorems_have_no_tree(tmp_path: Path) -> None:
    path = tmp_path / "t.mm"
    path.write_text("""$c wff |- -. $. $v ph $. wph $f wff ph $. wn $a wff -. ph $.
wnn $p wff -. -. ph $= wph wn wn $.
ax-n $a |- -. ph $.
t $p |- -. -. ph $= ? $.
""")
    db = read_database(path)
    with pytest.raises(MetamathError, match="syntax theorem"):
        tree_from_proof(db, db.assertion("wnn"))
    with pytest.raises(MMVerificationError, match="incomplete"):
        tree_from_proof(db, db.assertion("t"))


# --- check_tree: good trees and their mutated twins ----------------------------------------------


def replace_node(tree: ProofTree, path: tuple[int, ...], **changes: object) -> ProofTree:
    """A copy of ``tree`` with the node at ``path`` (child indices from the root) changed."""
    if not path:
        return dataclasses.replace(tree, **changes)
    children = list(tree.children)
    children[path[0]] = replace_node(children[path[0]], path[1:], **changes)
    return dataclasses.replace(tree, children=tuple(children))


@pytest.fixture(scope="module")
def syl_tree(hilbert) -> tuple[Assertion, ProofTree]:
    """The tree of hilbert.mm's ``bitri``: impbii(syl(biimpi, biimpi), syl(biimpri, biimpri))."""
    db, grammar, kernel = hilbert
    theorem = db.assertion("bitri")
    tree = tree_from_proof(db, theorem, kernel)
    assert check_tree(db, grammar, theorem, tree, kernel)
    return theorem, tree


def test_a_swapped_label_is_rejected(hilbert, syl_tree) -> None:
    db, grammar, kernel = hilbert
    theorem, tree = syl_tree
    assert tree.children[0].label == "syl"
    with pytest.raises(MMVerificationError):  # sylib has syl's hypothesis count, not its statements
        check_tree(db, grammar, theorem, replace_node(tree, (0,), label="sylib"), kernel)
    with pytest.raises(MMVerificationError):  # the two hypotheses of the theorem swapped at one leaf
        check_tree(db, grammar, theorem, replace_node(tree, (0, 0, 0), label="bitri.2"), kernel)


def test_a_wrong_substitution_is_rejected(hilbert, syl_tree) -> None:
    db, grammar, kernel = hilbert
    theorem, tree = syl_tree
    substitution = dict(tree.children[0].substitution)
    substitution["ps"] = ("ch",)
    with pytest.raises(MMVerificationError):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), substitution=substitution), kernel)
    incomplete = {k: v for k, v in tree.children[0].substitution.items() if k != "ps"}
    with pytest.raises(MMVerificationError, match="lacks a substitution for 'ps'"):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), substitution=incomplete), kernel)


def test_a_missing_or_extra_child_is_rejected(hilbert, syl_tree) -> None:
    db, grammar, kernel = hilbert
    theorem, tree = syl_tree
    node = tree.children[0]
    with pytest.raises(MMVerificationError, match="too few children"):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), children=node.children[:1]), kernel)
    with pytest.raises(MMVerificationError, match="too many children"):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), children=node.children * 2), kernel)


def test_an_ill_formed_substitution_is_rejected(hilbert, syl_tree) -> None:
    db, grammar, kernel = hilbert
    theorem, tree = syl_tree
    substitution = dict(tree.children[0].substitution)
    substitution["ps"] = ("(", "ph", "->", ")")
    with pytest.raises(MMVerificationError, match="ill-formed substitution"):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), substitution=substitution), kernel)


def test_a_label_that_is_not_an_assertion_is_rejected(hilbert, syl_tree) -> None:
    db, grammar, kernel = hilbert
    theorem, tree = syl_tree
    with pytest.raises(MMVerificationError, match="not an assertion"):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), label="wph"), kernel)
    with pytest.raises(MMVerificationError, match="not an assertion"):
        check_tree(db, grammar, theorem, replace_node(tree, (0,), label="no-such-label"), kernel)


def test_a_later_theorem_is_rejected(hilbert) -> None:
    """imim2i proved from imim2, which comes later: rejected; the same tree for a theorem at the end passes."""
    db, grammar, kernel = hilbert
    theorem = db.assertion("imim2i")
    assert db.assertion("imim2").number > theorem.number
    ph, ps, ch = ("ph",), ("ps",), ("ch",)
    implication = ("(", *ph, "->", *ps, ")")
    conclusion = theorem.statement[1:]
    lemma = ProofTree("imim2", {"ph": ph, "ps": ps, "ch": ch}, (), ("|-", "(", *implication, "->", *conclusion, ")"))
    leaf = ProofTree("imim2i.1", {}, (), ("|-", *implication))
    tree = ProofTree("ax-mp", {"ph": implication, "ps": conclusion}, (leaf, lemma), theorem.statement)
    with pytest.raises(MMVerificationError, match="declared later"):
        check_tree(db, grammar, theorem, tree, kernel)
    at_the_end = make_theorem(
        db, "t", theorem.statement, [h.statement for h in theorem.essential], hypothesis_labels=["imim2i.1"]
    )
    assert check_tree(db, grammar, at_the_end, tree, kernel)


# --- theorems made outside the database ----------------------------------------------------------


def test_make_theorem_frame_matches_the_readers(hilbert) -> None:
    db, _grammar, _kernel = hilbert
    syl = db.assertion("syl")
    made = make_theorem(db, "mysyl", syl.statement, [h.statement for h in syl.essential])
    assert [h.label for h in made.floating] == [h.label for h in syl.floating] == ["wph", "wps", "wch"]
    assert [h.label for h in made.essential] == ["mysyl.1", "mysyl.2"]
    assert [h.statement for h in made.hypotheses] == [h.statement for h in syl.hypotheses]
    assert made.number == len(db.assertions) and made.disjoint == frozenset()
    swapped = make_theorem(db, "t", statement("|- ( ch -> ph )"), [statement("|- ( th -> ch )")])
    assert [h.label for h in swapped.floating] == ["wph", "wch", "wth"]  # database order, not statement order
    named = make_theorem(db, "t", syl.statement, [h.statement for h in syl.essential], hypothesis_labels=["a", "b"])
    assert [h.label for h in named.essential] == ["a", "b"]


def test_make_theorem_before_an_assertion_uses_its_context(hilbert) -> None:
    db, _grammar, _kernel = hilbert
    syl = db.assertion("syl")
    made = make_theorem(db, "t", statement("|- ( ph -> ph )"), before=syl)
    assert made.number == syl.number and made.context_floating == syl.context_floating


def test_make_theorem_types_a_variable_typed_only_in_a_block(set_mm: Path) -> None:
    db = read_database(set_mm, stop_at="ax-gen")
    assert "A" in db.variables and "A" not in db.variable_typecodes()  # typed in a block only (cA.wceq)
    theorem = make_theorem(db, "t", statement("|- ( ph -> A = A )"))
    assert [h.label for h in theorem.floating] == ["wph", "cA.wceq"]


def test_make_theorem_rejects_an_untyped_variable(tmp_path: Path) -> None:
    source = tmp_path / "untyped.mm"
    source.write_text("$c |- wff ( ) -> $. $v ph ps $. wph $f wff ph $.\nwi $a wff ( ph -> ph ) $.\n")
    db = read_database(source)
    with pytest.raises(MetamathError, match="'ps' has no floating hypothesis"):
        make_theorem(db, "t", ("|-", "(", "ph", "->", "ps", ")"))


PREDICATE = """$( A tiny predicate calculus with one disjoint-variable axiom. $)
$c ( ) -> wff |- A. setvar = $.
$v ph ps x y z $.
wph $f wff ph $.
wps $f wff ps $.
vx $f setvar x $.
vy $f setvar y $.
vz $f setvar z $.
wi $a wff ( ph -> ps ) $.
wal $a wff A. x ph $.
weq $a wff x = y $.
${ min $e |- ph $. maj $e |- ( ph -> ps ) $. ax-mp $a |- ps $. $}
${ $d x ph $. ax-5 $a |- ( ph -> A. x ph ) $. $}
"""


def test_make_theorem_disjoint_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pred.mm"
    path.write_text(PREDICATE)
    db = read_database(path)
    made = make_theorem(db, "t", statement("|- ( y = y -> A. x y = y )"), disjoint=[("y", "x"), ("x", "z"), ("x", "x")])
    assert made.disjoint == frozenset({("x", "y")})  # canonical order, mandatory variables only
    assert made.context_disjoint == frozenset({("x", "y"), ("x", "z")})
    assert [h.label for h in made.hypotheses] == ["vx", "vy"]


def test_theorem_text_verifies_with_metamath(tmp_path: Path, hilbert, metamath_exe: str) -> None:
    db, grammar, kernel = hilbert
    syl = db.assertion("syl")
    hypotheses = [statement("|- ( ph -> ps )"), statement("|- ( ps -> ch )"), statement("|- ( ch -> th )")]
    made = make_theorem(db, "my3syl", statement("|- ( ph -> th )"), hypotheses)
    substitution = {"ph": ("ph",), "ps": ("ps",), "ch": ("ch",)}
    inner = ProofTree(
        "syl",
        substitution,
        (ProofTree("my3syl.1", {}, (), hypotheses[0]), ProofTree("my3syl.2", {}, (), hypotheses[1])),
        statement("|- ( ph -> ch )"),
    )
    tree = ProofTree(
        "syl",
        {"ph": ("ph",), "ps": ("ch",), "ch": ("th",)},
        (inner, ProofTree("my3syl.3", {}, (), hypotheses[2])),
        made.statement,
    )
    assert syl.label == "syl"
    good_tokens = proof_tokens(db, grammar, made, tree, compressed=True)
    check_tree(db, grammar, made, tree, kernel)
    swapped = ProofTree(tree.label, tree.substitution, tuple(reversed(tree.children)), tree.statement)
    with pytest.raises(MMVerificationError):
        check_tree(db, grammar, made, swapped, kernel)
    bad_tokens = proof_tokens(db, grammar, made, swapped, compressed=True)

    for tokens, ok in ((good_tokens, True), (bad_tokens, False)):
        copy = tmp_path / ("good.mm" if ok else "bad.mm")
        shutil.copy(embedded_database_path(), copy)
        with copy.open("a") as handle:
            handle.write("\n" + theorem_text(db, made, tokens, comment="Made by the test.") + "\n")
        assert has_errors(metamath_verify(metamath_exe, copy)) != ok
        copied = read_database(copy)
        report_ok = True
        try:
            Kernel(copied).verify(copied.assertion("my3syl"))
        except MMVerificationError:
            report_ok = False
        assert report_ok == ok


def test_theorem_text_declares_the_disjoint_pairs_it_needs(tmp_path: Path, metamath_exe: str) -> None:
    path = tmp_path / "pred.mm"
    path.write_text(PREDICATE)
    db = read_database(path)
    grammar = Grammar(db)
    goal = statement("|- ( y = y -> A. x y = y )")
    tree = ProofTree("ax-5", {"ph": statement("y = y"), "x": ("x",)}, (), goal)
    for disjoint, ok in (([("x", "y")], True), ([], False)):
        made = make_theorem(db, "t", goal, disjoint=disjoint)
        tokens = proof_tokens(db, grammar, made, tree, compressed=False)
        if ok:
            check_tree(db, grammar, made, tree)
        else:
            with pytest.raises(MMVerificationError, match=r"\$d"):
                check_tree(db, grammar, made, tree)
        text = theorem_text(db, made, tokens)
        assert ("$d x y $." in text) == ok
        copy = tmp_path / f"pred-{ok}.mm"
        copy.write_text(PREDICATE + text)
        assert has_errors(metamath_verify(metamath_exe, copy)) != ok


def test_a_made_theorems_hypotheses_shadow_database_labels(hilbert) -> None:
    """A made theorem whose hypothesis reuses a database hypothesis label: the proof must see its own."""
    db, grammar, kernel = hilbert
    assert db.labels["syl.1"].statement == statement("|- ( ph -> ps )")
    goal = statement("|- ( ph -> ps )")
    for assumed, ok in ((goal, True), (statement("|- ch"), False)):
        made = make_theorem(db, "t", goal, [assumed], hypothesis_labels=["syl.1"])
        leaf = ProofTree("syl.1", {}, (), goal)
        if ok:
            assert check_tree(db, grammar, made, leaf, kernel) == ["syl.1"]
        else:
            with pytest.raises(MMVerificationError):
                check_tree(db, grammar, made, leaf, kernel)
