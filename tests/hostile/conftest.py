"""A real short run for the hostile suite: the roles of the ``tiny`` preset run in-process on the embedded
database (both trainers' version 0, generations, the prover actor's results). Each test works on its own copy."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest

from configs.databases import resolve_database
from configs.presets import preset
from core.storage import ExperimentRoot
from tests import roles

GENERATIONS = "generator-actor-00-to-00"
RESULTS = "prover-actor-00"
RECORDS = 12
OVERRIDES = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_actor.mix=3,generator;1,dataset",
    "generator_actor.shard_records=4",
    "prover_actor.shard_records=4",
    "evaluator.max_theorems=3",
    "database.path=embedded",
    "prover_actor.search.expansions=8",
]


def run_role(role: str, exp: str | Path, **bounds: Any) -> str:
    return roles.run_role(role, exp, minutes=2.0, **bounds)


@pytest.fixture(scope="session")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "exp"
    config = preset("tiny").with_overrides(OVERRIDES)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    ExperimentRoot.create_or_open(str(path), config.to_dict())
    for role in ("prover_trainer", "generator_trainer"):
        assert run_role(role, path, max_steps=0) == "finished"
    assert run_role("generator_actor", path, max_records=RECORDS) == "finished"
    assert run_role("prover_actor", path, max_records=RECORDS) == "finished"
    return path


@pytest.fixture
def run(short_run: Path, tmp_path: Path) -> Path:
    """This test's own copy of the short run (the original stays intact for the others)."""
    copy = tmp_path / "exp"
    shutil.copytree(short_run, copy, symlinks=True)
    return copy
