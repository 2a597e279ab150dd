"""scripts/breakages.py stays runnable: every line it breaks is still in its file exactly once, and its
tests exist. (Running the breakages takes minutes; this only checks that the script has not drifted.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def breakages_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("breakages", ROOT / "scripts" / "breakages.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("breakages", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BREAKAGES = breakages_module().BREAKAGES


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_each_line_to_break_is_found_exactly_once(breakage) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / breakage.path).read_text()
    assert text.count(breakage.original) == 1, f"{breakage.name}: update scripts/breakages.py"
    assert breakage.broken != breakage.original


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_each_breakage_names_tests_that_exist(breakage) -> None:  # type: ignore[no-untyped-def]
    for test in breakage.tests:
        path, _, name = test.partition("::")
        source = (ROOT / path).read_text()
        assert not name or f"def {name.split('[')[0]}(" in source, f"{breakage.name}: no test {test}"


def test_a_drifted_line_is_detected(tmp_path: Path) -> None:
    module = breakages_module()
    drifted = module.Breakage("drifted", "core/errors.py", "this line is in no file", "x", ())
    with pytest.raises(SystemExit, match="not found exactly once"):
        module.survives(drifted)


def test_names_are_unique() -> None:
    names = [b.name for b in BREAKAGES]
    assert len(names) == len(set(names))
