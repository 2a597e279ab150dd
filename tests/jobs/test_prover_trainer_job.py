"""The prover trainer job end to end, in-process and fast (a tiny model, the embedded database, result records
written by hand): it learns the records routed to it from the stream its wiring names, re-checks every proof
with the kernel, never learns a held-out theorem, trains its goal critic on every record's search outcomes,
publishes cursor, counters, steps and the critic, and a restart reads on from the committed cursor; its step
bound comes from the command line or the configuration (written against the mutants scripts/mutation.sh found)."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from configs.experiment import ExperimentConfig
from configs.presets import preset
from core.adversarial.hindsight import hindsight_theorems
from core.adversarial.records import CriticTarget, GenerationRecord, ResultRecord
from core.adversarial.topology import wiring_of
from core.adversarial.workspace import Workspace
from core.metamath.database import Assertion
from core.metamath.prooftree import ProofTree, tree_from_proof
from core.metrics import scalar_points
from core.models.checkpoint import load_version
from core.models.examples import tree_examples
from core.storage import CheckpointStore, ExperimentRoot, ShardWriter, read_heartbeats
from jobs import _trainer, prover_trainer
from tests.jobs.test_prover_only import result_of as prover_only_result
from tests.jobs.test_prover_only import trainer_job, with_subgoals
from tests.roles import experiment, run_role
from tests.sample_records import generation as sample_generation
from tests.sample_records import result as sample_result
from tests.scripted_rollouts import scripted_record
from tests.search.test_backward import corrupt

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
    failed_with_a_proof = prover_trainer.proofs_to_learn(config, searched(False, OWN))
    assert failed_with_a_proof == failed  # a proof only counts with the outcome that found it


# --- subgoals, hindsight and the critic's step ---------------------------------------------------------------------


def two_inner_steps(ws: Workspace) -> tuple[Assertion, ProofTree, ProofTree]:
    """A train theorem and two subtrees of its proof with distinct statements (subgoals a search proved)."""
    for theorem in ws.train_theorems():
        tree = tree_from_proof(ws.db, theorem, ws.kernel)
        inner = {node.statement: node for node in tree.nodes() if node is not tree and node.size >= 2}
        if len(inner) >= 2:
            first, second = sorted(inner.values(), key=lambda node: -node.size)[:2]
            return theorem, first, second
    raise AssertionError("no train theorem with two inner steps")


def test_each_solved_subgoal_is_judged_on_its_own(tmp_path: Path, caplog) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        job.formats = ("backward", "forward")
        ws = job.rt.workspace
        theorem, sub, other = two_inner_steps(ws)
        test = next(t for t in ws.split("test") if tree_from_proof(ws.db, t, ws.kernel).size >= 2)
        held_out = tree_from_proof(ws.db, test, ws.kernel)
        record = with_subgoals(prover_only_result(job, theorem, None), held_out, corrupt(sub), sub, sub, other)
        with caplog.at_level(logging.WARNING, logger="jobs.prover_trainer"):
            examples = prover_trainer.subgoal_examples(job, record, theorem)
        expected = []
        for tree, index in ((sub, 3), (other, 5)):
            made = prover_trainer.subgoal_theorem(ws.db, theorem, tree.statement, tree, f"{theorem.label}.s{index}")
            for fmt in ("backward", "forward"):
                expected += tree_examples(job.codec, ws.db, made, tree, fmt, exclude=ws.held_out_statements)  # type: ignore[arg-type]  # set by resume
        assert examples == expected  # each good subgoal once, in both formats, after a bad one
        counters = job.rt.counters
        assert (counters["subgoals_held_out"], counters["subgoals_rejected"]) == (1, 1)
        assert (counters["duplicate_proofs_skipped"], counters["subgoal_theorems"]) == (1, 2)
        [warning] = caplog.records
        message = warning.getMessage()
        assert message.startswith(f"{job.rt.name}: record {record.id}: solved subgoal 2 rejected: ")
        assert f", label {theorem.label}.s2: proof step " in message  # the subgoal theorem is named by its place


def test_a_subgoals_steps_that_prove_a_held_out_statement_are_not_learned(tmp_path: Path, monkeypatch) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        theorem, sub, _ = two_inner_steps(ws)
        record = with_subgoals(prover_only_result(job, theorem, None), sub)
        everything = prover_trainer.subgoal_examples(job, record, theorem)
        step = next(node.statement for node in sub.nodes() if node is not sub and node.children)
        monkeypatch.setitem(vars(ws), "held_out_statements", ws.held_out_statements | {step})
        _trainer.reseed(job, 0)  # forget the subgoal
        assert 0 < len(prover_trainer.subgoal_examples(job, record, theorem)) < len(everything)


def test_hindsight_asks_for_the_configured_theorems_and_keeps_each_example_once(tmp_path: Path, monkeypatch) -> None:
    with trainer_job(tmp_path, "tiny", "prover_trainer.hindsight_max_nodes=3") as job:
        job.spec = dataclasses.replace(job.spec, max_source_tokens=41)
        asked: list[dict[str, Any]] = []

        def twice(*args: Any, **kwargs: Any) -> list[Any]:
            asked.append(kwargs)
            found = hindsight_theorems(*args, **kwargs)
            return found + found  # every theorem twice: its examples must still come once

        generation = scripted_record(job.rt.workspace)
        record = dataclasses.replace(sample_result(generation), for_prover_trainer=True)
        once = prover_trainer.hindsight_examples(job, record, [])
        monkeypatch.setattr(prover_trainer, "hindsight_theorems", twice)
        assert once and prover_trainer.hindsight_examples(job, record, []) == once
        assert (asked[0]["max_nodes"], asked[0]["max_statement_tokens"]) == (3, 20)  # half the source tokens


def test_the_critic_steps_only_when_it_has_targets(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        _trainer.enable_critic(job, 0.01)
        critic = job.critic
        assert critic is not None
        prover_trainer.critic_train(job)  # nothing to learn yet
        job.critic = None
        job.critic_buffer.add("s", (0, 0), {"critic": [(("|-", "ph"), 1.0)]})  # type: ignore[union-attr]  # enabled above
        prover_trainer.critic_train(job)  # no critic: no step
        assert critic.steps == 0
        job.critic = critic
        prover_trainer.critic_train(job)
        assert critic.steps == 1


def test_main_runs_rank_zero_by_default_until_its_minutes_are_up(tmp_path: Path) -> None:
    root = experiment(tmp_path / "exp", "tiny", *FAST)
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert prover_trainer.main(root.url, minutes=0.01) == "finished"  # no step bound: the minutes end it
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    beat = heartbeat(root)
    assert (beat["rank"], beat["status"]) == (0, "finished")
    latest = CheckpointStore(root, "prover").latest()
    assert latest is not None and latest.meta["step"] == beat["step"]  # whatever it trained, committed


def test_a_subgoal_is_checked_in_its_roots_context(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        root = min(ws.train_theorems(), key=lambda t: t.number)
        later = next(
            (t, tree)
            for t in ws.train_theorems()
            if not t.essential and t.statement not in ws.held_out_statements
            for tree in [tree_from_proof(ws.db, t, ws.kernel)]
            if any(ws.db.labels[node.label].number > root.number for node in tree.nodes())
        )
        theorem, tree = later  # a proof citing what comes after the root: no proof of the root could
        record = with_subgoals(prover_only_result(job, root, None), tree)
        assert prover_trainer.subgoal_examples(job, record, root) == []
        assert job.rt.counters["subgoals_rejected"] == 1
        placed = prover_trainer.subgoal_theorem(ws.db, theorem, tree.statement, tree, "placed")
        assert placed.number == theorem.number  # a database root's own place
