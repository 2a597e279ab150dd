"""Backward and forward environments on real databases: every error kind with its accepted twin, closing
subgoals by hypotheses, collecting ``$d`` pairs, and replaying real proofs to trees the kernel accepts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from core.metamath.database import Assertion, Database
from core.metamath.environment import (
    BackwardEnv,
    EnvError,
    EnvErrorKind,
    Expansion,
    ForwardEnv,
    Node,
    Tactic,
)
from core.metamath.prooftree import ProofTree, check_tree, make_theorem, tree_from_proof
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel

K = EnvErrorKind


def s(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class Tools:
    def __init__(self, db: Database) -> None:
        self.db, self.grammar, self.kernel = db, Grammar(db), Kernel(db)

    def backward(self, theorem: Assertion | str, **kwargs: object) -> BackwardEnv:
        theorem = self.db.assertion(theorem) if isinstance(theorem, str) else theorem
        return BackwardEnv(self.db, theorem, grammar=self.grammar, kernel=self.kernel, **kwargs)  # type: ignore[arg-type]

    def forward(self, theorem: Assertion | str, **kwargs: object) -> ForwardEnv:
        theorem = self.db.assertion(theorem) if isinstance(theorem, str) else theorem
        return ForwardEnv(self.db, theorem, grammar=self.grammar, kernel=self.kernel, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def prop(prop_mm: Path) -> Tools:
    return Tools(read_database(prop_mm))


@pytest.fixture(scope="module")
def pred(set_mm: Path) -> Tools:
    """set.mm up to class unions: predicate calculus with ``$d`` conditions (ax-5 and ~700 theorems)."""
    return Tools(read_database(set_mm, stop_at="df-un"))


def expansion(result: Expansion | EnvError) -> Expansion:
    assert isinstance(result, Expansion), str(result)
    return result


def node(result: Node | EnvError) -> Node:
    assert isinstance(result, Node), str(result)
    return result


def error(result: object, kind: EnvErrorKind, *fragments: str) -> EnvError:
    assert isinstance(result, EnvError), f"expected {kind}, got {result!r}"
    assert result.kind is kind, str(result)
    for fragment in fragments:
        assert fragment in result.message, result.message
    return result


# pm2.43i: hypothesis |- ( ph -> ( ph -> ps ) ), goal |- ( ph -> ps ); pm2.43 precedes it, con4i follows it
GOAL = s("|- ( ph -> ps )")
PM243 = s("|- ( ( ph -> ( ph -> ps ) ) -> ( ph -> ps ) )")


# --- labels ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, fragment",
    [
        ("no-such-label", "not in the database"),
        ("wph", "a hypothesis"),
        ("pm2.43i.1", "a hypothesis"),
        ("min", "a hypothesis"),
    ],
)
def test_unknown_labels(prop: Tools, label: str, fragment: str) -> None:
    backward, forward = prop.backward("pm2.43i"), prop.forward("pm2.43i")
    error(backward.apply(GOAL, Tactic(label)), K.UNKNOWN_LABEL, fragment)
    error(forward.apply(Tactic(label)), K.UNKNOWN_LABEL, fragment)
    expansion(backward.apply(PM243, Tactic("pm2.43")))  # the twin: a known, citable label
    node(forward.apply(Tactic("pm2.43", {"ph": ("ph",), "ps": ("ps",)})))


@pytest.mark.parametrize(
    "label, forbidden, fragment, twin",
    [
        ("con4i", (), "comes after pm2.43i", ("con4d", "|- ( ps -> ph )")),
        ("pm2.43i", (), "forbidden for pm2.43i", ("pm2.43d", "|- ( ph -> ps )")),
        ("pm2.43", ("pm2.43",), "forbidden for pm2.43i", ("pm2.43i", "|- ( ( ph -> ( ph -> ps ) ) -> ( ph -> ps ) )")),
        ("wi", (), "syntax assertion", None),
    ],
)
def test_forbidden_labels(
    prop: Tools, label: str, forbidden: tuple[str, ...], fragment: str, twin: tuple[str, str] | None
) -> None:
    backward = prop.backward("pm2.43i", forbidden=forbidden)
    forward = prop.forward("pm2.43i", forbidden=forbidden)
    error(backward.apply(GOAL, Tactic(label, {"ps": ("ps",)})), K.FORBIDDEN_LABEL, fragment)
    error(forward.apply(Tactic(label, {"ph": ("ph",), "ps": ("ps",)})), K.FORBIDDEN_LABEL, fragment)
    if twin is not None:  # the same label where it may be cited
        theorem, goal = twin
        expansion(prop.backward(theorem).apply(s(goal), Tactic(label)))
    else:  # a syntax axiom never may: its provable twin may
        expansion(backward.apply(s("|- ( ph -> ( ps -> ph ) )"), Tactic("ax-1")))


# --- unification and substitutions (backward) ------------------------------------------------------


def test_no_unification(prop: Tools) -> None:
    env = prop.backward("pm2.43i")
    error(env.apply(GOAL, Tactic("ax-3")), K.NO_UNIFICATION, "ax-3")
    error(env.apply(s("wff ( ph -> ps )"), Tactic("ax-1")), K.NO_UNIFICATION)  # wrong typecode
    error(env.apply(s("|- ( ph ->"), Tactic("ax-1")), K.NO_UNIFICATION)  # the goal does not parse
    error(env.apply(s("|- ( ph -> ( ps -> ps ) )"), Tactic("ax-1")), K.NO_UNIFICATION)  # ph cannot be two things
    done = expansion(env.apply(s("|- ( ph -> ( ps -> ph ) )"), Tactic("ax-1")))
    assert done.subgoals == () and done.substitution == {"ph": ("ph",), "ps": ("ps",)}


def test_missing_substitution(prop: Tools) -> None:
    env = prop.backward("pm2.43i")
    assert env.free_variables(prop.db.assertion("ax-mp")) == ["ph"]
    error(env.apply(GOAL, Tactic("ax-mp")), K.MISSING_SUBSTITUTION, "ph")
    expansion(env.apply(GOAL, Tactic("ax-mp", {"ph": ("ph",)})))


def test_invalid_substitution(prop: Tools) -> None:
    env = prop.backward("pm2.43i")
    error(
        env.apply(GOAL, Tactic("ax-mp", {"ph": ("ph",), "ch": ("ph",)})),
        K.INVALID_SUBSTITUTION,
        "'ch' is not a variable of ax-mp",
    )
    error(
        env.apply(GOAL, Tactic("ax-mp", {"ph": ("ph",), "ps": ("ps",)})),
        K.INVALID_SUBSTITUTION,
        "fixed to '( ph -> ps )' by unification",
    )
    result = expansion(env.apply(GOAL, Tactic("ax-mp", {"ph": ("ph",), "ps": s("( ph -> ps )")})))
    assert result.substitution == {"ph": ("ph",), "ps": s("( ph -> ps )")}


@pytest.mark.parametrize("bad", ["( ph -> )", "( ph -> ps", "ph ph", "", "-. -.", "( ph <-> ps <-> ch )"])
def test_ill_formed_substitution(prop: Tools, bad: str) -> None:
    env = prop.backward("pm2.43i")
    error(env.apply(GOAL, Tactic("ax-mp", {"ph": s(bad)})), K.ILL_FORMED_SUBSTITUTION)
    expansion(env.apply(GOAL, Tactic("ax-mp", {"ph": s("( ph -> ( ph -> ps ) )")})))


def test_a_substitution_of_the_wrong_type_is_ill_formed(pred: Tools) -> None:
    theorem = make_theorem(pred.db, "goal", s("|- ( ph -> ph )"))
    env = pred.backward(theorem)
    error(env.apply(s("|- ( ph -> ph )"), Tactic("ax-mp", {"ph": ("x",)})), K.ILL_FORMED_SUBSTITUTION)
    error(env.apply(s("|- ( ph -> ph )"), Tactic("ax-mp", {"ph": ("A",)})), K.ILL_FORMED_SUBSTITUTION)
    expansion(env.apply(s("|- ( ph -> ph )"), Tactic("ax-mp", {"ph": s("x = y")})))


def test_subgoals_equal_to_a_hypothesis_are_closed(prop: Tools) -> None:
    env = prop.backward("pm2.43i")
    closing = expansion(env.apply(GOAL, Tactic("ax-mp", {"ph": s("( ph -> ( ph -> ps ) )")})))
    assert [g.closed_by for g in closing.subgoals] == ["pm2.43i.1", None]
    assert closing.open_subgoals == [PM243]
    twin = expansion(env.apply(GOAL, Tactic("ax-mp", {"ph": ("ps",)})))
    assert [g.closed_by for g in twin.subgoals] == [None, None]
    assert twin.open_subgoals == [s("|- ps"), s("|- ( ps -> ( ph -> ps ) )")] and twin.goal == GOAL


def test_build_tree_of_a_solved_goal(prop: Tools) -> None:
    env = prop.backward("pm2.43i")
    top = expansion(env.apply(GOAL, Tactic("ax-mp", {"ph": s("( ph -> ( ph -> ps ) )")})))
    lemma = expansion(env.apply(PM243, Tactic("pm2.43")))
    tree = env.build_tree(top, [None, env.build_tree(lemma, [])])
    assert check_tree(prop.db, prop.grammar, env.theorem, tree, prop.kernel)
    with pytest.raises(ValueError, match="has no proof"):
        env.build_tree(top, [None, None])


# --- disjoint variables ----------------------------------------------------------------------------


def test_disjoint_violation_pair_not_in_context(pred: Tools) -> None:
    goal = s("|- ( ph -> A. x ph )")
    without = make_theorem(pred.db, "goal", goal)
    error(pred.backward(without).apply(goal, Tactic("ax-5")), K.DISJOINT_VIOLATION, "$d ph x", "not in effect")
    error(pred.forward(without).apply(Tactic("ax-5", {"ph": ("ph",), "x": ("x",)})), K.DISJOINT_VIOLATION, "$d ph x")
    with_pair = make_theorem(pred.db, "goal", goal, disjoint=[("x", "ph")])
    done = expansion(pred.backward(with_pair).apply(goal, Tactic("ax-5")))
    forward = pred.forward(with_pair)
    proved = node(forward.apply(Tactic("ax-5", {"ph": ("ph",), "x": ("x",)})))
    assert forward.is_goal(proved) and proved.disjoint == frozenset({("ph", "x")})
    assert check_tree(pred.db, pred.grammar, with_pair, pred.backward(with_pair).build_tree(done, []), pred.kernel)


def test_disjoint_violation_same_variable(pred: Tools) -> None:
    goal = s("|- ( x = y -> A. x x = y )")
    everything = make_theorem(pred.db, "goal", goal, disjoint=[("x", "y")])
    error(pred.backward(everything).apply(goal, Tactic("ax-5")), K.DISJOINT_VIOLATION, "both contain 'x'")
    for collect in (False, True):
        forward = pred.forward(everything, collect_disjoint=collect)
        error(forward.apply(Tactic("ax-5", {"ph": s("x = y"), "x": ("x",)})), K.DISJOINT_VIOLATION, "'x'")
    twin_goal = s("|- ( y = z -> A. x y = z )")
    twin = make_theorem(pred.db, "goal", twin_goal, disjoint=[("x", "y"), ("x", "z")])
    expansion(pred.backward(twin).apply(twin_goal, Tactic("ax-5")))


def test_a_theorems_own_disjoint_conditions_are_in_effect(pred: Tools) -> None:
    """ax5d's ``$d x ps`` lets its proof use ax-5 on ps; not on ph."""
    theorem = pred.db.assertion("ax5d")
    assert theorem.context_disjoint == {("ps", "x")}
    env = pred.backward(theorem)
    expansion(env.apply(s("|- ( ps -> A. x ps )"), Tactic("ax-5")))
    error(env.apply(s("|- ( ph -> A. x ph )"), Tactic("ax-5")), K.DISJOINT_VIOLATION, "$d ph x")


def test_collect_disjoint_mode_accumulates_pairs(pred: Tools) -> None:
    a, b = s("( ph -> A. x ph )"), s("( ps -> A. y ps )")  # A' and B'
    theorem = make_theorem(pred.db, "goal", ("|-", "(", *a, "->", *a, ")"))
    forward = pred.forward(theorem, collect_disjoint=True)
    first = node(forward.apply(Tactic("ax-5", {"ph": ("ph",), "x": ("x",)})))
    second = node(forward.apply(Tactic("ax-5", {"ph": ("ps",), "x": ("y",)})))
    assert first.disjoint == {("ph", "x")} and second.disjoint == {("ps", "y")}
    weakened = node(forward.apply(Tactic("ax-1", {"ph": b, "ps": a})))
    assert weakened.disjoint == frozenset()
    a_to_b = node(forward.apply(Tactic("ax-mp", {"ph": b, "ps": ("(", *a, "->", *b, ")")})))
    assert a_to_b.children == (second.index, weakened.index) and a_to_b.disjoint == {("ps", "y")}
    node(forward.apply(Tactic("ax-1", {"ph": a, "ps": b})))
    b_to_a = node(forward.apply(Tactic("ax-mp", {"ph": a, "ps": ("(", *b, "->", *a, ")")})))
    assert b_to_a.disjoint == {("ph", "x")}
    last = node(forward.apply(Tactic("syl", {"ph": a, "ps": b, "ch": a})))
    assert forward.is_goal(last)
    assert last.disjoint == frozenset({("ph", "x"), ("ps", "y")})
    collected = make_theorem(pred.db, "goal", theorem.statement, disjoint=last.disjoint)
    assert check_tree(pred.db, pred.grammar, collected, last.tree, pred.kernel)
    strict = pred.forward(theorem)  # the twin: without collecting, the first step is refused
    error(strict.apply(Tactic("ax-5", {"ph": ("ph",), "x": ("x",)})), K.DISJOINT_VIOLATION)


# --- forward-only errors ---------------------------------------------------------------------------


def test_forward_missing_hypothesis_and_duplicate_node(prop: Tools) -> None:
    env = prop.forward("pm2.43i")
    assert [n.statement for n in env.nodes] == [s("|- ( ph -> ( ph -> ps ) )")]
    full = {"ph": s("( ph -> ( ph -> ps ) )"), "ps": s("( ph -> ps )")}
    error(env.apply(Tactic("ax-mp", full)), K.MISSING_HYPOTHESIS, " ".join(PM243), "which is not a node")
    lemma = node(env.apply(Tactic("pm2.43", {"ph": ("ph",), "ps": ("ps",)})))
    error(env.apply(Tactic("pm2.43", {"ph": ("ph",), "ps": ("ps",)})), K.DUPLICATE_NODE, f"node {lemma.index}")
    error(
        env.apply(Tactic("ax-mp", {"ph": s("( ph -> ( ph -> ps ) )"), "ps": s("( ph -> ( ph -> ps ) )")})),
        K.MISSING_HYPOTHESIS,
    )
    goal = node(env.apply(Tactic("ax-mp", full)))
    assert goal.children == (0, lemma.index) and env.is_goal(goal)
    assert [h.label for h in env.used_hypotheses(goal)] == ["pm2.43i.1"]
    assert env.used_hypotheses(lemma) == []
    assert check_tree(prop.db, prop.grammar, env.theorem, goal.tree, prop.kernel)
    error(env.apply(Tactic("ax-mp", full)), K.DUPLICATE_NODE)


def test_forward_substitution_errors(prop: Tools) -> None:
    env = prop.forward("pm2.43i")
    error(env.apply(Tactic("ax-1", {"ph": ("ph",)})), K.MISSING_SUBSTITUTION, "ps")
    error(env.apply(Tactic("ax-1", {"ph": ("ph",), "ps": ("ps",), "ch": ("ph",)})), K.INVALID_SUBSTITUTION, "'ch'")
    error(env.apply(Tactic("ax-1", {"ph": ("ph",), "ps": s("( ps")})), K.ILL_FORMED_SUBSTITUTION)
    made = node(env.apply(Tactic("ax-1", {"ph": ("ph",), "ps": ("ps",)})))
    assert made.statement == s("|- ( ph -> ( ps -> ph ) )") and made.children == ()


# --- replaying real proofs ---------------------------------------------------------------------------


def replay_backward(tools: Tools, theorem: Assertion, tree: ProofTree) -> ProofTree:
    """Solve ``theorem`` backward, giving each step's label and only the variables unification leaves free."""
    env = tools.backward(theorem)
    own = {h.label for h in theorem.essential}

    def solve(goal: Sequence[str], step: ProofTree) -> ProofTree:
        free = env.free_variables(tools.db.assertion(step.label))
        result = expansion(env.apply(tuple(goal), Tactic(step.label, {v: step.substitution[v] for v in free})))
        children = [
            None if sub.closed_by else solve(sub.statement, child) for sub, child in zip(result.subgoals, step.children)
        ]
        return env.build_tree(result, children)

    return tree if tree.label in own else solve(theorem.statement, tree)


def replay_forward(tools: Tools, theorem: Assertion, tree: ProofTree) -> Node:
    """Prove ``theorem`` forward, one node per distinct statement of its tree, children first."""
    env = tools.forward(theorem)
    for step in tree.nodes():
        if step.statement in env.by_statement:
            continue
        node(env.apply(Tactic(step.label, dict(step.substitution))))
    goal = env.by_statement[theorem.statement]
    assert env.is_goal(goal)
    return goal


def test_every_prop_mm_theorem_replays_backward_and_forward(prop: Tools) -> None:
    count = 0
    for theorem in prop.db.theorems():
        tree = tree_from_proof(prop.db, theorem, prop.kernel)
        assert check_tree(prop.db, prop.grammar, theorem, replay_backward(prop, theorem, tree), prop.kernel)
        assert check_tree(prop.db, prop.grammar, theorem, replay_forward(prop, theorem, tree).tree, prop.kernel)
        count += 1
    assert count == 998


def test_theorems_with_disjoint_conditions_replay(pred: Tools) -> None:
    theorems = [t for t in pred.db.theorems() if t.disjoint and t.typecode == "|-"][::4]  # a quarter: speed
    assert len(theorems) > 150
    for theorem in theorems:
        tree = tree_from_proof(pred.db, theorem, pred.kernel)
        assert check_tree(pred.db, pred.grammar, theorem, replay_backward(pred, theorem, tree), pred.kernel)
        assert check_tree(pred.db, pred.grammar, theorem, replay_forward(pred, theorem, tree).tree, pred.kernel)


# --- caches and unparseable assertions ---------------------------------------------------------------


def test_environments_of_the_same_context_share_parses(prop: Tools, pred: Tools) -> None:
    first, second = prop.backward("pm2.43i"), prop.forward("syl")
    goal = s("|- ( ph -> ( ps -> ph ) )")
    assert first.tree(goal) is second.tree(goal)  # parsed once for both
    assert first.tree(s("|- ( ph ->")) is None and second.tree(s("|- ( ph ->")) is None
    local = make_theorem(pred.db, "t", goal, before=pred.db.assertion("ax5d"))
    other = make_theorem(pred.db, "t", goal)
    assert pred.backward(local).tree(goal) is not pred.backward(other).tree(goal)  # different contexts
    assert pred.grammar.expression(pred.backward(local).tree(goal)) == goal[1:]


def test_an_assertion_whose_statement_does_not_parse_unifies_with_nothing(tmp_path: Path) -> None:
    path = tmp_path / "amb.mm"
    path.write_text("""$c wff |- + $. $v ph ps ch $. wph $f wff ph $. wps $f wff ps $. wch $f wff ch $.
wplus $a wff ph + ps $.
ax-amb $a |- ph + ps + ch $.
ax-ok $a |- ph + ps $.
""")
    tools = Tools(read_database(path))
    theorem = make_theorem(tools.db, "goal", s("|- ph + ps"))
    env = tools.backward(theorem)
    error(env.apply(s("|- ph + ps"), Tactic("ax-amb")), K.NO_UNIFICATION)  # ambiguous: no tree, no exception
    expansion(env.apply(s("|- ph + ps"), Tactic("ax-ok")))
