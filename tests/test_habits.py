"""Habits checked by the suite, so CI (``./test.sh``) enforces them: ruff's lint and format check, mypy on
core/ jobs/ configs/ (configured in pyproject.toml), and a reason next to every ``# type: ignore``.

The tools run from the interpreter running the tests (the project's .venv under ./test.sh, where the
``test`` extra pins them); a failure shows the tool's own output.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TYPED = ("core", "jobs", "configs")
"""What mypy checks (pyproject.toml's [tool.mypy] files) and where every type: ignore must say why."""
LINTED = (*TYPED, "tests", "scripts", "benchmarks")

_TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)")
_REASON = re.compile(r"\s*#\s*(?!noqa\b|fmt:|pragma\b|type:)\S.*")
"""A further comment with words in it: not only another tool's pragma."""


def unexplained_type_ignores(source: str, name: str) -> list[str]:
    """``NAME:LINE: what is missing`` for each ``# type: ignore`` comment in ``source`` that names no error
    code, or gives no reason: a comment after it on its line, or a comment line just above it."""
    lines = source.splitlines()
    problems = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        match = _TYPE_IGNORE.search(token.string) if token.type == tokenize.COMMENT else None
        if match is None:
            continue
        row = token.start[0]
        if match["codes"] is None or not match["codes"].strip("[] "):
            problems.append(f"{name}:{row}: no error code (write # type: ignore[code])")
        above = lines[row - 2].strip() if row >= 2 else ""
        if not _REASON.fullmatch(match["rest"]) and not above.startswith("#"):
            problems.append(f"{name}:{row}: no reason (add `  # why` after it, or a comment line above it)")
    return problems


def _run_tool(module: str, *arguments: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.fail(
            f"{module} is not installed for {sys.executable}: install the test extra "
            "(pip install -e '.[test]', which ./test.sh does)"
        )
    return subprocess.run(
        [sys.executable, "-m", module, *arguments], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _assert_clean(run: subprocess.CompletedProcess[str], fix: str) -> None:
    if run.returncode != 0:
        pytest.fail(f"{' '.join(run.args[2:])} failed ({fix}):\n{run.stdout}{run.stderr}", pytrace=False)


# --- the tree passes the tools ----------------------------------------------------------------------


def test_ruff_finds_no_lint() -> None:
    _assert_clean(
        _run_tool("ruff", "check", "--output-format", "concise", *LINTED),
        "fix them, or run `ruff check --fix` on your files",
    )


def test_ruff_format_finds_nothing_to_reformat() -> None:
    _assert_clean(_run_tool("ruff", "format", "--check", *LINTED), "run `ruff format` on the files listed")


def test_mypy_finds_no_type_error() -> None:
    _assert_clean(_run_tool("mypy"), "its configuration is pyproject.toml's [tool.mypy]")


def test_every_type_ignore_names_its_code_and_reason() -> None:
    problems = []
    for folder in TYPED:
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            problems += unexplained_type_ignores(path.read_text(encoding="utf-8"), str(path.relative_to(PROJECT_ROOT)))
    assert not problems, "\n".join(problems)


# --- the checks catch what they are for -------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "x: int = f()  # type: ignore[assignment]  # f is untyped\n",
        "# f is untyped, and the line is long\nx: int = f()  # type: ignore[assignment]\n",
        'text = "# type: ignore"  # a string, not a comment\n',
    ],
)
def test_a_type_ignore_with_code_and_reason_passes(source: str) -> None:
    assert unexplained_type_ignores(source, "good.py") == []


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("x: int = f()  # type: ignore[assignment]\n", "checked.py:1: no reason"),
        ("x: int = f()  # type: ignore  # f is untyped\n", "checked.py:1: no error code"),
        ("x: int = f()  # type: ignore[]  # f is untyped\n", "checked.py:1: no error code"),
        ("x: int = f()  # type: ignore[assignment]  # noqa: E501\n", "checked.py:1: no reason"),
        ("y = 1\nx: int = f()  # type: ignore[assignment]\n", "checked.py:2: no reason"),
    ],
)
def test_a_type_ignore_without_code_or_reason_is_found(source: str, missing: str) -> None:
    assert [p for p in unexplained_type_ignores(source, "checked.py") if p.startswith(missing)]


def test_ruff_with_the_project_rules_rejects_an_unused_import(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text('"""A module."""\n\nimport os\n\nprint(os.sep)\n')
    bad.write_text('"""A module."""\n\nimport os\n\nprint("no os")\n')
    config = str(PROJECT_ROOT / "pyproject.toml")
    assert _run_tool("ruff", "check", "--config", config, str(good), cwd=tmp_path).returncode == 0
    run = _run_tool("ruff", "check", "--config", config, str(bad), cwd=tmp_path)
    assert run.returncode == 1 and "F401" in run.stdout


def test_mypy_with_the_project_settings_rejects_a_type_error_and_only_it(tmp_path: Path) -> None:
    source = tmp_path / "calls.py"
    source.write_text('"""A module."""\n\n\ndef half(n: int) -> int:\n    return n // 2\n\n\nhalf(4)\nhalf("4")\n')
    run = _run_tool("mypy", "--config-file", str(PROJECT_ROOT / "pyproject.toml"), str(source), cwd=tmp_path)
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert run.returncode == 1 and len(errors) == 1, run.stdout
    assert errors[0].startswith("calls.py:9:") and '"half" has incompatible type "str"' in errors[0]
