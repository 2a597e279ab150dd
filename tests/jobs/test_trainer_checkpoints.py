"""Roles and checkpoints: a trainer resumes exactly (new format, legacy .pt, past a damaged newest version);
the evaluator skips a damaged version and goes on."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from pathlib import Path

import pytest
import torch

from configs.databases import resolve_database
from configs.presets import preset
from core.models.checkpoint import LEGACY_TRAINER_KEY
from core.search.model_policy import load_policy
from core.storage import CheckpointStore, ExperimentRoot, read_shard, stream_bounds

FAST = [
    "prover_trainer.bootstrap_steps=5",
    "prover_trainer.checkpoint_every_steps=50",
    "database.path=embedded",
    "evaluator.max_theorems=2",
]


@pytest.fixture
def trained_root(tmp_path: Path) -> ExperimentRoot:
    """A supervised-only experiment whose prover trainer published version 0 and version 1 (step 3)."""
    config = preset("supervised_only").with_overrides(FAST)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), config.to_dict())
    assert train(root, 0) == "finished" and train(root, 3) == "finished"
    return root


def train(root: ExperimentRoot, steps: int) -> str:
    from jobs import prover_trainer

    return prover_trainer.main(root.url, rank=0, minutes=1.0, max_steps=steps)


def make_legacy(root: ExperimentRoot, version: int) -> None:
    """Rewrite ``version`` as the format-1 store wrote it: one .pt with the trainer state among the weights."""
    store = CheckpointStore(root, "prover")
    tensors, extras, info = store.load_with_extras(version)
    buffer = io.BytesIO()
    torch.save(
        {
            "format": "advprover-checkpoint",
            "format_version": 1,
            "meta": info.meta,
            "state_dict": {**tensors, LEGACY_TRAINER_KEY: extras},
        },
        buffer,
    )
    folder = Path(root.url) / "checkpoints" / "prover"
    for path in (info.path, info.extras_path):
        Path(path).unlink()
    weights = f"{version:08d}-00c0ffee.pt"
    (folder / weights).write_bytes(buffer.getvalue())
    sidecar = json.loads((folder / f"{version:08d}.json").read_text())
    sidecar.update(weights=weights, size=len(buffer.getvalue()))
    for key in ("extras", "extras_size"):
        sidecar.pop(key)
    (folder / f"{version:08d}.json").write_text(json.dumps(sidecar))


def test_a_trainer_resumes_its_step_and_optimizer_from_the_extras(trained_root: ExperimentRoot) -> None:
    store = CheckpointStore(trained_root, "prover")
    info = store.latest()
    assert info.version == 1 and info.meta["step"] == 3 and info.extras_path.endswith(".extras.pt")
    assert "optimizer" in store.load_with_extras()[1] and "optimizer" not in store.load()[0]
    assert train(trained_root, 2) == "finished"
    assert store.latest().meta["step"] == 5  # resumed at step 3, not restarted from 0


def test_a_trainer_resumes_from_a_legacy_version(trained_root: ExperimentRoot) -> None:
    make_legacy(trained_root, 1)
    store = CheckpointStore(trained_root, "prover")
    assert store.latest().path.endswith(".pt") and store.latest().extras_path is None
    assert load_policy(trained_root.url, device="cpu").kind == "prover"  # what jobs.prove --checkpoint EXP does
    assert train(trained_root, 2) == "finished"
    latest = store.latest()
    assert latest.version == 2 and latest.meta["step"] == 5 and latest.path.endswith(".safetensors")


def test_a_trainer_skips_a_damaged_newest_version(trained_root: ExperimentRoot, caplog) -> None:
    store = CheckpointStore(trained_root, "prover")
    Path(store.latest().path).write_bytes(b"")  # version 1's weights truncated to nothing
    with caplog.at_level(logging.WARNING, logger="core.storage.checkpoints"):
        assert train(trained_root, 2) == "finished"
    assert "version 1 is damaged" in caplog.text
    latest = store.latest()
    assert latest.version == 2 and latest.meta["step"] == 2  # resumed from version 0 (step 0), not stopped


def test_the_evaluator_skips_a_damaged_version_and_goes_on(trained_root: ExperimentRoot, caplog) -> None:
    from jobs import evaluator

    store = CheckpointStore(trained_root, "prover")
    Path(store.info(0).path).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="jobs.evaluator"):
        assert evaluator.main(trained_root.url, rank=0, minutes=1.0, max_records=2) == "finished"
    assert "prover v0 is skipped" in caplog.text
    low, end = stream_bounds(trained_root, "evaluator-00")
    versions = [r["version"] for seq in range(low, end) for r in read_shard(trained_root, "evaluator-00", seq)[1]]
    assert versions == ["baseline", 1]  # the intact version is evaluated
