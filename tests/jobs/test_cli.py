"""jobs/_cli.py: flags are checked against the job's signature and converted by annotation, before any work."""

from __future__ import annotations

import logging
from typing import Literal

import pytest

from core.errors import ConfigError, MetamathError, UsageError
from jobs._cli import convert, main, parse_command_line

calls: list[dict] = []


def job(database: str, *, only: list[str] | None = None, expansions: int = 64, timeout_s: float = 1.0,
        prover: Literal["backward", "forward-greedy"] = "backward", dry_run: bool = False,
        out: str | None = None) -> int:
    """A job for the tests."""
    calls.append(dict(database=database, only=only, expansions=expansions, timeout_s=timeout_s, prover=prover,
                      dry_run=dry_run, out=out))
    return 0


def test_values_are_converted_by_annotation_not_by_look() -> None:
    positional, flags, level = parse_command_line(job, [
        "12", "--only", "12", "--expansions=007", "--timeout-s", "2", "--prover", "forward-greedy", "--dry-run",
        "--out", "None", "--log-level", "debug"])
    assert positional == ["12"]
    assert flags == {"only": ["12"], "expansions": 7, "timeout_s": 2.0, "prover": "forward-greedy",
                     "dry_run": True, "out": "None"}
    assert level == "DEBUG"
    assert parse_command_line(job, ["x", "--only=a,b,", "--nodry-run"])[1] == {"only": ["a", "b"], "dry_run": False}
    assert parse_command_line(job, ["x", "--dry-run", "false"])[1] == {"dry_run": False}
    assert parse_command_line(job, ["--database", "x"])[1] == {"database": "x"}


@pytest.mark.parametrize("argv, message", [
    (["x", "--bogus", "1"], "unknown flag --bogus"),
    (["x", "--expansions", "1e3"], "--expansions expects an integer, got '1e3'"),
    (["x", "--expansions", "2.0"], "expects an integer"),
    (["x", "--timeout-s", "soon"], "--timeout-s expects a number"),
    (["x", "--timeout-s", "nan"], "finite"),
    (["x", "--prover", "sideways"], "--prover must be one of backward, forward-greedy"),
    (["x", "--dry-run=maybe"], "expects true or false"),
    (["x", "--expansions"], "--expansions needs a value"),
    (["x", "--expansions", "1", "--expansions", "2"], "given twice"),
    (["x", "y"], "unexpected argument"),
    ([], "missing required argument(s): DATABASE"),
    (["x", "-e", "3"], "unknown option '-e'"),
    (["x", "--log-level", "loud"], "--log-level must be one of"),
    (["x", "--database", "y"], "given both"),
])
def test_bad_command_lines_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_command_line(job, argv)
    assert message in str(error.value)


def test_main_runs_the_job_through_fire_with_checked_values(capsys) -> None:
    calls.clear()
    assert main(job, ["db.mm", "--only", "12", "--out", "it's here.mm"]) == 0
    assert calls == [dict(database="db.mm", only=["12"], expansions=64, timeout_s=1.0, prover="backward",
                          dry_run=False, out="it's here.mm")]
    assert capsys.readouterr().out == ""  # fire does not print the return value


def test_main_exit_statuses(capsys) -> None:
    calls.clear()
    assert main(job, ["db.mm", "--expansions", "1e3"]) == 2 and not calls
    assert "error: --expansions expects an integer" in capsys.readouterr().err

    def failing(kind: str) -> int:
        raise {"usage": UsageError("bad usage"), "config": ConfigError("bad field"),
               "data": MetamathError("bad proof", label="x")}[kind]

    assert main(failing, ["usage"]) == 2
    assert main(failing, ["config"]) == 2
    assert main(failing, ["data"]) == 1
    err = capsys.readouterr().err
    assert "bad usage" in err and "bad field" in err and "label x: bad proof" in err and "Traceback" not in err
    assert main(lambda: 3, []) == 3
    assert main(lambda: None, []) == 0
    assert main(lambda: "finished", []) == 0  # a role's endings
    assert main(lambda: "interrupted", []) == 3


def test_help_is_shown_by_fire(capsys) -> None:
    assert main(job, ["--help"]) == 0
    shown = capsys.readouterr().err  # fire writes its help to stderr
    assert "A job for the tests." in shown and "--expansions" in shown


def test_log_level_configures_logging() -> None:
    main(job, ["x", "--log-level", "WARNING"])
    assert logging.getLogger().level == logging.WARNING
    main(job, ["x"])
    assert logging.getLogger().level == logging.INFO


def test_convert_sequences_and_optionals() -> None:
    assert convert("1,2", list[int], "--n") == [1, 2]
    assert convert("a", tuple[str, ...], "--t") == ("a",)
    assert convert("5", int | None, "--k") == 5
    with pytest.raises(UsageError, match="--n expects an integer"):
        convert("1,x", list[int], "--n")
