"""Every configuration setting is read somewhere: a setting no code reads is a promise the project does not
keep (as `generator_trainer.entropy_weight` once was)."""

from __future__ import annotations

import re
from pathlib import Path

from configs.experiment import ExperimentConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def code_outside_declarations() -> str:
    """The project's code, without the lines that declare settings (``name: type = option(...)``)."""
    declaration = re.compile(r"^\s+\w+: [^=]+= (option|device_option|precision_option)\(")
    paths = [path for folder in ("core", "jobs", "configs") for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))]
    lines = [line for path in paths for line in path.read_text().splitlines() if not declaration.match(line)]
    return "\n".join(lines)


def unread(settings: list[str], code: str) -> list[str]:
    """The settings whose leaf name is neither read as an attribute nor named in a string in ``code``."""

    def read(leaf: str) -> bool:
        return re.search(rf"\.{re.escape(leaf)}\b|[\"']{re.escape(leaf)}[\"']", code) is not None

    return [key for key in settings if not read(key.rsplit(".", 1)[-1])]


def test_every_setting_is_read_by_some_code() -> None:
    settings = [setting.key for setting in ExperimentConfig().settings()]
    assert len(settings) > 100
    assert unread(settings, code_outside_declarations()) == []


def test_a_setting_nobody_reads_is_found() -> None:
    code = "config.prover_actor.count\nx = 'expansions'\n"
    assert unread(
        ["prover_actor.count", "prover_actor.search.expansions", "generator_trainer.entropy_weight"], code
    ) == ["generator_trainer.entropy_weight"]
