"""Every role runs its models on the device its section names: the setting reaches the trainers (built and
resumed), the actors' policies and the evaluator's; a device the machine lacks stops the job first."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import torch

import core.models.devices
import jobs._version_zero
from core.errors import UsageError
from core.models.training import Seq2SeqTrainer
from core.storage import CheckpointStore, ExperimentRoot
from tests.roles import experiment, run_role

ROLES = ("generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator")
FAST = [
    "generator_trainer.bootstrap_steps=2",
    "prover_trainer.bootstrap_steps=2",
    "generator_actor.mix=1,generator;1,dataset",
    "generator_actor.shard_records=1",
    "prover_actor.shard_records=1",
    "evaluator.max_theorems=1",
    "database.path=embedded",
]


def prepared_root(path: Path, *extra: str) -> ExperimentRoot:
    return experiment(path, "tiny", *FAST, *extra)


@pytest.mark.slow
def test_each_role_builds_its_models_on_the_device_its_section_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each section names a different (valid) device; the machine's resolution is stubbed to the CPU, recording
    # which setting each job resolved, and every model is checked to be built on what came back.
    settings = {role: f"cuda:{index}" for index, role in enumerate(ROLES)}
    root = prepared_root(
        tmp_path / "exp",
        *(f"{role}.device={device}" for role, device in settings.items()),
        "prover_actor.precision=bf16",
    )
    resolved: list[tuple[str, str]] = []
    placed = torch.device("cpu")

    def resolve(text: str, field: str, *, local_rank: int = 0) -> torch.device:
        resolved.append((field, text))
        return placed

    trainers: list[tuple[Any, torch.device, set[torch.device]]] = []

    class RecordingTrainer(Seq2SeqTrainer):
        def __init__(self, model: Any, **options: Any) -> None:
            super().__init__(model, **options)
            trainers.append((options.get("device"), self.model.device, {p.device for p in self.model.parameters()}))

    policies: list[tuple[str, Any, str]] = []

    def recording_policy_factory(role: str, original: Any) -> Any:
        def make(loaded: Any, **options: Any) -> Any:
            policies.append((role, options.get("device"), options.get("precision")))
            return original(loaded, **options)

        return make

    monkeypatch.setattr(core.models.devices, "resolve_device", resolve)
    monkeypatch.setattr(jobs._version_zero, "Seq2SeqTrainer", RecordingTrainer)  # every trainer is built there
    for role in ("generator_actor", "prover_actor", "evaluator"):
        module = importlib.import_module(f"jobs.{role}")
        monkeypatch.setattr(module, "policy_from_model", recording_policy_factory(role, module.policy_from_model))

    assert run_role("generator_trainer", root, max_steps=0) == "finished"  # built (bootstrap) and resumed
    assert run_role("prover_trainer", root, max_steps=0) == "finished"
    assert run_role("prover_trainer", root, max_steps=1) == "finished"  # resumed with its optimizer state
    assert run_role("generator_actor", root, max_records=1) == "finished"
    assert run_role("prover_actor", root, max_records=1) == "finished"
    assert run_role("evaluator", root, max_records=2) == "finished"  # the baseline, then prover v1

    assert sorted(set(resolved)) == sorted((f"{role}.device", device) for role, device in settings.items())
    assert trainers and all(asked == placed and on == placed and params == {placed} for asked, on, params in trainers)
    assert len(trainers) == 2 + 3  # generator: bootstrap, resume; prover: bootstrap, resume twice
    assert {role for role, _, _ in policies} == {"generator_actor", "prover_actor", "evaluator"}
    assert all(device == placed for _, device, _ in policies)
    assert {(role, precision) for role, _, precision in policies} == {
        ("generator_actor", "fp32"),
        ("prover_actor", "bf16"),
        ("evaluator", "fp32"),
    }
    assert CheckpointStore(root, "prover").latest().meta["step"] == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("role", ROLES)
def test_a_device_the_machine_lacks_stops_the_job_naming_the_setting(role: str, tmp_path: Path) -> None:
    root = prepared_root(tmp_path / "exp", f"{role}.device=cuda")
    bounds = {"max_steps": 0} if role.endswith("trainer") else {"max_records": 1}
    with pytest.raises(UsageError, match=f"{role}.device cuda: CUDA is not available"):
        run_role(role, root, **bounds)
