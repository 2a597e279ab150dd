"""The kernel on hostile input: huge step numbers, deep formulas, includes that are not regular files, and a
failure in one theorem. Each gives that input's error (a project error naming it) and nothing else: the other
theorems are still verified, nothing hangs, nothing raises RecursionError or ValueError.

Each rejection test starts from an input that is accepted (MINI of test_verifier, or a formula that parses).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import GrammarError, MetamathError, MMVerificationError
from core.metamath import proof as proof_module
from core.metamath import read_database, verify_database
from core.metamath.proof import MAX_STEP_LETTERS, decode_proof, encode_number, normal_proof
from core.metamath.syntax import Grammar, _Parse, _run_calls, floating_context
from core.metamath.verifier import Kernel

from .test_verifier import GOOD, MINI, replace_proof

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ID_C_LETTERS = "AAABZBZFAACAFABBGFBAFCAFADEE"
DEEP = 20_000


def write(tmp_path: Path, text: str, name: str = "mini.mm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def with_id_c_letters(letters: str) -> str:
    return replace_proof(MINI, "id-c", f"( wi ax-1 ax-2 ax-mp ) {letters}")


# --- compressed proofs: step numbers are bounded, decoding is linear ---------------------------------


def test_a_6_kb_step_number_is_that_proofs_error_and_the_others_verify(tmp_path: Path) -> None:
    good = verify_database(read_database(write(tmp_path, with_id_c_letters(ID_C_LETTERS))))
    assert good.ok and good.verified == len(GOOD)
    huge = "U" * 6000 + "A"
    report = verify_database(read_database(write(tmp_path, with_id_c_letters(huge + ID_C_LETTERS))))
    assert [error.label for error in report.failures] == ["id-c"]
    assert isinstance(report.failures[0], MMVerificationError)
    assert f"step 1 is a number of more than {MAX_STEP_LETTERS} letters" in str(report.failures[0])
    assert report.verified == len(GOOD) - 1


def test_the_longest_decoded_number_is_a_saved_step_and_one_more_letter_is_too_large(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    longest = "U" * (MAX_STEP_LETTERS - 1) + "A"
    id_c = db.assertion("id-c")
    with pytest.raises(MMVerificationError, match="step 1 refers to saved step"):
        decode_proof(db, id_c.with_proof(("(", "wi", ")", longest)))
    with pytest.raises(MMVerificationError, match=f"more than {MAX_STEP_LETTERS} letters"):
        decode_proof(db, id_c.with_proof(("(", "wi", ")", "U" + longest)))


def test_numbers_encode_and_decode_back_up_to_the_longest(tmp_path: Path) -> None:
    db = read_database(write(tmp_path, MINI))
    id_c = db.assertion("id-c")
    for number in (3, 20, 21, 120, 121, 2620, 10**9):
        letters = encode_number(number)
        assert len(letters) <= MAX_STEP_LETTERS
        with pytest.raises(MMVerificationError, match=f"refers to saved step {number - 2}, but only 0"):
            decode_proof(db, id_c.with_proof(("(", "wi", ")", letters)))  # labels wph, wi: 3 is saved step 1


def test_long_letter_runs_decode_in_linear_time_and_bounded_memory(tmp_path: Path) -> None:
    """A million letters: quadratic decoding (a big number built digit by digit) would not finish."""
    db = read_database(write(tmp_path, MINI))
    id_c = db.assertion("id-c")
    unfinished = "U" * 1_000_000
    with pytest.raises(MMVerificationError, match="ends in the middle of a number"):
        decode_proof(db, id_c.with_proof(("(", "wi", ")", unfinished)))
    cached = len(proof_module._STEP_OPS)
    with pytest.raises(MMVerificationError, match="more than"):
        decode_proof(db, id_c.with_proof(("(", "wi", ")", unfinished + "A")))
    distinct = "".join(encode_number(n) for n in range(10**6, 10**6 + 2000))  # 2000 distinct 9-letter steps
    with pytest.raises(MMVerificationError, match="refers to saved step"):
        decode_proof(db, id_c.with_proof(("(", "wi", ")", distinct)))
    assert len(proof_module._STEP_OPS) == cached  # long step texts are not remembered


def test_verify_cli_reports_the_huge_number_and_verifies_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, with_id_c_letters("U" * 6000 + "A" + ID_C_LETTERS))
    done = subprocess.run(
        [sys.executable, "-m", "core.metamath", "verify", str(path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "label id-c" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(f"verified {len(GOOD) - 1} proofs, 0 incomplete")
    fine = subprocess.run(
        [sys.executable, "-m", "core.metamath", "verify", str(write(tmp_path, MINI, "ok.mm"))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fine.returncode == 0 and fine.stdout.strip().splitlines()[-1].startswith(f"verified {len(GOOD)} proofs")


# --- one bad theorem never stops the others ---------------------------------------------------------


def test_an_unexpected_kernel_error_is_that_theorems_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = read_database(write(tmp_path, MINI))
    original = Kernel._execute

    def broken_on_id(self: Kernel, theorem, program):  # type: ignore[no-untyped-def]
        if theorem.label == "id":
            raise IndexError("a kernel bug")
        return original(self, theorem, program)

    monkeypatch.setattr(Kernel, "_execute", broken_on_id)
    report = verify_database(db)
    assert [error.label for error in report.failures] == ["id"]
    assert "kernel failed on this proof (IndexError: a kernel bug)" in str(report.failures[0])
    assert report.verified == len(GOOD) - 1
    monkeypatch.setattr(Kernel, "_execute", original)
    assert verify_database(db).verified == len(GOOD)


def test_a_made_theorem_citing_its_own_floating_hypothesis_verifies_and_a_wrong_one_fails(tmp_path: Path) -> None:
    """Kernel API: a theorem the database does not hold, with floating hypotheses of its own labels."""
    from core.metamath.database import Assertion, Hypothesis

    db = read_database(write(tmp_path, MINI))
    own_f = Hypothesis("own.f", "f", ("wff", "ph"), None, None)  # type: ignore[arg-type]
    made = Assertion(
        label="made",
        kind="p",
        statement=("wff", "ph"),
        hypotheses=(own_f,),
        disjoint=frozenset(),
        number=len(db.assertions),
        file=None,
        line=None,
        proof=("own.f",),  # type: ignore[arg-type]
        context_floating=(own_f,),
        context_disjoint=frozenset(),
    )
    Kernel(db).verify(made)
    with pytest.raises(MetamathError):
        Kernel(db).verify(made.with_proof(("own.f", "own.f")))


# --- deep formulas ------------------------------------------------------------------------------------

IMPLICATIONS = """\
$c ( ) -> -. wff |- $.
$v ph ps $.
wph $f wff ph $.
wps $f wff ps $.
wn $a wff -. ph $.
wi $a wff ( ph -> ps ) $.
"""


def nested(depth: int) -> tuple[str, ...]:
    """``( ( ... ( ph -> ph ) ... -> ph ) -> ph )``: ``depth`` implications nested on the left."""
    return ("(",) * depth + ("ph",) + ("->", "ph", ")") * depth


@pytest.fixture(scope="module")
def implications(tmp_path_factory: pytest.TempPathFactory) -> Grammar:
    folder = tmp_path_factory.mktemp("deep")
    return Grammar(read_database(write(folder, IMPLICATIONS, "imp.mm")))


@pytest.mark.parametrize("depth", [3, 400, DEEP])
def test_deeply_nested_formulas_parse_and_round_trip(implications: Grammar, depth: int) -> None:
    symbols = nested(depth)
    tree = implications.parse("wff", symbols)
    assert implications.expression(tree) == symbols
    assert normal_proof(tree) == ["wph"] + ["wph", "wi"] * depth
    negations = ("-.",) * DEEP + ("ph",)
    assert implications.expression(implications.parse("wff", negations)) == negations


@pytest.mark.parametrize("cut", [1, 2, DEEP])
def test_deeply_nested_malformed_formulas_fail_with_a_grammar_error(implications: Grammar, cut: int) -> None:
    symbols = nested(DEEP)[:-cut]  # a closing parenthesis (or more) missing
    with pytest.raises(GrammarError, match="does not parse") as caught:
        implications.parse("wff", symbols)
    assert len(str(caught.value)) < 400  # the expression is shortened in the message


def test_the_explicit_stack_parser_agrees_with_the_recursive_one(
    prop_mm: Path, set_mm: Path, debian_databases: Path
) -> None:
    ql = debian_databases / "ql.mm"  # a left-recursive grammar (`term -> term '`): seeds grown on both paths
    for db in (read_database(prop_mm), read_database(set_mm, stop_at="df-un"), read_database(ql)):
        grammar = Grammar(db)
        for assertion in db.assertions[::3]:
            floating = floating_context(assertion.floating)
            symbols = assertion.statement[1:]
            typecode = grammar.syntax_typecode(assertion.statement[0])
            recursive = _Parse(grammar, symbols, floating).parses(typecode, 0)
            explicit = _run_calls(_Parse(grammar, symbols, floating).deep_parses(typecode, 0))
            assert [(end, normal_proof(tree)) for end, tree in recursive] == [
                (end, normal_proof(tree)) for end, tree in explicit
            ], assertion.label


def test_a_deep_expression_of_a_left_recursive_grammar_parses(tmp_path: Path) -> None:
    from .test_syntax import LEFT_RECURSIVE

    grammar = Grammar(read_database(write(tmp_path, LEFT_RECURSIVE, "left.mm")))
    symbols = ("(",) * 2000 + ("a",) + ("v", "b", "'", ")", "'") * 2000
    tree = grammar.parse("term", symbols)
    assert grammar.expression(tree) == symbols and normal_proof(tree)[:3] == ["wva", "wvb", "wn"]
    with pytest.raises(GrammarError, match="does not parse"):
        grammar.parse("term", symbols[:-2])


def test_reprove_handles_a_deep_syntax_theorem(tmp_path: Path) -> None:
    depth = 3000
    deep = IMPLICATIONS + f"wdeep $p wff {' '.join(nested(depth))} $= wph{' wph wi' * depth} $.\n"
    source = write(tmp_path, deep, "deep.mm")
    out = tmp_path / "out.mm"
    done = subprocess.run(
        [sys.executable, "-m", "core.metamath", "reprove", str(source), "--out", str(out), "--compressed"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert verify_database(read_database(out)).verified == 1
    broken = write(tmp_path, deep.replace("-> ph ) $=", "-> ph $=", 1), "broken.mm")  # a `)` missing: no parse
    failed = subprocess.run(
        [sys.executable, "-m", "core.metamath", "reprove", str(broken), "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 1 and "does not parse" in failed.stderr and "Traceback" not in failed.stderr


# --- includes must be regular files -----------------------------------------------------------------


HEADER = "$c wff $.\n$v ph $.\nwph $f wff ph $.\n"


def test_an_included_regular_file_is_read(tmp_path: Path) -> None:
    write(tmp_path, "ax $a wff ph $.\n", "inc.mm")
    db = read_database(write(tmp_path, HEADER + "$[ inc.mm $]\n"))
    assert [a.label for a in db.assertions] == ["ax"]


def read_elsewhere(path: Path) -> subprocess.CompletedProcess[str]:
    """Read the database at ``path`` in a child process with 1 GiB of address space and a minute: a reader that
    fills memory or hangs fails this test instead of the machine."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from core.errors import MetamathError\n"
        "from core.metamath import read_database\n"
        "try:\n    read_database(sys.argv[1])\nexcept MetamathError as error:\n"
        "    sys.exit(f'MetamathError: {error}')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_including_dev_zero_is_an_error_naming_the_include(tmp_path: Path) -> None:
    main = write(tmp_path, HEADER + "\n$[ /dev/zero $]\n")
    done = read_elsewhere(main)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"MetamathError: {main}:5: included file '/dev/zero' is not a regular file (a "
        "directory, FIFO or device); include only regular .mm files"
    )


def test_including_a_fifo_or_a_folder_is_an_error_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.mm")
    (tmp_path / "folder.mm").mkdir()
    for name in ("pipe.mm", "folder.mm"):
        done = read_elsewhere(write(tmp_path, HEADER + f"$[ {name} $]\n"))
        assert done.returncode == 1 and f"included file '{name}' is not a regular file" in done.stderr
    done = read_elsewhere(tmp_path / "pipe.mm")  # the top-level file too
    assert done.returncode == 1 and "is a FIFO, not a regular file" in done.stderr


# --- proof trees of any depth -----------------------------------------------------------------------------


def test_a_deep_proof_tree_goes_to_json_and_back() -> None:
    from core.metamath.prooftree import ProofTree

    tree = ProofTree("a1i.1", {}, (), ("|-", "ph"))
    for _ in range(DEEP):
        tree = ProofTree("a1i", {"ph": ("ph",), "ps": ("ps",)}, (tree,), ("|-", "ph"))
    record = tree.to_json()
    again = ProofTree.from_json(record)
    assert again.depth == DEEP + 1  # (comparing the nested dicts with == would itself recurse)
    shape = lambda t: [(n.label, dict(n.substitution), n.statement, len(n.children)) for n in t.nodes()]  # noqa: E731
    assert shape(again) == shape(tree)


def test_a_deep_malformed_proof_tree_record_is_a_metamath_error() -> None:
    from core.metamath.prooftree import ProofTree

    record: dict = {"label": "a1i.1", "substitution": {}, "statement": "|- ph", "children": []}
    leaf = record
    for _ in range(DEEP):
        record = {"label": "a1i", "substitution": {"ph": "ph"}, "statement": "|- ph", "children": [record]}
    del leaf["label"]
    with pytest.raises(MetamathError, match="malformed proof tree record: KeyError"):
        ProofTree.from_json(record)
