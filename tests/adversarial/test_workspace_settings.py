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


def test_proof_sizes_count_the_essential_nodes_of_each_human_proof_of_the_split() -> None:
    workspace = Workspace.load(HILBERT)
    sizes = dict(zip((a.label for a in workspace.split("train")), workspace.proof_sizes(), strict=True))
    # a1i: ax-1, its hypothesis and one ax-mp; mp2: two ax-mp over its three hypotheses
    assert sizes["a1i"] == 3 and sizes["mp2"] == 5
    valid = workspace.proof_sizes("valid")
    assert len(valid) == len(workspace.split("valid")) and "a1i" not in {a.label for a in workspace.split("valid")}
    assert all(size >= 1 for size in valid)


def test_proof_sizes_of_an_unknown_split_fail() -> None:
    with pytest.raises(KeyError):
        Workspace.load(HILBERT).proof_sizes("holdout")
