"""scripts/bootstrap.sh, run for real against a stub Python: it creates the venv and installs the right extras
(none at all included, the first command of a fresh clone), records them, and stops on a failed install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# A stand-in for python3: `-c` (the version check) succeeds or fails as FAKE_PYTHON_OK says; `-m venv DIR`
# creates DIR/bin/python as a stand-in that logs its arguments and fails when FAKE_PIP_FAILS is set.
STUB_PYTHON = """#!/usr/bin/env bash
case "$1" in
  -c) exit "${FAKE_PYTHON_OK:-0}" ;;
  --version) echo "Python 3.8.0"; exit 0 ;;
  -m) [ "$2" = venv ] || exit 3
      mkdir -p "$3/bin"
      cat > "$3/bin/python" <<'EOF'
#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [ -n "${FAKE_PIP_FAILS:-}" ] && [ "$*" != "-m pip install --quiet --upgrade pip" ]; then exit 1; fi
exit 0
EOF
      chmod +x "$3/bin/python"; exit 0 ;;
esac
exit 3
"""


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    """A copy of the script and pyproject.toml laid out as in a fresh clone (no .venv), with the stub."""
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(PROJECT_ROOT / "scripts" / "bootstrap.sh", root / "scripts" / "bootstrap.sh")
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    stub = tmp_path / "python3"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    return root


def bootstrap(clone: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the clone's bootstrap.sh with the stub Python; returns the run and the stub venv's log lines."""
    log = clone.parent / "venv-python.log"
    log.unlink(missing_ok=True)
    environment = {**os.environ, "PYTHON": str(clone.parent / "python3"), "FAKE_LOG": str(log), **env}
    run = subprocess.run(
        [str(clone / "scripts" / "bootstrap.sh"), *args], env=environment, capture_output=True, text=True, timeout=60
    )
    return run, log.read_text().splitlines() if log.exists() else []


def installs(log: list[str]) -> list[str]:
    return [line for line in log if line.startswith("-m pip install --quiet -e ")]


def stamp_extras(clone: Path) -> str:
    return (clone / ".venv" / ".advprover-stamp").read_text().split(" extras=", 1)[1].strip()


def test_fresh_clone_without_extras_installs_the_project(clone: Path) -> None:
    run, log = bootstrap(clone)
    assert run.returncode == 0, run.stderr
    assert installs(log) == [f"-m pip install --quiet -e {clone}"]
    assert stamp_extras(clone) == ""
    assert "installing advprover and its dependencies" in run.stderr


def test_second_run_installs_nothing(clone: Path) -> None:
    assert bootstrap(clone)[0].returncode == 0
    run, log = bootstrap(clone)
    assert run.returncode == 0 and log == [] and run.stderr == ""


def test_extras_are_added_to_what_is_installed(clone: Path) -> None:
    assert bootstrap(clone, "test")[0].returncode == 0
    assert stamp_extras(clone) == "test"
    run, log = bootstrap(clone, "bench,test,,bench")
    assert run.returncode == 0, run.stderr
    assert installs(log) == [f"-m pip install --quiet -e {clone}[bench,test]"]
    assert stamp_extras(clone) == "bench,test"
    run, log = bootstrap(clone)  # no extras asked: what is installed is enough
    assert run.returncode == 0 and log == []


def test_a_changed_pyproject_reinstalls_with_the_installed_extras(clone: Path) -> None:
    assert bootstrap(clone, "test")[0].returncode == 0
    with (clone / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# changed\n")
    run, log = bootstrap(clone)
    assert run.returncode == 0, run.stderr
    assert installs(log) == [f"-m pip install --quiet -e {clone}[test]"]


def test_failed_install_exits_non_zero_and_records_nothing(clone: Path) -> None:
    run, log = bootstrap(clone, FAKE_PIP_FAILS="1")
    assert run.returncode != 0
    assert installs(log) == [f"-m pip install --quiet -e {clone}"]
    assert not (clone / ".venv" / ".advprover-stamp").exists()


def test_old_python_is_refused_with_a_message(clone: Path) -> None:
    run, log = bootstrap(clone, FAKE_PYTHON_OK="1")
    assert run.returncode == 2
    assert "needs Python >= 3.10" in run.stderr
    assert not (clone / ".venv").exists() and log == []
