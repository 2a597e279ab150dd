"""benchmarks/critic_bound.py: the table runs, with the rows and the theorems its flags choose (the critic itself:
tests/search/test_truth_table.py)."""

from __future__ import annotations

import re

import pytest

from core.metamath.__main__ import main as metamath_main
from core.metamath.embedded import embedded_database_path
from tests.benchmarks.scripts import load_benchmark

ROW = re.compile(
    r"(?P<prover>baseline|merged)\s+(?P<critic>none|truth table)\s+(?P<proved>\d+)/(?P<total>\d+)\s+\S+\s+(?P<refuted>\S+)"
)


def test_the_table_has_each_prover_without_and_with_the_critic_and_the_critic_judged_goals(capsys):
    script = load_benchmark("critic_bound")
    argv = ["--database", str(embedded_database_path()), "--split", "test", "--theorems", "3", "--expansions", "8"]
    assert script.main([*argv, "--candidates", "8", "--threads", "1", "--provers", "baseline"]) == 0
    rows = [m.groupdict() for line in capsys.readouterr().out.splitlines() if (m := ROW.match(line))]
    assert [(r["prover"], r["critic"]) for r in rows] == [("baseline", "none"), ("baseline", "truth table")]
    assert all(r["total"] == "3" for r in rows)
    assert rows[0]["refuted"] == "-" and rows[1]["refuted"].endswith("%")


@pytest.mark.parametrize(("critic", "rows"), [("none", ["none"]), ("truth-table", ["truth table"])])
def test_the_critic_flag_chooses_the_rows(critic, rows, capsys):
    script = load_benchmark("critic_bound")
    argv = ["--database", str(embedded_database_path()), "--split", "test", "--theorems", "2", "--expansions", "4"]
    assert script.main([*argv, "--candidates", "4", "--threads", "1", "--provers", "baseline", "--critic", critic]) == 0
    found = [m["critic"] for line in capsys.readouterr().out.splitlines() if (m := ROW.match(line))]
    assert found == rows


def test_the_incomplete_split_searches_the_database_s_question_mark_theorems(tmp_path, capsys):
    taut = tmp_path / "taut.mm"
    argv = ["tautologies", "--database", str(embedded_database_path()), "--out", str(taut), "--count", "3"]
    assert metamath_main([*argv, "--connectives", "imp"]) == 0
    script = load_benchmark("critic_bound")
    argv = [
        "--database",
        str(taut),
        "--split",
        "incomplete",
        "--expansions",
        "4",
        "--candidates",
        "4",
        "--threads",
        "1",
    ]
    assert script.main([*argv, "--provers", "baseline", "--critic", "none"]) == 0
    [row] = [m for line in capsys.readouterr().out.splitlines() if (m := ROW.match(line))]
    assert row["total"] == "3"  # the three tautologies, not a split of the database's proved theorems


def test_fill_lemmas_reaches_the_search_settings(monkeypatch, capsys):
    script = load_benchmark("critic_bound")
    seen = []
    monkeypatch.setattr(
        script, "run", lambda db, theorems, policy, settings, *rest: seen.append(settings) or (0, 0.0, 0.0)
    )
    argv = ["--database", str(embedded_database_path()), "--theorems", "1", "--provers", "baseline", "--critic", "none"]
    assert script.main(argv) == 0 and script.main([*argv, "--fill-lemmas"]) == 0
    assert [s.fill_lemmas for s in seen] == [False, True]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--provers", "merged"], "needs --checkpoint"),
        (["--provers", "forward"], "unknown forward"),
        (["--provers", "baseline", "--false-value", "0"], "--false-value must be in (0, 1]"),
        (["--provers", "baseline", "--expansions", "0"], "must be >= 1"),
        (["--provers", "baseline", "--critic", "perfect"], "invalid choice: 'perfect'"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark("critic_bound").parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
