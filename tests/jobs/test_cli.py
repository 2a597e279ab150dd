"""jobs/_cli.py: each job's parser is built from its signature, flags are checked and converted by
annotation (configs.schema.parse_value) before any work, and errors map to exit statuses in one place."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal

import pytest

from core.errors import (
    EXIT_FAILURE,
    EXIT_KEYBOARD_INTERRUPT,
    EXIT_USAGE,
    CheckpointError,
    ConfigError,
    CorruptShardError,
    ExperimentConfigMismatch,
    MetamathError,
    ModelError,
    StorageError,
    UsageError,
    error_line,
    exit_status,
    run_guarded,
)
from jobs import evaluator, export, generator_actor, generator_trainer, prove, prover_actor, prover_trainer, status
from jobs._cli import build_parser, main, parse_command_line, split_docstring

calls: list[dict] = []


def job(
    database: str,
    *,
    only: list[str] | None = None,
    expansions: int = 64,
    timeout_s: float = 1.0,
    prover: Literal["backward", "forward-greedy"] = "backward",
    dry_run: bool = False,
    out: str | None = None,
) -> int:
    """A job for the tests.

    Args:
        database: the file to read.
        only: labels to keep,
            comma-separated.
        expansions: the budget.
    """
    calls.append(
        dict(
            database=database,
            only=only,
            expansions=expansions,
            timeout_s=timeout_s,
            prover=prover,
            dry_run=dry_run,
            out=out,
        )
    )
    return 0


def test_values_are_converted_by_annotation_not_by_look() -> None:
    flags, level = parse_command_line(
        job,
        [
            "12",
            "--only",
            "12",
            "--expansions=007",
            "--timeout-s",
            "2",
            "--prover",
            "forward-greedy",
            "--dry-run",
            "--out",
            "it's",
            "--log-level",
            "debug",
        ],
    )
    assert flags == {
        "database": "12",
        "only": ["12"],
        "expansions": 7,
        "timeout_s": 2.0,
        "prover": "forward-greedy",
        "dry_run": True,
        "out": "it's",
    }
    assert level == "DEBUG"
    assert parse_command_line(job, ["x", "--only=a,b,", "--no-dry-run"])[0] == {
        "database": "x",
        "only": ["a", "b"],
        "dry_run": False,
    }
    assert parse_command_line(job, ["x", "--dry-run", "false"])[0]["dry_run"] is False
    assert parse_command_line(job, ["x", "--dry-run=yes"])[0]["dry_run"] is True
    assert parse_command_line(job, ["--database", "x"])[0] == {"database": "x"}
    assert parse_command_line(job, ["x", "--timeout_s=3"])[0]["timeout_s"] == 3.0  # _ reads as -
    assert parse_command_line(job, ["x", "--out", "none"])[0]["out"] is None  # as --set reads an optional
    assert parse_command_line(job, ["-5"])[0]["database"] == "-5"  # a negative number is an argument


@pytest.mark.parametrize(
    "argv, message",
    [
        (["x", "--bogus", "1"], "unknown flag --bogus"),
        (["x", "--expansion", "1"], "unknown flag --expansion"),  # no abbreviations
        (["x", "--expansions", "1e3"], "--expansions takes an integer, not '1e3'"),
        (["x", "--expansions", "2.0"], "takes an integer"),
        (["x", "--timeout-s", "soon"], "--timeout-s takes a number"),
        (["x", "--timeout-s", "nan"], "--timeout-s must be a finite number"),
        (["x", "--prover", "sideways"], "--prover takes one of backward, forward-greedy, not 'sideways'"),
        (["x", "--only", "a,b", "--only", "c"], "--only is given more than once"),
        (["x", "--dry-run=maybe"], "--dry-run takes true or false"),
        (["x", "--dry-run", "--no-dry-run"], "--dry-run is given more than once"),
        (["x", "--expansions"], "--expansions: expected one argument"),
        (["x", "--expansions", "1", "--expansions", "2"], "given more than once"),
        (["x", "y"], "unexpected argument(s) 'y'"),
        ([], "missing required argument(s): DATABASE"),
        (["x", "-e", "3"], "unknown flag -e"),
        (["x", "--log-level", "loud"], "--log-level must be one of"),
        (["x", "--database", "y"], "given both"),
    ],
)
def test_bad_command_lines_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_command_line(job, argv)
    assert message in str(error.value)


def test_main_runs_the_job_with_checked_values(capsys) -> None:
    calls.clear()
    assert main(job, ["db.mm", "--only", "12", "--out", "it's here.mm"]) == 0
    assert calls == [
        dict(
            database="db.mm",
            only=["12"],
            expansions=64,
            timeout_s=1.0,
            prover="backward",
            dry_run=False,
            out="it's here.mm",
        )
    ]
    assert capsys.readouterr().out == ""  # the return value is the status, not printed


def test_main_exit_statuses(capsys) -> None:
    calls.clear()
    assert main(job, ["db.mm", "--expansions", "1e3"], prog="python -m jobs.x") == 2 and not calls
    assert "error: --expansions takes an integer, not '1e3' (see python -m jobs.x --help)" in capsys.readouterr().err

    def failing(kind: str) -> int:
        raise {
            "usage": UsageError("bad usage"),
            "config": ConfigError("bad field"),
            "data": MetamathError("bad proof", label="x"),
            "bug": ZeroDivisionError("division by zero"),
        }[kind]

    assert main(failing, ["usage"]) == 2
    assert main(failing, ["config"]) == 2
    assert main(failing, ["data"]) == 1
    assert main(failing, ["bug"]) == 1
    err = capsys.readouterr().err
    assert "bad usage" in err and "bad field" in err and "label x: bad proof" in err and "Traceback" not in err
    assert "error: unexpected ZeroDivisionError: division by zero" in err
    assert main(lambda: 3, []) == 3
    assert main(lambda: None, []) == 0
    assert main(lambda: "finished", []) == 0  # a role's endings
    assert main(lambda: "interrupted", []) == 3


def test_help_shows_the_real_flags_with_types_defaults_and_help(capsys) -> None:
    assert main(job, ["--help"], prog="python -m jobs.x") == 0
    shown = " ".join(capsys.readouterr().out.split(" "))
    flat = " ".join(shown.split())  # argparse wraps to the terminal's width
    assert shown.startswith("usage: python -m jobs.x ")
    assert "A job for the tests." in shown and "Args:" not in shown
    assert "--expansions EXPANSIONS the budget (integer; default: 64)" in flat
    assert "--only ONLY,... labels to keep, comma-separated (comma-separated texts, or none; default: none)" in flat
    assert "--prover {backward,forward-greedy}" in shown and "--no-dry-run" in shown
    assert "Optional[" not in shown


def test_the_docstring_args_section_gives_each_flags_help() -> None:
    description, helps = split_docstring("Do it.\n\nArgs:\n    a: first\n        and more.\n    b_c: second.\n\nAfter.")
    assert description == "Do it.\n\nAfter."
    assert helps == {"a": "first and more.", "b_c": "second."}
    assert split_docstring("Nothing here.") == ("Nothing here.", {})


def test_log_level_configures_logging() -> None:
    main(job, ["x", "--log-level", "WARNING"])
    assert logging.getLogger().level == logging.WARNING
    main(job, ["x"])
    assert logging.getLogger().level == logging.INFO


# --- every job's command line -----------------------------------------------------------------------

JOBS: dict[str, Callable[..., Any]] = {
    "jobs.evaluator": evaluator.main,
    "jobs.generator_actor": generator_actor.main,
    "jobs.generator_trainer": generator_trainer.main,
    "jobs.prover_actor": prover_actor.main,
    "jobs.prover_trainer": prover_trainer.main,
    "jobs.prove": prove.prove,
    "jobs.export": export.export,
    "jobs.status": status.cli,
}


def _real_flags(function: Callable[..., Any]) -> set[str]:
    import inspect

    return {"--" + name.replace("_", "-") for name in inspect.signature(function).parameters}


@pytest.mark.parametrize("module", sorted(JOBS))
def test_every_job_help_lists_its_real_flags_and_no_other(module: str, capsys) -> None:
    function = JOBS[module]
    assert main(function, ["--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: python -m {module} ")
    usage = shown.split("\n\n")[0].removeprefix(f"usage: python -m {module}")
    offered = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", usage))
    assert _real_flags(function) <= offered
    for flag in offered - {"-h", "--help", "--log-level"}:
        assert flag in _real_flags(function) or flag.replace("--no-", "--") in _real_flags(function), flag
        with pytest.raises((SystemExit, UsageError)) as ended:  # help exits, or the flag wants a value
            parse_command_line(function, [flag, "--help"])
        assert "unknown" not in str(ended.value)  # every flag offered is known


@pytest.mark.parametrize("module", sorted(JOBS))
def test_every_job_refuses_an_unknown_flag_before_any_work(module: str, tmp_path, capsys) -> None:
    missing = str(tmp_path / "no-such-experiment")
    assert main(JOBS[module], [missing, "--bogus-flag", "1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown flag --bogus-flag" in err and "no-such-experiment" not in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "module, flag",
    [
        ("jobs.evaluator", "--rank"),
        ("jobs.generator_actor", "--max-records"),
        ("jobs.generator_trainer", "--max-steps"),
        ("jobs.prover_actor", "--minutes"),
        ("jobs.prover_trainer", "--rank"),
        ("jobs.prove", "--expansions"),
        ("jobs.export", "--min-size"),
        ("jobs.status", "--json"),
    ],
)
def test_every_job_refuses_a_wrongly_typed_value_naming_the_flag(module: str, flag: str, tmp_path, capsys) -> None:
    argv = [str(tmp_path / "absent"), f"{flag}=many"] + (
        ["--out", str(tmp_path / "o.mm")] if module == "jobs.export" else []
    )
    assert main(JOBS[module], argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {flag} takes" in err and "'many'" in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == []


# --- one mapping from errors to exit statuses -------------------------------------------------------


@pytest.mark.parametrize(
    "error, expected",
    [
        (UsageError("u"), EXIT_USAGE),
        (ConfigError("c"), EXIT_USAGE),
        (ExperimentConfigMismatch("m"), EXIT_USAGE),
        (FileNotFoundError(2, "No such file or directory", "x.mm"), EXIT_USAGE),
        (IsADirectoryError("d"), EXIT_USAGE),
        (MetamathError("bad"), EXIT_FAILURE),
        (StorageError("s"), EXIT_FAILURE),
        (CorruptShardError("s"), EXIT_FAILURE),
        (CheckpointError("k"), EXIT_FAILURE),
        (ModelError("m"), EXIT_FAILURE),
        (PermissionError("p"), EXIT_FAILURE),
        (KeyboardInterrupt(), EXIT_KEYBOARD_INTERRUPT),
        (RuntimeError("bug"), EXIT_FAILURE),
    ],
)
def test_each_error_class_has_one_exit_status(error: BaseException, expected: int) -> None:
    assert exit_status(error) == expected


def test_error_lines_are_one_line_and_say_what_happened() -> None:
    assert error_line(MetamathError("bad proof", file="a.mm", line=3)) == "error: a.mm:3: bad proof"
    missing = FileNotFoundError(2, "No such file or directory", "x.mm")
    assert error_line(missing) == "error: x.mm: No such file or directory"
    unexpected = error_line(ValueError("odd"))
    assert unexpected.startswith("error: unexpected ValueError: odd") and "report it" in unexpected
    assert "\n" not in unexpected


def test_run_guarded_returns_the_status_of_the_result_or_the_error(capsys) -> None:
    assert run_guarded(lambda: None) == 0 and run_guarded(lambda: 4) == 4
    assert run_guarded(lambda: (_ for _ in ()).throw(ConfigError("field x: bad"))) == EXIT_USAGE
    assert run_guarded(lambda: (_ for _ in ()).throw(KeyError("k"))) == EXIT_FAILURE  # the unexpected twin
    err = capsys.readouterr().err
    assert "error: field x: bad" in err and "error: unexpected KeyError: 'k'" in err and "Traceback" not in err


def test_build_parser_names_the_program() -> None:
    assert build_parser(job, "python -m jobs.x").prog == "python -m jobs.x"


# --- the other commands: argparse too, strict, the same statuses -------------------------------------

PROJECT_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
REQUIRED = {
    "core.models.supervised": ["x.mm", "--out", "x.safetensors"],
    "learning": ["--out", "x.json"],
}  # what a command needs besides flags
BENCHMARKS = sorted(p.stem for p in (PROJECT_ROOT / "benchmarks").glob("*.py"))


def _other_command(name: str) -> Callable[[list[str]], int | None]:
    """The ``main(argv)`` of a non-job command; a benchmark reads ``sys.argv``, set here."""
    if name == "jobs.launch":
        from jobs.launch import main as launch_main

        return launch_main
    if name == "core.metamath":
        from core.metamath.__main__ import main as kernel_main

        return lambda argv: kernel_main(["verify", *argv])
    if name == "core.models.supervised":
        from core.models.supervised import main as supervised_main

        return supervised_main
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", PROJECT_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)

    def run(argv: list[str]) -> int | None:
        saved, sys.argv = sys.argv, [f"benchmarks/{name}.py", *argv]
        try:
            return module.main()
        finally:
            sys.argv = saved

    return run


def _status(command: Callable[[list[str]], int | None], argv: list[str]) -> int:
    try:
        return int(command(argv) or 0)
    except SystemExit as exit_:  # argparse: 0 after --help, 2 for a usage error
        return int(exit_.code or 0)


@pytest.mark.parametrize("name", ["jobs.launch", "core.metamath", "core.models.supervised", *BENCHMARKS])
def test_every_other_command_shows_help_and_refuses_unknown_and_abbreviated_flags(name: str, capsys) -> None:
    command = _other_command(name)
    assert _status(command, ["--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: ") and "--help" in shown
    flags = [f for f in re.findall(r"(?<![\w-])(--[a-z][\w-]+)", shown) if f != "--help"]
    base = REQUIRED.get(name, ["x.mm"])
    assert _status(command, [*base, "--no-such-flag"]) == EXIT_USAGE
    assert "--no-such-flag" in capsys.readouterr().err
    if flags:  # an abbreviation of a real flag is not guessed
        assert _status(command, [*base, flags[0][:-1], "1"]) == EXIT_USAGE
        assert flags[0][:-1] in capsys.readouterr().err
