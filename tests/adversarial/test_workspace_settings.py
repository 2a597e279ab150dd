"""The workspace's loading options and the generation settings' cross-field check (written against the mutants
scripts/mutation.sh found surviving)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.adversarial.settings import GenerationSettings
from core.adversarial.workspace import Workspace
from core.errors import ConfigError

HILBERT = str(Path(__file__).resolve().parents[2] / "core" / "metamath" / "databases" / "hilbert.mm")


def test_min_steps_above_max_steps_is_rejected_naming_both_fields() -> None:
    with pytest.raises(
        ConfigError, match=r"^GenerationSettings\.min_steps \(5\) must be <= GenerationSettings\.max_steps \(3\)$"
    ):
        GenerationSettings(max_steps=3, min_steps=5)
    assert GenerationSettings(max_steps=3, min_steps=3).min_steps == 3


def test_load_reads_up_to_stop_at_and_logs_what_it_read(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="core.adversarial.workspace"):
        whole = Workspace.load(HILBERT)
    assert f"read {HILBERT}: {len(whole.db.assertions)} assertions in " in caplog.text
    labels = [a.label for a in whole.db.assertions]
    part = Workspace.load(HILBERT, stop_at="syl")
    assert [a.label for a in part.db.assertions] == labels[: labels.index("syl")]


def test_load_keeps_the_split_salt_and_the_forbidden_labels() -> None:
    default = Workspace.load(HILBERT)
    assert default.split_salt == "" and default.forbidden == frozenset()
    salted = Workspace.load(HILBERT, split_salt="pepper", forbidden=("ax-3", "mpd"))
    assert salted.split_salt == "pepper" and salted.forbidden == {"ax-3", "mpd"}
    assert {"ax-3", "mpd"} <= salted.generator_forbidden
