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
ROW = re.compile(r"(?P<set>.+?)\s{2,}(?P<budget>\d+ expans|[\d.]+ s)\s+(?P<prover>\w+)\s+"
                 r"(?P<proved>\d+)/(?P<total>\d+)")


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_provers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_table_has_every_prover_on_both_sets_at_both_budgets(capsys):
    before = torch.get_num_threads()
    try:
        assert load_script().main(["--database", str(embedded_database_path()), "--theorems", "5", "--tautologies", "3",
                                   "--expansions", "8", "--seconds", "0.3", "--threads", "1",
                                   "--provers", "baseline,merged,model,htps"]) == 0
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().out.splitlines()
    rows = [m.groupdict() for line in lines if (m := ROW.match(line))]
    assert len(rows) == 2 * 2 * 3  # two sets, two budgets, three implemented provers
    assert sum("(not implemented yet)" in line for line in lines) == 4
    assert {r["total"] for r in rows if r["set"].startswith("tautologies")} == {"3"}
    counts = {(r["set"], r["budget"], r["prover"]): int(r["proved"]) for r in rows}
    for (name, budget, prover), proved in counts.items():
        if prover == "merged" and "expans" in budget:
            assert proved >= counts[(name, budget, "baseline")]


def test_an_unknown_prover_is_refused():
    with pytest.raises(SystemExit) as exit_:
        load_script().parse_args(["--provers", "baseline,magic"])
    assert exit_.value.code == 2
