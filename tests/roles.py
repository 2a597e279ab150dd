"""Helpers of the tests that run role jobs in-process on small real experiments."""

from __future__ import annotations

import dataclasses
import importlib
import signal
import sys
from pathlib import Path
from typing import Any

from configs.databases import resolve_database
from configs.presets import preset
from core.storage import ExperimentRoot


def experiment(path: Path | str, preset_name: str = "tiny", *overrides: str) -> ExperimentRoot:
    """A new experiment root at ``path``: a preset with ``overrides``, its database resolved to a file."""
    config = preset(preset_name).with_overrides(list(overrides))
    config = dataclasses.replace(config, database=resolve_database(config.database))
    return ExperimentRoot.create_or_open(str(path), config.to_dict())


def run_role(role: str, exp: ExperimentRoot | Path | str, *, minutes: float = 1.0, **bounds: Any) -> str:
    """Run one role job in this process until its bounds; pytest's signal handlers are restored afterwards
    (a role installs its own for SIGTERM and SIGINT)."""
    url = exp.url if isinstance(exp, ExperimentRoot) else str(exp)
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        return importlib.import_module(f"jobs.{role}").main(url, rank=0, minutes=minutes, **bounds)
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def launch_command(exp: Path, minutes: float, *extra: str, progress: int = 5) -> list[str]:
    """``python -m jobs.launch local --preset tiny --exp EXP --minutes M --progress P EXTRA...``."""
    return [
        sys.executable, "-m", "jobs.launch", "local", "--preset", "tiny", "--exp", str(exp),
        "--minutes", str(minutes), "--progress", str(progress), *extra,
    ]  # fmt: skip
