"""Launch and status read the wiring table: the jobs started and the flows reconciled are the table's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from configs.databases import resolve_database
from configs.experiment import ExperimentConfig
from configs.presets import preset
from core.adversarial.topology import SETUPS, wiring_of
from core.storage import ExperimentRoot, ShardWriter
from jobs import status
from jobs.launch import slots_of

CASES: list[tuple[str, list[str]]] = [(setup.replace("-", "_"), []) for setup in SETUPS] + [
    ("adversarial", ["generator_actor.count=2", "prover_actor.count=3", "prover_trainer.count=2"])
]


def make_root(path: Path, name: str, overrides: list[str]) -> ExperimentRoot:
    config = preset(name).with_overrides(overrides)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    return ExperimentRoot.create_or_open(str(path), config.to_dict())


@pytest.mark.parametrize("name, overrides", CASES)
def test_status_reconciles_the_flows_of_the_table(name: str, overrides: list[str], tmp_path: Path) -> None:
    root = make_root(tmp_path / "exp", name, overrides)
    table = wiring_of(ExperimentConfig.from_dict(root.config))
    for stream in table.stream_names():  # one record in every stream of the table
        with ShardWriter(root, stream, max_records=1, max_age_s=60) as writer:
            writer.append({"id": f"{stream}/0"})
    flows = status.collect(root)["flows"]
    assert {
        stream: (flow.get("kind"), [c["consumer"] for c in flow["consumers"]]) for stream, flow in flows.items()
    } == {s.name: (s.kind, [c.name for c in s.consumers]) for s in table.streams}


def test_a_stream_the_table_does_not_know_has_no_consumer(tmp_path: Path) -> None:
    """Twin: a stray stream is listed, with nothing reconciled against it."""
    root = make_root(tmp_path / "exp", "adversarial", [])
    with ShardWriter(root, "prover-actor-07", max_records=1, max_age_s=60) as writer:
        writer.append({"id": "stray"})
    assert status.collect(root)["flows"]["prover-actor-07"] == {"produced": 1, "consumers": []}


@pytest.mark.parametrize("name, overrides", CASES)
def test_launch_starts_the_jobs_of_the_table(name: str, overrides: list[str]) -> None:
    config = preset(name).with_overrides(overrides)
    table = wiring_of(config)
    slots = slots_of(config)
    assert [job for slot in slots for job in slot.job_names] == table.job_names()
    assert all(slot.group_size == table.group_size(slot.role) for slot in slots)
