"""The prover trainer job end to end, in-process and fast (a tiny model, the embedded database, result records
written by hand): it learns the records routed to it from the stream its wiring names, re-checks every proof
with the kernel, never learns a held-out theorem, trains its goal critic on every record's search outcomes,
publishes cursor, counters, steps and the critic, and a restart reads on from the committed cursor; its step
bound comes from the command line or the configuration (written against the mutants scripts/mutation.sh found)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from configs.experiment import ExperimentConfig
from configs.presets import preset
from core.adversarial.records import CriticTarget, GenerationRecord, ResultRecord
from core.adversarial.topology import wiring_of
from core.adversarial.workspace import Workspace
from core.metamath.database import Assertion
from core.metamath.prooftree import tree_from_proof
from core.metrics import scalar_points
from core.models.checkpoint import load_version
from core.storage import CheckpointStore, ExperimentRoot, ShardWriter, read_heartbeats
from jobs import prover_trainer
from tests.roles import experiment, run_role
from tests.sample_records import generation as sample_generation
from tests.sample_records import result as sample_result

FAST = ["prover_trainer.bootstrap_steps=0", "generator_trainer.bootstrap_steps=0", "database.path=embedded",
        "prover_trainer.batch_size=4", "prover_trainer.replay_min=1", "prover_trainer.checkpoint_every_steps=1000",
        "metrics.every_steps=1"]  # fmt: skip
STREAM = "prover-actor-00"
MINUTES = 0.2  # a bound no test reaches: a mutant that loses the step bound stops here


def workspace(root: ExperimentRoot) -> Workspace:
    database = root.config["database"]
    return Workspace.load(database["path"], stop_at=database["stop_at"], splits=database["splits"],
                          split_salt=database["split_salt"], forbidden=database["forbidden"])  # fmt: skip


def result(ws: Workspace, theorem: Assertion, proof_of: Assertion | None = None, **fields: Any) -> ResultRecord:
    """A failed search of ``theorem`` sent as a generated goal, with the database proof of ``proof_of`` (default:
    its own) as the generator's proof; routed to the prover trainer unless told."""
    generation = GenerationRecord.of_database(theorem, tree_from_proof(ws.db, theorem, ws.kernel), source_stream="g")
    proof = tree_from_proof(ws.db, proof_of or theorem, ws.kernel).to_json()
    generation = dataclasses.replace(generation, source="generator", generator_version=0, proof=proof)
    record = ResultRecord(
        id=generation.id, generation=generation, prover_version=0, proved=False, attempts=1, successes=0,
        proof=None, search={}, reward=1.0, for_generator_trainer=False, for_prover_trainer=True,
        critic_examples=(CriticTarget(" ".join(theorem.statement), 0.0, 2),),
    )  # fmt: skip
    return dataclasses.replace(record, **fields)


def write(root: ExperimentRoot, records: list[ResultRecord]) -> None:
    writer = ShardWriter(root, STREAM, max_records=2, max_age_s=60.0, **ResultRecord.header_fields())
    for record in records:
        writer.append(record.to_json())
    writer.close()


def heartbeat(root: ExperimentRoot) -> dict[str, Any]:
    [beat] = [b for b in read_heartbeats(root) if b["role"] == "prover_trainer"]
    return beat


def tags(root: ExperimentRoot) -> dict[str, list[int]]:
    """Each scalar tag the trainer's TensorBoard run holds, with its steps."""
    found: dict[str, list[int]] = {}
    for tag, step in scalar_points(os.path.join(str(root.local_folder), "tensorboard", "prover-trainer-00")):
        found.setdefault(tag, []).append(step)
    return found


def test_the_job_learns_what_is_routed_to_it_and_its_critic_learns_every_record(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST)
    assert run_role("prover_trainer", root, max_steps=0, minutes=MINUTES) == "finished"  # version 0
    assert wiring_of_root(root) == [STREAM]
    ws = workspace(root)
    train = ws.train_theorems()
    other = next(t for t in train[3:] if t.statement != train[2].statement)
    held_out = ws.split("test")[0]
    write(root, [
        result(ws, train[0]),
        result(ws, train[1], for_prover_trainer=False),  # not routed: the critic's alone
        result(ws, train[2], proof_of=other),  # the kernel refuses a proof of another statement
        result(ws, held_out),  # never learned, nor its search's goals
    ])  # fmt: skip
    assert run_role("prover_trainer", root, max_steps=3, minutes=MINUTES) == "finished"
    latest = CheckpointStore(root, "prover").latest()
    assert latest is not None and latest.version == 1  # committed at the end (the step bound is far)
    meta = latest.meta
    assert meta["step"] == 3 and meta["cursors"] == {"0": {STREAM: 2}}
    assert meta["counters"] == {"records_in": 4, "skipped": 3, "buffer": 1}
    assert meta["formats"] == ["backward"]  # the tiny preset searches backward
    beat = heartbeat(root)
    assert (beat["rejected_records"], beat["held_out_skipped"], beat["critic_held_out"]) == (1, 1, 1)
    assert (beat["status"], beat["step"], beat["version"]) == ("finished", 3, 1)
    loaded, _ = load_version(CheckpointStore(root, "prover"))
    assert loaded.critic is not None  # trained after every step, published with the prover
    steps = tags(root)
    assert steps["critic/loss"] == steps["critic/steps"] == steps["critic/replay_size"] == [1, 2, 3]
    assert steps["train/loss"] == [1, 2, 3]
    write(root, [result(ws, train[3])])
    assert run_role("prover_trainer", root, max_steps=1, minutes=MINUTES) == "finished"  # a restart
    meta = CheckpointStore(root, "prover").latest().meta  # type: ignore[union-attr]  # published above
    assert meta["step"] == 4 and meta["cursors"] == {"0": {STREAM: 3}}
    assert meta["counters"] == {"records_in": 1, "skipped": 0, "buffer": 2}  # refilled, and the new record only


def wiring_of_root(root: ExperimentRoot) -> list[str]:
    return wiring_of(ExperimentConfig.from_dict(root.config)).read_by("prover_trainer", 0)


def test_the_configured_step_bound_and_formats_hold_and_without_a_critic_none_is_published(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, "prover_trainer.max_steps=2", "prover_trainer.critic=false",
                      "prover_trainer.examples=both")  # fmt: skip
    ws = workspace(root)
    write(root, [result(ws, ws.train_theorems()[0])])
    assert run_role("prover_trainer", root, minutes=MINUTES) == "finished"
    meta = CheckpointStore(root, "prover").latest().meta  # type: ignore[union-attr]  # published
    assert meta["step"] == 2 and meta["formats"] == ["backward", "forward"]
    assert load_version(CheckpointStore(root, "prover"))[0].critic is None
    assert "critic/loss" not in tags(root) and tags(root)["train/loss"] == [1, 2]
    assert run_role("prover_trainer", root, max_steps=0, minutes=MINUTES) == "finished"  # the command line's bound
    assert CheckpointStore(root, "prover").latest().meta["step"] == 2  # type: ignore[union-attr]  # nothing new


@pytest.mark.parametrize("every", [1, 2])
def test_the_critic_reports_its_loss_every_metrics_step(tmp_path: Path, every: int) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST, f"metrics.every_steps={every}")
    ws = workspace(root)
    write(root, [result(ws, ws.train_theorems()[0])])
    assert run_role("prover_trainer", root, max_steps=3, minutes=MINUTES) == "finished"
    assert tags(root)["critic/loss"] == ([2] if every == 2 else [1, 2, 3])


# --- which proofs a routed record teaches ----------------------------------------------------------------------


GIVEN, OWN = {"given": True}, {"own": True}  # stand-ins for the generator's proof and the prover's


def searched(proved: bool, proof: dict[str, Any] | None) -> ResultRecord:
    generation = dataclasses.replace(sample_generation("g/1"), proof=GIVEN)
    return dataclasses.replace(sample_result(generation, proved=proved), proof=proof)


@pytest.mark.parametrize(
    ("preset_name", "overrides", "failed", "proved", "proved_without_proof"),
    [
        ("tiny", [], [(GIVEN, False)], [(GIVEN, False)], [(GIVEN, False)]),  # the routing flag alone decides
        ("tiny", ["prover_trainer.learn_from_own_proofs=true"], [(GIVEN, False)], [(OWN, True)], []),
        (
            "tiny",
            ["prover_trainer.learn_from_own_proofs=true", "routing.prover_send_only_failed=false"],
            [(GIVEN, False)],
            [(GIVEN, False), (OWN, True)],
            [(GIVEN, False)],
        ),
        ("prover_only", [], [], [(OWN, True)], []),  # the given proof is the database's: its own proofs only
    ],
    ids=["given", "both-failed-only", "both", "own"],
)
def test_a_record_teaches_the_given_proof_its_own_proof_or_both_as_configured(
    preset_name: str, overrides: list[str], failed: list[Any], proved: list[Any], proved_without_proof: list[Any]
) -> None:
    config = preset(preset_name).with_overrides(overrides)
    assert prover_trainer.proofs_to_learn(config, searched(False, None)) == failed
    assert prover_trainer.proofs_to_learn(config, searched(True, OWN)) == proved
    assert prover_trainer.proofs_to_learn(config, searched(True, None)) == proved_without_proof
