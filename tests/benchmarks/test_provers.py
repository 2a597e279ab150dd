"""benchmarks/provers.py at a tiny scale: one table, every row filled, the merged prover never behind."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from core.metamath.embedded import embedded_database_path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "provers.py"
ROW = re.compile(
    r"(?P<set>.+?)\s{2,}(?P<budget>\d+ expans|[\d.]+ s)\s+(?P<label>\S.*?)\s+"
    r"(?P<proved>\d+)/(?P<total>\d+)"
)


def rows_of(lines: list[str]) -> list[dict[str, str]]:
    """The table's rows, each with ``prover``: the ``--provers`` name of its label."""
    names = {label: name for name, label in load_script().LABELS.items()}
    return [{**m.groupdict(), "prover": names[m["label"]]} for line in lines if (m := ROW.match(line))]


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_provers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run_table(capsys, provers: str, *extra: str) -> list[str]:
    before = torch.get_num_threads()
    try:
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
    finally:
        torch.set_num_threads(before)
    return capsys.readouterr().out.splitlines()


def test_the_table_has_every_prover_on_both_sets_at_both_budgets(capsys):
    provers = [
        "baseline",
        "baseline-critic",
        "merged",
        "model",
        "htps-baseline",
        "htps-baseline-critic",
        "htps",
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
