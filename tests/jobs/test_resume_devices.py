"""A trainer resumed on another device type loads its state: a trainer's checkpoint holds CPU tensors only
(weights, and the optimizer state and step of its extras), and a resumed trainer moves that state onto the
device its job resolves, whatever device it was trained on.

On a CPU-only machine the other device type is ``meta`` (tensors with a shape and no data): a resume onto it
shows that every weight and AdamW moment is moved to the trainer's device, none left behind on the CPU, which
is what a resume onto CUDA needs. ``scripts/gpu_check.sh`` runs the real thing: trained on CUDA, resumed on
the CPU, and back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as safetensors_load

import core.models.devices
import jobs._version_zero
from core.models.checkpoint import load_trainer_version
from core.models.training import Seq2SeqTrainer
from core.storage import CheckpointStore, ExperimentRoot
from tests.roles import experiment, run_role

FAST = [
    "prover_trainer.bootstrap_steps=2",
    "prover_trainer.checkpoint_every_steps=2",
    "prover_trainer.batch_size=4",
    "database.path=embedded",
]
MOMENTS = ("exp_avg", "exp_avg_sq")


def trained(path: Path) -> ExperimentRoot:
    root = experiment(path, "tiny", *FAST)
    assert run_role("prover_trainer", root, max_steps=3) == "finished"
    return root


def stored_locations(data: bytes) -> set[str]:
    """The devices the tensors of a ``torch.save`` file were saved from (read without moving them)."""
    locations: set[str] = set()

    def record(storage: Any, location: str) -> Any:
        locations.add(location)
        return storage

    torch.load(io.BytesIO(data), map_location=record, weights_only=True)
    return locations


def test_a_trainers_checkpoint_holds_cpu_tensors_only(tmp_path: Path) -> None:
    root = trained(tmp_path / "exp")
    info = CheckpointStore(root, "prover").latest()
    assert info is not None and info.meta["step"] == 3  # version 0 (bootstrapped) is step 0
    folder = tmp_path / "exp" / "checkpoints" / "prover"
    (extras,) = folder.glob(f"{info.version:08d}-*.extras.pt")
    assert stored_locations(extras.read_bytes()) == {"cpu"}  # a CUDA-trained state would say cuda:N
    (weights,) = folder.glob(f"{info.version:08d}-*.safetensors")
    assert {t.device.type for t in safetensors_load(weights.read_bytes()).values()} == {"cpu"}  # no device stored
    _, state, _ = load_trainer_version(CheckpointStore(root, "prover"))
    assert state is not None and state["steps"] == 3
    assert any(key in MOMENTS for moments in state["optimizer"]["state"].values() for key in moments)


def test_a_state_saved_from_a_gpu_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin of the check above: a state whose tensors were saved from CUDA (their location tag forged
    here, as no GPU is needed to read it back) does not pass for a CPU one."""

    def as_if_on_gpu(storage: Any) -> str:
        return "cuda:0"

    registry = [(-1, as_if_on_gpu, lambda storage, location: None), *torch.serialization._package_registry]
    monkeypatch.setattr(torch.serialization, "_package_registry", registry)
    saved = io.BytesIO()
    torch.save({"state": {0: {"exp_avg": torch.zeros(2)}}, "steps": 3}, saved)
    monkeypatch.undo()
    assert stored_locations(saved.getvalue()) == {"cuda:0"}


@pytest.mark.filterwarnings("ignore:for .* from a non-meta parameter")  # the resume onto meta, as meant
def test_a_resumed_trainer_moves_its_stored_state_onto_its_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = trained(tmp_path / "exp")
    store = CheckpointStore(root, "prover")
    loaded, stored, info = load_trainer_version(store)
    assert stored is not None
    target = torch.device("meta")
    asked: list[tuple[str, str]] = []
    trainers: list[Seq2SeqTrainer] = []

    def resolve(text: str, field: str, *, local_rank: int = 0) -> torch.device:
        asked.append((field, text))
        return target

    class RecordingTrainer(Seq2SeqTrainer):
        def __init__(self, model: Any, **options: Any) -> None:
            super().__init__(model, **options)
            trainers.append(self)

    monkeypatch.setattr(core.models.devices, "resolve_device", resolve)
    monkeypatch.setattr(jobs._version_zero, "Seq2SeqTrainer", RecordingTrainer)
    for target in (torch.device("meta"), torch.device("cpu")):
        assert run_role("prover_trainer", root, max_steps=0) == "finished"  # resumes, trains nothing
        trainer = trainers[-1]
        assert trainer.steps == stored["steps"] == info.meta["step"]
        assert {p.device for p in trainer.model.parameters()} == {target}
        moments = [v for s in trainer.optimizer.state.values() for k, v in s.items() if k in MOMENTS]
        assert len(moments) == 2 * len(list(trainer.model.parameters()))
        assert {m.device for m in moments} == {target}
    assert asked == [("prover_trainer.device", "auto")] * 2
    on_cpu = trainers[-1]
    for name, tensor in on_cpu.model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name  # the weights carried over
    for index, state in stored["optimizer"]["state"].items():
        assert torch.equal(on_cpu.optimizer.state_dict()["state"][index]["exp_avg"], state["exp_avg"])
    assert store.latest() == info  # resuming published nothing
