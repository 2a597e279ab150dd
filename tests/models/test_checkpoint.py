"""core.models.checkpoint: one format for every model checkpoint, legacy files, and the checks done on loading."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as safetensors_load

from core.errors import CheckpointError
from core.metamath.environment import BackwardEnv
from core.metamath.reader import read_database
from core.models.checkpoint import (
    LEGACY_TRAINER_KEY,
    database_coverage,
    load_trainer_version,
    load_version,
    model_weights,
    policy_meta,
    publish_version,
    read_model,
    save_policy_file,
)
from core.models.formats import build_vocabulary
from core.models.supervised import train_prover_on_database
from core.models.training import Seq2SeqTrainer, new_model
from core.search.model_policy import load_policy
from core.search.policy import BackwardQuery
from core.storage import CheckpointStore, ExperimentRoot

# A database none of whose labels the embedded database has (a model trained there knows none of them).
FOREIGN_MM = """$c |- ( ) -> P Q wff $.
$v a b $.
fa $f wff a $. fb $f wff b $.
q-p $a wff P $. q-q $a wff Q $. q-imp $a wff ( a -> b ) $.
q-ax $a |- ( a -> ( b -> a ) ) $.
q-th $p |- ( P -> ( Q -> P ) ) $= ? $.
"""


@pytest.fixture(scope="module")
def vocab(db):
    return build_vocabulary(db)


@pytest.fixture(scope="module")
def trained(db, vocab):
    """A tiny prover trained briefly on the embedded database, and a trainer whose optimizer state is not empty."""
    torch.set_num_threads(1)
    model, trained_vocab, _ = train_prover_on_database(
        db, size="tiny", steps=150, batch_size=32, lr=1e-2, log_every=1000, device="cpu", validate=False
    )
    assert trained_vocab == vocab
    trainer = Seq2SeqTrainer(model, lr=1e-4, warmup_steps=1)
    example = ([5, 6, 7], [8, 9])
    for _ in range(3):
        trainer.step([example])
    return model.eval(), trainer


def write_legacy_file(path: Path, model, vocab, trainer: Seq2SeqTrainer, kind: str = "prover") -> bytes:
    """A checkpoint as the format-1 trainers wrote it: the trainer state inside the weights' dict."""
    state = {
        **model_weights(model),
        LEGACY_TRAINER_KEY: {k: v for k, v in trainer.state_dict().items() if k != "model"},
    }
    buffer = io.BytesIO()
    torch.save(
        {
            "format": "advprover-checkpoint",
            "format_version": 1,
            "state_dict": state,
            "meta": policy_meta(model, vocab, kind, {"step": trainer.steps}),
        },
        buffer,
    )
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def legacy_experiment(tmp_path: Path, model, vocab, trainer: Seq2SeqTrainer) -> ExperimentRoot:
    """An experiment folder whose prover version 0 was published by the format-1 store."""
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"name": "legacy"})
    folder = tmp_path / "exp" / "checkpoints" / "prover"
    folder.mkdir(parents=True)
    data = write_legacy_file(folder / "00000000-0badcafe.pt", model, vocab, trainer)
    meta = policy_meta(model, vocab, "prover", {"step": trainer.steps, "cursors": {}})
    sidecar = {"version": 0, "time": time.time(), "weights": "00000000-0badcafe.pt", "size": len(data), "meta": meta}
    (folder / "00000000.json").write_text(json.dumps(sidecar))
    return root


def queries_of(db, count: int = 4) -> list[BackwardQuery]:
    theorems = [t for t in db.theorems() if t.typecode == db.provable_typecode][:count]
    return [BackwardQuery(BackwardEnv(db, t), t.statement) for t in theorems]


# --- the format ----------------------------------------------------------------------------------


def test_published_weights_and_trainer_state_are_apart_and_resume_exactly(tmp_path, db, vocab, trained):
    model, trainer = trained
    store = CheckpointStore(ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"name": "t"}), "prover")
    info = publish_version(store, model, vocab, "prover", {"step": trainer.steps}, trainer_state=trainer.state_dict())
    weights = safetensors_load(Path(info.path).read_bytes())
    assert set(weights) == set(model.state_dict()) and info.extras_path.endswith(".extras.pt")
    loaded, _ = load_version(store)  # what an actor reads: the weights only
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in model.state_dict().items())
    loaded, state, _ = load_trainer_version(store)
    resumed = Seq2SeqTrainer(loaded.model.train(), lr=1e-3, warmup_steps=1)
    resumed.load_state_dict(state)
    assert resumed.steps == trainer.steps == 3
    assert resumed.optimizer.state_dict()["state"].keys() == trainer.optimizer.state_dict()["state"].keys()


def test_a_policy_file_is_self_contained(tmp_path, db, vocab, trained):
    path = tmp_path / "prover.safetensors"
    save_policy_file(str(path), trained[0], vocab, "prover", {"step": 3})
    loaded = read_model(str(path), kind="prover", db=db)
    assert loaded.vocab == vocab and loaded.meta["step"] == 3 and loaded.formats == ("backward",)
    with pytest.raises(CheckpointError, match="name it"):
        save_policy_file(str(tmp_path / "prover.pt"), trained[0], vocab, "prover")


# --- legacy checkpoints (issue 13: "Unexpected key(s) in state_dict: __trainer__") -------------------


def test_a_legacy_file_with_trainer_state_loads_as_a_policy(tmp_path, db, vocab, trained):
    model, trainer = trained
    path = tmp_path / "legacy.pt"
    write_legacy_file(path, model, vocab, trainer)
    expected = load_policy(str(path), device="cpu").propose_backward(queries_of(db), k=3)
    assert expected and any(expected)
    fresh = tmp_path / "fresh.safetensors"
    save_policy_file(str(fresh), model, vocab, "prover")
    assert load_policy(str(fresh), device="cpu").propose_backward(queries_of(db), k=3) == expected
    # its truncated twin fails clearly
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="truncated.pt: not a loadable checkpoint"):
        read_model(str(truncated))


def test_a_legacy_experiment_loads_for_actors_and_resumes_a_trainer(tmp_path, db, vocab, trained):
    model, trainer = trained
    root = legacy_experiment(tmp_path, model, vocab, trainer)
    store = CheckpointStore(root, "prover")
    assert load_policy(str(tmp_path / "exp"), device="cpu").propose_backward(queries_of(db), k=2)
    loaded, _ = load_version(store)
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in model.state_dict().items())
    loaded, state, _ = load_trainer_version(store)
    resumed = Seq2SeqTrainer(loaded.model.train(), lr=1e-3, warmup_steps=1)
    resumed.load_state_dict(state)
    assert resumed.steps == 3
    # the next version is written in the new format, beside the legacy one
    info = publish_version(store, loaded.model, vocab, "prover", trainer_state=resumed.state_dict())
    assert info.version == 1 and info.path.endswith(".safetensors") and load_trainer_version(store)[1]["steps"] == 3


# --- checks on loading -------------------------------------------------------------------------------


def test_non_finite_weights_are_refused(tmp_path, vocab, trained):
    model = new_model(vocab, "tiny", seed=3)
    path = tmp_path / "finite.safetensors"
    save_policy_file(str(path), model, vocab, "prover")
    assert read_model(str(path)).model is not None  # the finite twin
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    save_policy_file(str(path), model, vocab, "prover")
    with pytest.raises(CheckpointError, match="are not finite"):
        read_model(str(path))


def test_a_checkpoint_of_the_wrong_kind_is_refused(tmp_path, vocab, trained):
    path = tmp_path / "generator.safetensors"
    save_policy_file(str(path), trained[0], vocab, "generator")
    assert read_model(str(path), kind="generator").kind == "generator"
    with pytest.raises(CheckpointError, match="a generator checkpoint, but a prover is needed"):
        read_model(str(path), kind="prover")
    with pytest.raises(CheckpointError, match="a generator checkpoint, but a prover is needed"):
        load_policy(str(path))


def test_a_model_of_another_database_proposes_only_labels_it_knows(tmp_path, prop_mm, vocab, trained, caplog):
    prop = read_database(prop_mm)
    known, total = database_coverage(vocab, prop)
    assert 0 < known < total
    path = tmp_path / "hilbert-prover.safetensors"
    save_policy_file(str(path), trained[0], vocab, "prover")
    policy = load_policy(str(path), device="cpu", db=prop)
    assert "knows" in caplog.text and f"of the {total} labels" in caplog.text
    answers = policy.propose_backward(queries_of(prop, 8), k=4)
    proposed = {p.tactic.label for proposals in answers for p in proposals}
    assert all(any(a.label == label for a in prop.assertions) for label in proposed)
    assert all(label in vocab.to_dict()["labels"] for label in proposed)


def test_a_model_of_the_same_database_loads_without_a_coverage_warning(tmp_path, prop_mm, trained, caplog):
    prop = read_database(prop_mm)
    own = build_vocabulary(prop)
    provable = sum(a.typecode == "|-" for a in prop.assertions)
    assert 900 < provable < len(prop.assertions)  # syntax axioms (wn, wi, ...) are never in a vocabulary
    assert database_coverage(own, prop) == (provable, provable)
    path = tmp_path / "prop-prover.safetensors"
    save_policy_file(str(path), new_model(own, "tiny", seed=0), own, "prover")
    load_policy(str(path), device="cpu", db=prop)
    assert "knows" not in caplog.text


def test_a_model_that_knows_none_of_the_database_is_refused(tmp_path, vocab, trained):
    foreign = tmp_path / "foreign.mm"
    foreign.write_text(FOREIGN_MM)
    path = tmp_path / "hilbert-prover.safetensors"
    save_policy_file(str(path), trained[0], vocab, "prover")
    with pytest.raises(CheckpointError, match="knows none of the .* labels of .*foreign.mm"):
        load_policy(str(path), device="cpu", db=read_database(foreign))


def test_on_cpu_copies_every_tensor_and_keeps_the_structure() -> None:
    from core.models.checkpoint import on_cpu

    state = {
        "optimizer": {
            "state": {0: {"exp_avg": torch.ones(2), "step": torch.tensor(3.0)}},
            "param_groups": [{"lr": 0.1, "params": [0]}],
        },
        "steps": 4,
        "pair": (torch.zeros(1), "x"),
    }
    moved = on_cpu(state)
    assert moved["steps"] == 4 and moved["optimizer"]["param_groups"] == [{"lr": 0.1, "params": [0]}]
    assert torch.equal(moved["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert isinstance(moved["pair"], tuple) and moved["pair"][1] == "x"
    assert moved["optimizer"]["state"][0]["exp_avg"] is not state["optimizer"]["state"][0]["exp_avg"]
    assert all(t.device.type == "cpu" for t in (moved["pair"][0], moved["optimizer"]["state"][0]["step"]))
