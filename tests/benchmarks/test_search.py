"""benchmarks/search.py at a tiny scale: every search and policy measured alone and batched, with the policy's
cost per expansion and the verdict on whether batching makes it grow."""

from __future__ import annotations

import re

import pytest

from core.metamath.embedded import embedded_database_path
from tests.benchmarks.scripts import load_benchmark


def load_script():
    return load_benchmark("search")


def test_every_search_and_policy_is_measured_alone_and_batched(capsys):
    script = load_script()
    argv = ["--database", str(embedded_database_path()), "--theorems", "4", "--expansions", "4", "--batch", "4"]
    argv += ["--prover", "backward,htps", "--policy", "baseline,merged", "--model-size", "tiny", "--threads", "1"]
    assert script.main(argv) == 0  # on one thread (conftest.py), restored afterwards
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if re.match(r"(backward|htps)\s+(baseline|merged)\s+cpu\s", line)]
    assert sorted((r[0], r[1], r[3]) for r in rows) == sorted(
        (p, q, m) for p in ("backward", "htps") for q in ("baseline", "merged") for m in ("alone", "batched")
    )
    verdicts = [line for line in lines if "policy cost per expansion" in line]
    assert len(verdicts) == 4 and all(re.search(r"\((does not grow|GROWS) with the batch\)", v) for v in verdicts)


def test_an_unknown_search_or_policy_is_refused():
    with pytest.raises(SystemExit) as exit_:
        load_script().parse_args(["--prover", "backward,sideways"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        load_script().parse_args(["--policy", "oracle"])
