"""The grammar parser: every statement of real databases parses, round-trips and yields a checked syntax proof;
ill-formed, ambiguous and wrongly typed expressions are rejected; left-recursive rules work."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import GrammarError, MMVerificationError
from core.metamath.database import Assertion, Database, Hypothesis
from core.metamath.embedded import embedded_database_path
from core.metamath.proof import ProofStep, normal_proof
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar, floating_context
from core.metamath.verifier import Kernel


@pytest.fixture(scope="module")
def prop(prop_mm: Path) -> tuple[Database, Grammar]:
    db = read_database(prop_mm)
    return db, Grammar(db)


@pytest.fixture(scope="module")
def set_prop(set_mm: Path) -> tuple[Database, Grammar]:
    """set.mm's propositional part."""
    db = read_database(set_mm, stop_at="ax-gen")
    return db, Grammar(db)


@pytest.fixture(scope="module")
def set_classes(set_mm: Path) -> tuple[Database, Grammar]:
    """set.mm up to the definition of union: setvar and class notation, class abstractions included."""
    db = read_database(set_mm, stop_at="df-un")
    return db, Grammar(db)


def write(tmp_path: Path, text: str, name: str = "t.mm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def syntax_theorem(
    db: Database, statement: tuple[str, ...], floating: tuple[Hypothesis, ...], proof: list[str]
) -> Assertion:
    """A ``$p`` stating that ``statement`` is well formed, proved by ``proof``, placed at the end of ``db``."""
    return Assertion(
        label="syntax-check",
        kind="p",
        statement=statement,
        hypotheses=(),
        disjoint=frozenset(),
        number=len(db.assertions),
        file=db.path,
        line=0,
        proof=tuple(proof),
        context_floating=floating,
    )


def check_every_statement(db: Database, grammar: Grammar) -> int:
    """Parse every statement of ``db`` in its context; check round trip and the syntax proof. Returns the count."""
    kernel = Kernel(db)
    count = 0
    for assertion in db.assertions:
        context = assertion.context_floating or assertion.floating
        floating = floating_context(context)
        for statement in (assertion.statement, *(h.statement for h in assertion.essential)):
            tree = grammar.parse(statement[0], statement[1:], floating)
            assert grammar.expression(tree) == statement[1:], assertion.label
            typecode = grammar.syntax_typecode(statement[0])
            kernel.verify(syntax_theorem(db, (typecode, *statement[1:]), tuple(context), normal_proof(tree)))
            count += 1
    return count


# --- real databases ------------------------------------------------------------------------------


def test_every_statement_of_the_embedded_database_parses() -> None:
    db = read_database(embedded_database_path())
    assert check_every_statement(db, Grammar(db)) == 208


def test_every_statement_of_prop_mm_parses_round_trips_and_has_a_syntax_proof(prop) -> None:
    db, grammar = prop
    assert check_every_statement(db, grammar) == 2060


def test_every_statement_of_set_mm_propositional_part_parses(set_prop) -> None:
    db, grammar = set_prop
    assert check_every_statement(db, grammar) >= 3000


def test_set_mm_class_and_setvar_expressions(set_classes) -> None:
    db, grammar = set_classes
    assert {"wff", "class", "setvar"} <= grammar.syntax_typecodes
    assert check_every_statement(db, grammar) >= 6000
    cases = {
        ("setvar", "x"): "vx",
        ("class", "x"): "cv",
        ("class", "{ x | ph }"): "cab",
        ("class", "( A u. B )"): "cun",
        ("wff", "A = B"): "wceq",
        ("wff", "x e. { y | A. z y = z }"): "wcel",
        ("wff", "A. x E. y x = y"): "wal",
    }
    for (typecode, text), label in cases.items():
        tree = grammar.parse(typecode, text.split())
        assert tree.label == label, text
        assert grammar.expression(tree) == tuple(text.split())


@pytest.mark.parametrize(
    "typecode, text",
    [
        ("class", "ph"),  # a wff variable is not a class
        ("wff", "A"),  # a class variable is not a wff
        ("setvar", "A"),  # nor a setvar
        ("setvar", "( x = y )"),
        ("class", "{ x | }"),
        ("class", "{ A | ph }"),  # the bound variable of an abstraction must be a setvar
        ("wff", "x = ( y"),
    ],
)
def test_set_mm_rejects_wrongly_typed_expressions(set_classes, typecode: str, text: str) -> None:
    _db, grammar = set_classes
    assert not grammar.is_well_formed(typecode, text.split())
    with pytest.raises(GrammarError):
        grammar.parse(typecode, text.split())


# --- rejections and their accepted twins ---------------------------------------------------------


@pytest.mark.parametrize(
    "good, bad",
    [
        ("( ph -> ps )", "( ph -> )"),
        ("( ph -> ps )", "( ph -> ps"),  # unbalanced
        ("( ph -> ps )", "ph -> ps )"),
        ("( ph -> ps )", "( ph -> ps ) )"),
        ("-. ( ph -> ps )", "-. ( ph -> foo )"),  # unknown symbol
        ("( -. ph -> ps )", "( -. -> ps )"),
        ("( ph <-> ps )", "( ph <-> ps <-> ch )"),
        ("ph", ""),
    ],
)
def test_ill_formed_expressions_are_rejected_and_well_formed_twins_accepted(prop, good: str, bad: str) -> None:
    _db, grammar = prop
    assert grammar.is_well_formed("wff", good.split())
    assert grammar.expression(grammar.parse("wff", good.split())) == tuple(good.split())
    assert not grammar.is_well_formed("wff", bad.split())
    with pytest.raises(GrammarError, match="does not parse"):
        grammar.parse("wff", bad.split())


def test_wrong_typecode_is_rejected(prop) -> None:
    _db, grammar = prop
    with pytest.raises(GrammarError, match="not a syntax typecode"):
        grammar.parse("class", ("ph",))
    with pytest.raises(GrammarError, match="not a syntax typecode"):
        grammar.parse("(", ("ph",))
    assert grammar.parse("wff", ("ph",)).label == "wph"


def test_provable_statements_parse_as_wff(prop) -> None:
    _db, grammar = prop
    assert grammar.syntax_typecode("|-") == "wff" and grammar.syntax_typecode("wff") == "wff"
    proved = grammar.parse_statement(("|-", "(", "ph", "->", "ph", ")"))
    as_wff = grammar.parse("wff", ("(", "ph", "->", "ph", ")"))
    assert normal_proof(proved) == normal_proof(as_wff) == ["wph", "wph", "wi"]
    assert grammar.parse_statement(("|-", "(", "ph", "->", "ph", ")")) is proved  # cached


def test_variables_need_a_floating_hypothesis_in_the_context(prop) -> None:
    db, grammar = prop
    only_ph = floating_context(h for h in db.global_floating if h.variable == "ph")
    assert grammar.parse("wff", ("-.", "ph"), only_ph).label == "wn"
    with pytest.raises(GrammarError):
        grammar.parse("wff", ("-.", "ps"), only_ph)


def test_a_mutated_syntax_proof_is_rejected_by_the_kernel(prop) -> None:
    db, grammar = prop
    statement = ("wff", "(", "ph", "->", "-.", "ps", ")")
    tree = grammar.parse(statement[0], statement[1:])
    kernel = Kernel(db)
    kernel.verify(syntax_theorem(db, statement, db.global_floating, normal_proof(tree)))
    swapped = ProofStep(tree.label, tuple(reversed(tree.children)))
    with pytest.raises(MMVerificationError):
        kernel.verify(syntax_theorem(db, statement, db.global_floating, normal_proof(swapped)))
    relabelled = ProofStep("wb", tree.children)
    with pytest.raises(MMVerificationError):
        kernel.verify(syntax_theorem(db, statement, db.global_floating, normal_proof(relabelled)))


def test_expression_of_a_tree_with_an_unknown_label_is_an_error(prop) -> None:
    _db, grammar = prop
    with pytest.raises(GrammarError, match="neither a syntax axiom nor a floating hypothesis"):
        grammar.expression(ProofStep("wi", (ProofStep("wph"), ProofStep("ax-1"))))


# --- tiny grammars -------------------------------------------------------------------------------

AMBIGUOUS = """
$c wff |- + ( ) $.
$v ph ps ch $.
wph $f wff ph $.
wps $f wff ps $.
wch $f wff ch $.
wplus $a wff ph + ps $.
wpar $a wff ( ph ) $.
"""


def test_ambiguity_is_reported(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, AMBIGUOUS))
    grammar = Grammar(db)
    with pytest.raises(GrammarError, match=r"ambiguous \(2 parses\)"):
        grammar.parse("wff", ["ph", "+", "ps", "+", "ch"])
    assert not grammar.is_well_formed("wff", ["ph", "+", "ps", "+", "ch"])
    tree = grammar.parse("wff", ["(", "ph", "+", "ps", ")", "+", "ch"])  # the bracketed twin is unambiguous
    assert normal_proof(tree) == ["wph", "wps", "wplus", "wpar", "wch", "wplus"]


LEFT_RECURSIVE = """
$( Like ql.mm: an orthocomplement written after its operand. $)
$c term wff |- ' ( ) v = 1 $.
$v a b $.
wva $f term a $.
wvb $f term b $.
wn $a term a ' $.
wo $a term ( a v b ) $.
wt $a term 1 $.
wb $a wff a = b $.
ax-r1 $a |- a = a ' ' $.
"""


@pytest.mark.parametrize(
    "text, proof",
    [
        ("a '", ["wva", "wn"]),
        ("a ' ' '", ["wva", "wn", "wn", "wn"]),
        ("( a ' v 1 ) '", ["wva", "wn", "wt", "wo", "wn"]),
        ("( a v b ' ' ) ' '", ["wva", "wvb", "wn", "wn", "wo", "wn", "wn"]),
    ],
)
def test_left_recursive_rules_parse(tmp_path: Path, text: str, proof: list[str]) -> None:
    db = read_database(write(tmp_path, LEFT_RECURSIVE))
    grammar = Grammar(db)
    tree = grammar.parse("term", text.split())
    assert normal_proof(tree) == proof
    assert grammar.expression(tree) == tuple(text.split())
    assert not grammar.is_well_formed("term", ["'", *text.split()])  # the mutated twin
    assert not grammar.is_well_formed("term", [*text.split(), "v"])


def test_left_recursion_inside_a_provable_statement(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, LEFT_RECURSIVE))
    grammar = Grammar(db)
    tree = grammar.parse_statement(db.assertion("ax-r1").statement)
    assert normal_proof(tree) == ["wva", "wva", "wn", "wn", "wb"]
    assert not grammar.is_well_formed("wff", ["a", "=", "'", "a"])


def test_ql_mm_left_recursive_grammar(debian_databases: Path) -> None:
    db = read_database(debian_databases / "ql.mm", stop_at="ax-a1")
    grammar = Grammar(db)
    tree = grammar.parse("wff", ["(", "a", "'", "v", "b", ")", "'", "=", "(", "a", "^", "b", "'", ")"])
    assert tree.label == "wb"
    assert grammar.expression(tree) == tuple(["(", "a", "'", "v", "b", ")", "'", "=", "(", "a", "^", "b", "'", ")"])
    assert not grammar.is_well_formed(
        "wff", ["(", "a", "'", "v", "b", ")", "'", "=", "'", "(", "a", "^", "b", "'", ")"]
    )


def test_a_rule_with_logical_hypotheses_is_not_a_grammar_rule(tmp_path: Path) -> None:
    db = read_database(
        write(
            tmp_path,
            """
$c wff |- ( ) -> $.
$v ph ps $.
wph $f wff ph $.
wps $f wff ps $.
wi $a wff ( ph -> ps ) $.
${ wx.1 $e |- ph $. wx $a wff ( ph ) $. $}
""",
        )
    )
    grammar = Grammar(db)
    assert "wx" not in grammar.rules and "wi" in grammar.rules
    assert not grammar.is_well_formed("wff", ["(", "ph", ")"])
    assert grammar.is_well_formed("wff", ["(", "ph", "->", "ps", ")"])
