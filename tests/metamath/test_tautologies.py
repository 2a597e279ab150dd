"""``python -m core.metamath tautologies``: seeded random tautologies after a database, checked independently.

The truth tables here are computed by this file's own parser and evaluator of set.mm's notation, not by
:mod:`core.metamath.tautologies`, so a bug there cannot hide itself.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

from core.metamath.__main__ import main
from core.metamath.embedded import embedded_database_path
from core.metamath.reader import read_database
from core.metamath.tautologies import TautologySettings, entails, iter_statements, parse_formula, tautologies

BINARY = {
    "->": lambda a, b: (not a) or b,
    "<->": lambda a, b: a == b,
    "/\\": lambda a, b: a and b,
    "\\/": lambda a, b: a or b,
}


def parse(symbols: list[str]) -> tuple[object, list[str]]:
    """A formula tree (variable name, ('-.', f) or (op, f, g)) and the symbols left over."""
    head, rest = symbols[0], symbols[1:]
    if head == "-.":
        inner, rest = parse(rest)
        return ("-.", inner), rest
    if head == "(":
        left, rest = parse(rest)
        operator, rest = rest[0], rest[1:]
        right, rest = parse(rest)
        assert rest[0] == ")", symbols
        return (operator, left, right), rest[1:]
    assert head in ("ph", "ps", "ch", "th", "ta"), head
    return head, rest


def evaluate(tree: object, values: dict[str, bool]) -> bool:
    if isinstance(tree, str):
        return values[tree]
    if tree[0] == "-.":
        return not evaluate(tree[1], values)
    return BINARY[tree[0]](evaluate(tree[1], values), evaluate(tree[2], values))


def depth(tree: object) -> int:
    return 0 if isinstance(tree, str) else 1 + max(depth(t) for t in tree[1:])


def truth_table_says_tautology(statement: tuple[str, ...]) -> bool:
    assert statement[0] == "|-"
    tree, rest = parse(list(statement[1:]))
    assert not rest
    names = sorted({s for s in statement if s in ("ph", "ps", "ch", "th", "ta")})
    return all(evaluate(tree, dict(zip(names, row))) for row in itertools.product((False, True), repeat=len(names)))


def write_set(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["tautologies", "--out", str(out), *args]) == 0
    return out


def test_the_independent_truth_table_tells_tautologies_from_their_mutated_twins():
    assert truth_table_says_tautology(("|-", "(", "ph", "->", "(", "ps", "->", "ph", ")", ")"))
    assert truth_table_says_tautology(("|-", "(", "ph", "->", "(", "ps", "->", "ps", ")", ")"))
    assert not truth_table_says_tautology(("|-", "(", "ph", "->", "(", "ps", "/\\", "ph", ")", ")"))
    assert not truth_table_says_tautology(("|-", "-.", "(", "ph", "->", "ph", ")"))


def test_every_statement_is_a_new_tautology_of_the_asked_depth_and_the_file_reads(tmp_path, prop_mm, metamath_exe):
    out = write_set(
        tmp_path,
        "t.mm",
        "--database",
        str(prop_mm),
        "--count",
        "40",
        "--seed",
        "3",
        "--min-depth",
        "2",
        "--max-depth",
        "5",
    )
    text = out.read_text(encoding="latin-1")
    assert text.startswith(prop_mm.read_text(encoding="latin-1"))
    found = list(iter_statements(text))
    assert [label for label, _ in found] == [f"taut.{i}" for i in range(1, 41)]
    statements = [s for _, s in found]
    assert len(set(statements)) == 40
    for statement in statements:
        assert truth_table_says_tautology(statement), statement
        assert 2 <= depth(parse(list(statement[1:]))[0]) <= 5
    db = read_database(out)
    assert [t.label for t in db.incomplete_theorems()] == [label for label, _ in found]
    known = {a.statement for a in read_database(prop_mm).assertions}
    assert not known & set(statements)
    done = subprocess.run(
        [metamath_exe, f'read "{out}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=120
    )
    assert "?Error" not in done.stdout and "taut.40" in done.stdout, done.stdout[-2000:]


def test_the_same_seed_writes_the_same_file_another_seed_another(tmp_path):
    database = str(embedded_database_path())
    first = write_set(tmp_path, "a.mm", "--database", database, "--seed", "7", "--count", "20")
    again = write_set(tmp_path, "b.mm", "--database", database, "--seed", "7", "--count", "20")
    other = write_set(tmp_path, "c.mm", "--database", database, "--seed", "8", "--count", "20")
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_a_generator_that_kept_non_tautologies_would_be_caught():
    db = read_database(embedded_database_path())
    kept = tautologies(db, TautologySettings(count=25, seed=1, connectives=("imp", "not")))
    assert all(truth_table_says_tautology(s) for s in kept)
    assert all(set(s) <= {"|-", "(", ")", "->", "-.", "ph", "ps", "ch"} for s in kept)
    mutated = [s[:1] + tuple("/\\" if x == "->" else x for x in s[1:]) for s in kept]
    assert not all(truth_table_says_tautology(s) for s in mutated)


def test_bad_settings_and_databases_are_refused_with_a_message(tmp_path, capsys):
    database = str(embedded_database_path())
    out = str(tmp_path / "t.mm")
    assert main(["tautologies", "--database", database, "--out", out, "--min-depth", "4", "--max-depth", "2"]) == 2
    assert "max_depth" in capsys.readouterr().err
    assert main(["tautologies", "--database", database, "--out", out, "--connectives", "imp,xor"]) == 2
    assert "xor" in capsys.readouterr().err
    assert main(["tautologies", "--database", database, "--out", database]) == 2
    assert "input file" in capsys.readouterr().err
    bare = tmp_path / "bare.mm"
    bare.write_text("$c ( ) -> wff |- $. $v ph ps $. wph $f wff ph $. wps $f wff ps $.\nwi $a wff ( ph -> ps ) $.\n")
    assert main(["tautologies", "--database", str(bare), "--out", out, "--variables", "2"]) == 1
    assert "-. and -> are needed" in capsys.readouterr().err
    assert main(["tautologies", "--database", str(bare), "--out", out]) == 1
    assert "does not declare ch" in capsys.readouterr().err
    assert not Path(out).exists()


def test_asking_for_more_tautologies_than_exist_fails_instead_of_looping(tmp_path, capsys):
    database = str(embedded_database_path())
    out = tmp_path / "t.mm"
    args = [
        "tautologies",
        "--database",
        database,
        "--out",
        str(out),
        "--count",
        "1000",
        "--variables",
        "1",
        "--max-depth",
        "2",
        "--connectives",
        "imp,not",
    ]
    assert main(args) == 1
    assert "distinct tautologies found" in capsys.readouterr().err
    assert not out.exists()


def test_set_mm_s_propositional_part_takes_them_and_jobs_prove_fills_some(tmp_path, set_mm, capsys):
    from jobs.prove import prove

    out = write_set(tmp_path, "s.mm", "--database", str(set_mm), "--stop-at", "ax-gen", "--count", "6", "--seed", "2")
    db = read_database(out)
    assert "ax-gen" not in db.labels
    assert [t.label for t in db.incomplete_theorems()] == [f"taut.{i}" for i in range(1, 7)]
    capsys.readouterr()
    filled = tmp_path / "filled.mm"
    assert prove(str(out), out=str(filled), expansions=64) == 0
    proved = int(capsys.readouterr().out.splitlines()[-1].split()[1])
    assert proved > 0
    assert len(read_database(filled).incomplete_theorems()) == 6 - proved


# --- reading formulas back and entailment (what benchmarks/critic_bound.py's truth-table critic uses) ---

WFF = {"ph", "ps", "ch", "th", "ta"}


def formula(text: str):
    return parse_formula(text.split(), WFF)


def test_parse_formula_reads_what_symbols_writes_and_every_generated_tautology():
    for text in ("ph", "-. -. ph", "( ph -> ( ps <-> -. ch ) )", "( ( ph /\\ ps ) \\/ th )"):
        parsed = formula(text)
        assert parsed is not None and " ".join(parsed.symbols()) == text
    for statement in tautologies(read_database(embedded_database_path()), TautologySettings(count=10, seed=3)):
        parsed = parse_formula(statement[1:], WFF)
        assert parsed is not None and parsed.symbols() == statement[1:]
    assert " ".join(formula("( ph /\\ ps /\\ ch )").symbols()) == "( ( ph /\\ ps ) /\\ ch )"  # set.mm's w3a


def test_parse_formula_refuses_what_is_not_a_whole_formula_of_the_known_connectives():
    for text in ("( ph -> ps", "( ph -> ps ) )", "ph ps", "( ph -/\\ ps )", "( ph /\\ ps \\/ ch )", "A", "", "( ph )"):
        assert formula(text) is None, text
    assert parse_formula(["ph"], {"ps"}) is None  # not a wff variable here


def test_entails_is_true_exactly_when_no_assignment_makes_the_hypotheses_true_and_the_goal_false():
    assert entails([], formula("( ph -> ( ps -> ph ) )"))
    assert not entails([], formula("( ph -> ( ps -> ( ps /\\ -. ph ) ) )"))  # its mutated twin
    assert entails([formula("( ph -> ps )"), formula("ph")], formula("ps"))  # modus ponens
    assert not entails([formula("( ph -> ps )")], formula("ps"))  # its twin without the minor premise
    assert entails([formula("ph"), formula("-. ph")], formula("th"))  # inconsistent hypotheses entail anything
    assert not entails([], formula("th"))
