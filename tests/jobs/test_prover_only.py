"""The prover-only setup (expert iteration) and learning from the prover's own proofs.

- the prover actor takes its goals from the train split, in a seeded order per rank and restart, never a
  valid or test theorem;
- the prover trainer's buffer holds exactly the proved train theorems' examples, one example set per
  distinct theorem and proof (across a restart of both jobs); a held-out theorem, a proof the kernel
  refuses and a repeated proof are refused;
- ``prover_trainer.learn_from_own_proofs`` adds the prover's own proofs in the adversarial setups.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import pytest

from core.adversarial.records import GenerationRecord, ResultRecord, SolvedSubgoal
from core.adversarial.topology import OWN_PROOFS, prover_learns_from, routed_to_prover_trainer
from core.adversarial.workspace import Workspace
from core.metamath.database import Assertion
from core.metamath.prooftree import ProofTree, tree_from_proof
from core.models.examples import tree_examples
from core.search.runner import SearchResult
from core.storage import CheckpointStore, stream_bounds
from jobs import _trainer, prover_trainer
from jobs._role import Runtime
from jobs._trainer import TrainerJob
from jobs._version_zero import publish_version_zero
from jobs.prover_actor import train_split_goals
from tests.jobs.test_roles import assert_reconciled, assert_routed, prepared_root, records
from tests.roles import run_role
from tests.search.test_backward import corrupt


@contextmanager
def trainer_job(tmp_path: Path, preset: str, *overrides: str) -> Iterator[TrainerJob]:
    """A prover trainer job of a new experiment, resumed from its version 0 (backward examples)."""
    root = prepared_root(tmp_path / "exp", preset, *overrides)
    runtime = Runtime.start("prover_trainer", root.url, 0, 0.5)
    config = runtime.config
    job = _trainer.new_job(runtime, "prover", config.prover_trainer, config.prover_model, ("backward",))
    publish_version_zero(runtime, "prover", config.prover_trainer, config.prover_model, ("backward",))
    _trainer.resume(job)
    try:
        yield job
    finally:
        runtime.finish()


def result_of(job: TrainerJob, theorem: Assertion, found: Assertion | None, *, generated: bool = False) -> ResultRecord:
    """A result on ``theorem`` whose prover found the database proof of ``found`` (None: it failed)."""
    ws = job.rt.workspace
    generation = GenerationRecord.of_database(theorem, tree_from_proof(ws.db, theorem, ws.kernel), source_stream="x")
    if generated:  # the same goal, as the generator would send it
        generation = dataclasses.replace(generation, source="generator", generator_version=0)
    proof = tree_from_proof(ws.db, found, ws.kernel).to_json() if found is not None else None
    return ResultRecord(
        id=generation.id,
        generation=generation,
        prover_version=0,
        proved=found is not None,
        attempts=1,
        successes=int(found is not None),
        proof=proof,
        search={},
        reward=0.0,
        for_generator_trainer=False,
        for_prover_trainer=True,
    )


def absorbed(job: TrainerJob, record: ResultRecord, index: int) -> int:
    return _trainer.absorb(job, prover_trainer.RULES, "prover-actor-00", (0, index), record)


# --- the goals ------------------------------------------------------------------------------------------------


def test_train_split_goals_are_seeded_shared_among_ranks_and_never_held_out(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        train = ws.train_theorems()
        first = [t.label for t in islice(train_split_goals(ws, 0, 1, seed=7), 2 * len(train))]
        assert first == [t.label for t in islice(train_split_goals(ws, 0, 1, seed=7), 2 * len(train))]
        assert first != [t.label for t in islice(train_split_goals(ws, 0, 1, seed=8), 2 * len(train))]
        assert sorted(first[: len(train)]) == sorted(first[len(train) :]) == sorted(t.label for t in train)
        shares = [set(t.label for t in islice(train_split_goals(ws, rank, 2, seed=7), len(train))) for rank in (0, 1)]
        assert not shares[0] & shares[1] and shares[0] | shares[1] == {t.label for t in train}
        assert not set(first) & ws.held_out_labels


# --- the trainer: what it keeps and what it refuses -----------------------------------------------------------


def test_prover_only_learns_each_found_proof_of_a_train_theorem_once(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        one, two = ws.train_theorems()[:2]
        assert absorbed(job, result_of(job, one, one), 0) == 1  # its own proof: learned
        assert absorbed(job, result_of(job, one, one), 1) == 0  # the same theorem and proof again: refused
        assert absorbed(job, result_of(job, two, two), 2) == 1
        assert absorbed(job, result_of(job, two, None), 3) == 0  # failed: no proof to learn in prover-only
        assert len(job.buffer) == 2 and job.rt.counters["duplicate_proofs_skipped"] == 1
        _trainer.reseed(job, 0)  # a new buffer forgets what it was given
        assert absorbed(job, result_of(job, one, one), 4) == 1


def test_prover_only_refuses_a_held_out_theorem_and_a_proof_of_another_theorem(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        train, test = ws.train_theorems(), ws.split("test")
        other = next(t for t in train[1:] if t.statement != train[0].statement)
        assert absorbed(job, result_of(job, test[0], test[0]), 0) == 0  # a test theorem, even proved
        assert job.rt.counters["held_out_skipped"] == 1
        assert absorbed(job, result_of(job, train[0], other), 1) == 0  # the kernel refuses the wrong proof
        assert job.rt.counters["rejected_records"] == 1
        assert len(job.buffer) == 0
        assert absorbed(job, result_of(job, train[0], train[0]), 2) == 1  # the twin: its own proof


@pytest.mark.parametrize("own", [False, True])
def test_learn_from_own_proofs_adds_the_provers_proofs_of_generated_theorems(own: bool, tmp_path: Path) -> None:
    with trainer_job(tmp_path, "adversarial", f"prover_trainer.learn_from_own_proofs={str(own).lower()}") as job:
        theorem = job.rt.workspace.train_theorems()[0]
        config = job.rt.config
        learns = prover_learns_from(config.setup, own)
        routed = routed_to_prover_trainer(learns, proved=True, send_only_failed=config.routing.prover_send_only_failed)
        proved = dataclasses.replace(result_of(job, theorem, theorem, generated=True), for_prover_trainer=routed)
        assert routed == own  # sent failures only: a proved theorem goes to the trainer for its own proof alone
        assert absorbed(job, proved, 0) == int(own)
        if own:
            assert prover_trainer.proofs_to_learn(config, proved) == [(proved.proof, True)]
        failed = result_of(job, theorem, None, generated=True)
        assert prover_trainer.proofs_to_learn(config, failed) == [(failed.generation.proof, False)]
        assert absorbed(job, failed, 1) == 1


# --- the roles, in-process ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_prover_only_runs_and_its_trainer_holds_exactly_the_proved_train_theorems(tmp_path: Path) -> None:
    root = prepared_root(  # no solved subgoals: the buffer then holds the proved theorems alone
        tmp_path / "exp", "prover_only", "prover_actor.search.batch_goals=4", "prover_actor.max_solved_subgoals=0"
    )
    assert run_role("prover_trainer", root, max_steps=0) == "finished"  # version 0
    for _ in range(2):  # each job twice: the second actor run is a restart (a new order), the trainer resumes
        assert run_role("prover_actor", root, max_records=8) == "finished"
        assert run_role("prover_trainer", root, max_steps=2) == "finished"
    assert root.streams() == ["prover-actor-00"]
    results = records(root, "prover-actor-00")
    database = root.config["database"]
    train = {t.label for t in Workspace.load(database["path"], splits=database["splits"]).train_theorems()}
    assert len(results) == 16 and {r["generation"]["goal"]["label"] for r in results} <= train
    assert all(r["generation"]["source"] == "dataset" for r in results)
    assert not any(r.get("solved_subgoals") for r in results)
    proved = {
        (r["generation"]["goal"]["label"], json.dumps(r["proof"], sort_keys=True)) for r in results if r["proved"]
    }
    assert proved, "the tiny prover proved none of 16 train theorems"
    latest = CheckpointStore(root, "prover").latest()
    assert latest.meta["counters"]["buffer"] == len(proved)  # one example set per distinct theorem and proof
    assert latest.meta["cursors"]["0"] == {"prover-actor-00": stream_bounds(root, "prover-actor-00")[1]}
    assert assert_routed(root) == 16
    assert_reconciled(root)


@pytest.mark.slow
def test_adversarial_prover_trainer_learns_its_own_proofs_when_told(tmp_path: Path) -> None:
    root = prepared_root(tmp_path / "exp", "adversarial", "prover_trainer.learn_from_own_proofs=true")
    for role in ("prover_trainer", "generator_trainer"):
        assert run_role(role, root, max_steps=0) == "finished"
    assert run_role("generator_actor", root, max_records=6) == "finished"
    assert run_role("prover_actor", root, max_records=6) == "finished"
    assert run_role("prover_trainer", root, max_steps=2) == "finished"
    results = records(root, "prover-actor-00")
    assert assert_routed(root) == len(results) == 6 and all(r["for_prover_trainer"] for r in results)
    own = {
        (r["generation"]["goal"]["statement"], json.dumps(r["proof"], sort_keys=True)) for r in results if r["proved"]
    }
    failed = [r for r in results if not r["proved"]]
    assert own and failed, "the tiny prover should prove some and fail some of 6 goals"
    assert CheckpointStore(root, "prover").latest().meta["counters"]["buffer"] == len(own) + len(failed)


# --- the subgoals proved inside failed searches ---------------------------------------------------------------


def inner_step(tree: ProofTree) -> ProofTree:
    """The largest proper subtree of ``tree`` with at least 2 steps (a subgoal a search could have proved)."""
    inner = [node for node in tree.nodes() if node is not tree and node.size >= 2]
    return max(inner, key=lambda node: node.size)


def with_subgoals(record: ResultRecord, *trees: ProofTree) -> ResultRecord:
    subgoals = tuple(SolvedSubgoal(" ".join(t.statement), t.to_json()) for t in trees)
    return dataclasses.replace(record, solved_subgoals=subgoals, for_prover_trainer=True)


def test_prover_only_learns_exactly_the_subgoals_a_failed_search_proved(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        theorem = next(t for t in ws.train_theorems() if tree_from_proof(ws.db, t, ws.kernel).size >= 4)
        sub = inner_step(tree_from_proof(ws.db, theorem, ws.kernel))
        failed = with_subgoals(result_of(job, theorem, None), sub)
        made = prover_trainer.subgoal_theorem(ws.db, theorem, sub.statement, sub, "expected")
        expected = tree_examples(job.codec, ws.db, made, sub, "backward", exclude=ws.held_out_statements)  # type: ignore[arg-type]  # set by resume
        assert expected and prover_trainer.subgoal_examples(job, failed, theorem) == expected
        assert absorbed(job, failed, 0) == 0  # the same subgoal and proof again: a duplicate
        _trainer.reseed(job, 0)
        assert absorbed(job, failed, 1) == 1 and job.rt.counters["subgoal_theorems"] == 2
        assert job.rt.counters["duplicate_proofs_skipped"] == 1


def test_a_corrupted_or_held_out_subgoal_is_never_learned(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        theorem = next(t for t in ws.train_theorems() if tree_from_proof(ws.db, t, ws.kernel).size >= 4)
        sub = inner_step(tree_from_proof(ws.db, theorem, ws.kernel))
        assert absorbed(job, with_subgoals(result_of(job, theorem, None), corrupt(sub)), 0) == 0
        assert job.rt.counters["subgoals_rejected"] == 1
        test = next(t for t in ws.split("test") if tree_from_proof(ws.db, t, ws.kernel).size >= 2)
        held_out = tree_from_proof(ws.db, test, ws.kernel)  # a test statement, proved: still never learned
        assert absorbed(job, with_subgoals(result_of(job, theorem, None), held_out), 1) == 0
        assert job.rt.counters["subgoals_held_out"] == 1 and len(job.buffer) == 0
        assert absorbed(job, with_subgoals(result_of(job, theorem, None), sub), 2) == 1  # the twin: learned


@pytest.mark.parametrize("own", [False, True])
def test_subgoals_are_learned_only_with_own_proof_learning(own: bool, tmp_path: Path) -> None:
    with trainer_job(tmp_path, "adversarial", f"prover_trainer.learn_from_own_proofs={str(own).lower()}") as job:
        ws = job.rt.workspace
        theorem = next(t for t in ws.train_theorems() if tree_from_proof(ws.db, t, ws.kernel).size >= 4)
        failed = with_subgoals(
            result_of(job, theorem, None, generated=True), inner_step(tree_from_proof(ws.db, theorem, ws.kernel))
        )
        assert bool(prover_trainer.subgoal_examples(job, failed, theorem)) == own
        assert job.rt.counters.get("subgoal_theorems", 0) == int(own)


def test_prover_only_routes_a_failure_only_when_it_solved_subgoals() -> None:
    assert not routed_to_prover_trainer(OWN_PROOFS, proved=False, send_only_failed=True)
    assert routed_to_prover_trainer(OWN_PROOFS, proved=False, send_only_failed=True, solved_subgoals=True)


def test_a_failed_result_record_carries_its_searches_distinct_subgoals(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        ws = job.rt.workspace
        theorem = next(t for t in ws.train_theorems() if tree_from_proof(ws.db, t, ws.kernel).size >= 4)
        sub = inner_step(tree_from_proof(ws.db, theorem, ws.kernel))
        tries = [SearchResult(theorem.label, "backward", solved_subgoals=[(sub.statement, sub)]) for _ in range(2)]
        generation = result_of(job, theorem, None).generation
        record = ResultRecord.of_attempts(
            generation,
            tries,
            prover_version=0,
            reward=0.0,
            generator_send_only_failed=False,
            prover_send_only_failed=True,
            prover_learns=OWN_PROOFS,
        )
        assert record.for_prover_trainer and len(record.solved_subgoals) == 1  # two tries, one statement
        assert ResultRecord.parse(record.to_json(), stream="s") == record  # version 1 still
        old = {k: v for k, v in record.to_json().items() if k != "solved_subgoals"}
        assert ResultRecord.parse(old, stream="s", version=1).solved_subgoals == ()  # an older writer's record
        bare = ResultRecord.of_attempts(
            generation,
            [SearchResult(theorem.label, "backward")],
            prover_version=0,
            reward=0.0,
            generator_send_only_failed=False,
            prover_send_only_failed=True,
            prover_learns=OWN_PROOFS,
        )
        assert not bare.for_prover_trainer and bare.solved_subgoals == ()
