"""benchmarks/provers.py at a tiny scale: one table, every row filled, the merged prover never behind."""

from __future__ import annotations

import re

import pytest

from core.metamath.embedded import embedded_database_path
from tests.benchmarks.scripts import load_benchmark

ROW = re.compile(
    r"(?P<set>.+?)\s{2,}(?P<budget>\d+ expans|[\d.]+ s)\s+(?P<label>\S.*?)\s+"
    r"(?P<proved>\d+)/(?P<total>\d+)"
)


def rows_of(lines: list[str]) -> list[dict[str, str]]:
    """The table's rows, each with ``prover``: the ``--provers`` name of its label."""
    names = {label: name for name, label in load_script().LABELS.items()}
    return [{**m.groupdict(), "prover": names[m["label"]]} for line in lines if (m := ROW.match(line))]


def load_script():
    return load_benchmark("provers")


def run_table(capsys, provers: str, *extra: str) -> list[str]:
    assert (
        load_script().main(
            [
                "--database",
                str(embedded_database_path()),
                "--theorems",
                "5",
                "--tautologies",
                "3",
                "--expansions",
                "8",
                "--seconds",
                "0.3",
                "--threads",
                "1",
                "--provers",
                provers,
                *extra,
            ]
        )
        == 0
    )
    return capsys.readouterr().out.splitlines()


def test_the_table_has_every_prover_on_both_sets_at_both_budgets(capsys):
    provers = [
        "baseline",
        "baseline-critic",
        "merged",
        "ranked",
        "model",
        "htps-baseline",
        "htps-baseline-critic",
        "htps",
        "htps-ranked",
        "htps-critic",
    ]
    lines = run_table(capsys, ",".join(provers), "--critic-theorems", "3", "--critic-steps", "5")
    rows = rows_of(lines)
    assert len(rows) == 2 * 2 * len(provers)  # two sets, two budgets, every prover
    assert {r["prover"] for r in rows} == set(provers)
    assert any(line.startswith("critic: ") for line in lines)
    assert {r["total"] for r in rows if r["set"].startswith("tautologies")} == {"3"}
    counts = {(r["set"], r["budget"], r["prover"]): int(r["proved"]) for r in rows}
    for (name, budget, prover), proved in counts.items():
        if prover == "merged" and "expans" in budget:
            assert proved >= counts[(name, budget, "baseline")]


def test_without_a_critic_its_rows_say_so(capsys):
    lines = run_table(capsys, "htps-baseline,htps-baseline-critic", "--critic-theorems", "0", "--tautologies", "0")
    assert [row["prover"] for row in rows_of(lines)] == ["htps-baseline"] * 2
    assert sum("(no critic" in line for line in lines) == 2  # one set, two budgets


def test_the_critic_rows_are_named_as_in_the_issue_and_say_where_their_critic_comes_from(capsys):
    lines = run_table(capsys, "htps,htps-critic", "--critic-theorems", "3", "--critic-steps", "3", "--tautologies", "0")
    assert [row["label"] for row in rows_of(lines)] == ["HTPS", "HTPS with critic"] * 2
    assert any(line.startswith("critic: trained here") for line in lines)


def test_an_unknown_prover_is_refused():
    with pytest.raises(SystemExit) as exit_:
        load_script().parse_args(["--provers", "baseline,magic"])
    assert exit_.value.code == 2


def test_a_prover_named_at_a_budget_runs_there_alone_and_the_comparison_names_each_learned_prover(capsys):
    lines = run_table(
        capsys, "baseline@16,merged@4,htps@4", "--expansions", "4,16", "--seconds", "0", "--tautologies", "0"
    )
    assert [(r["budget"], r["prover"]) for r in rows_of(lines)] == [
        ("4 expans", "merged"),
        ("4 expans", "htps"),
        ("16 expans", "baseline"),
    ]
    head = lines.index("learned provers at 4 expansions against the baseline at 16:")
    compared = lines[head + 1 :]
    assert len(compared) == 2 and "best-first learned" in compared[0] and "HTPS" in compared[1]
    counts = {r["prover"]: (r["proved"], r["total"]) for r in rows_of(lines)}
    assert f"baseline {counts['baseline'][0]}/{counts['baseline'][1]} in" in compared[0]
    assert all(line.endswith(("beats it", "does not beat it")) for line in compared)


def test_a_learned_prover_beats_the_baseline_only_with_more_proved_in_no_more_time():
    script = load_script()
    result = script.SearchResult  # the rows only read proved and time_s

    def row(prover: str, budget: str, proved: int, seconds: float):
        results = tuple(
            result(label=f"t{i}", prover=prover, proved=i < proved, expansions=1, time_s=seconds) for i in range(10)
        )
        return script.Row("set", budget, prover, results, 1.0)

    base = row("baseline", "20 expans", 5, 2.0)
    lines = script.comparison(
        [base, row("merged", "2 expans", 6, 1.0), row("htps", "2 expans", 6, 3.0), row("model", "2 expans", 5, 1.0)],
        [2, 20],
    )
    assert [line.rsplit(": ", 1)[1] for line in lines[1:]] == ["beats it", "does not beat it", "does not beat it"]
    assert script.comparison([base], [20]) == []


def test_a_budget_given_to_a_prover_must_be_one_of_the_table():
    with pytest.raises(SystemExit) as exit_:
        load_script().parse_args(["--expansions", "200,2000", "--provers", "baseline@300"])
    assert exit_.value.code == 2
    args = load_script().parse_args(["--expansions", "200,2000", "--seconds", "0", "--provers", "baseline@2000"])
    assert args.expansions == [200, 2000] and args.seconds == [] and args.entries[0].budget == "2000 expans"


def test_skip_shares_a_split_among_runs_without_overlap():
    script = load_script()
    db = script.read_database(str(embedded_database_path()))
    whole = [t.label for t in script.split_benchmark(db, "test", 6).theorems]
    halves = [t.label for skip in (0, 3) for t in script.split_benchmark(db, "test", 3, skip).theorems]
    assert len(whole) == 6 and halves == whole


def test_a_negative_skip_is_refused():
    with pytest.raises(SystemExit) as exit_:
        load_script().parse_args(["--skip", "-1"])
    assert exit_.value.code == 2


def test_the_model_free_rows_search_with_their_own_k_and_the_learned_rows_with_candidates(monkeypatch, capsys):
    script = load_script()
    asked: list[tuple[bool, int, int | None]] = []
    real = script.prove_theorems

    def spy(db, theorems, policy, settings, **options):  # type: ignore[no-untyped-def]
        htps = options.get("htps")
        asked.append((isinstance(policy, script.BaselinePolicy), settings.candidates, htps and htps.num_tactics))
        return real(db, theorems, policy, settings, **options)

    monkeypatch.setattr(script, "prove_theorems", spy)
    common = ["--database", str(embedded_database_path()), "--theorems", "2", "--tautologies", "0", "--seconds", "0"]
    script.main([*common, "--expansions", "4", "--threads", "1", "--provers", "baseline,merged,htps-baseline,htps",
                 "--candidates", "3", "--baseline-candidates", "5"])  # fmt: skip
    assert asked == [(True, 5, 5), (False, 3, 3), (True, 5, 5), (False, 3, 3)]  # HTPS: its tactic count
    assert "(model-free rows: k=5)" in capsys.readouterr().out
    asked.clear()
    script.main([*common, "--expansions", "4", "--provers", "baseline,merged", "--candidates", "3"])
    assert asked == [(True, 3, 3), (False, 3, 3)]  # without it, every row has --candidates
    with pytest.raises(SystemExit):
        script.parse_args(["--baseline-candidates", "0"])


def test_truth_table_reaches_every_row_s_search_settings(monkeypatch):
    script = load_script()
    asked: list[tuple[bool, bool]] = []
    real = script.prove_theorems

    def spy(db, theorems, policy, settings, **options):  # type: ignore[no-untyped-def]
        asked.append((settings.truth_table, settings.fill_lemmas))
        return real(db, theorems, policy, settings, **options)

    monkeypatch.setattr(script, "prove_theorems", spy)
    common = ["--database", str(embedded_database_path()), "--theorems", "1", "--tautologies", "0", "--seconds", "0"]
    script.main([*common, "--expansions", "2", "--threads", "1", "--provers", "baseline,merged", "--candidates", "2"])
    script.main([*common, "--expansions", "2", "--provers", "baseline,merged", "--candidates", "2", "--truth-table"])
    assert asked == [(False, False), (False, False), (True, False), (True, False)]
