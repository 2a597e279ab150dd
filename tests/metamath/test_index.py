"""The discrimination tree returns exactly the patterns that match, as trying each one would."""

from __future__ import annotations

from core.metamath.index import PatternIndex, consistent
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar, floating_context


def test_index_agrees_with_trying_every_pattern(prop_mm) -> None:
    db = read_database(prop_mm)
    grammar = Grammar(db)
    index: PatternIndex[str] = PatternIndex()
    patterns = []
    for assertion in db.assertions:
        if assertion.typecode != db.provable_typecode:
            continue
        tree = grammar.parse(assertion.typecode, assertion.statement[1:], floating_context(assertion.floating))
        variables = {h.label: h.variable for h in assertion.floating}
        index.add(assertion.label, tree, variables)
        patterns.append((assertion.label, tree, variables))
    goals = [
        grammar.parse(t.typecode, t.statement[1:], floating_context(t.context_floating)) for t in db.theorems()[::7]
    ]
    total = 0
    for goal in goals:
        expected = sorted(label for label, tree, variables in patterns if consistent(tree, goal, variables))
        assert sorted(index.matches(goal)) == expected
        total += len(expected)
    assert total > len(goals)  # goals match several conclusions (including their own)


def test_a_repeated_variable_must_bind_equal_subtrees(prop_mm) -> None:
    db = read_database(prop_mm)
    grammar = Grammar(db)
    identity = db.assertion("id")  # |- ( ph -> ph )
    index: PatternIndex[str] = PatternIndex()
    index.add("id", grammar.parse_statement(identity.statement), {h.label: h.variable for h in identity.floating})
    assert index.matches(grammar.parse_statement(("|-", "(", "ps", "->", "ps", ")"))) == ["id"]
    assert index.matches(grammar.parse_statement(("|-", "(", "ps", "->", "ph", ")"))) == []
