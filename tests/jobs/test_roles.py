"""The five roles on prepared experiment roots (tiny models, the embedded database, few steps).

- each role runs standalone through its CLI, with its bounds, and refuses a rank it does not have;
- all roles of the adversarial preset run as separate processes: versions advance on both sides, actors
  hot-reload them, records flow and are routed per the flags, cursors commit, and a prover actor killed
  with SIGKILL and restarted resumes without loss or duplicates;
- every setup preset runs and routes as documented (roles called in-process, one after the other);
- test hygiene: no test-split theorem or its proof enters training or generator goals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.adversarial.topology import prover_learns_from, routed_to_prover_trainer
from core.storage import CheckpointStore, ExperimentRoot, read_shard, stream_bounds
from jobs import status
from tests.roles import experiment, run_role

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAST = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_trainer.checkpoint_every_steps=5",
    "prover_trainer.checkpoint_every_steps=5",
    "generator_trainer.checkpoint_every_minutes=0.1",
    "prover_trainer.checkpoint_every_minutes=0.1",
    "generator_actor.mix=1,generator;1,dataset",
    "generator_actor.shard_records=2",
    "prover_actor.shard_records=2",
    "generator_actor.shard_seconds=2",
    "prover_actor.shard_seconds=2",
    "evaluator.max_theorems=3",
    "database.path=embedded",
]


def prepared_root(path: Path, name: str, *extra: str) -> ExperimentRoot:
    return experiment(path, name, *FAST, *extra)


def records(root: ExperimentRoot, stream: str) -> list[dict[str, Any]]:
    low, end = stream_bounds(root, stream)
    return [r for seq in range(low, end) for r in read_shard(root, stream, seq)[1]]


def cli(role: str, root: ExperimentRoot, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"jobs.{role}", "--exp", root.url, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=timeout,
        env=dict(os.environ, ADVPROVER_THREADS="1"),
    )


def assert_reconciled(root: ExperimentRoot) -> dict[str, Any]:
    report = status.collect(root)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed, failed
    return report


def assert_routed(root: ExperimentRoot) -> int:
    """Every result carries the routing flags its outcome and the configuration call for."""
    config = status.ExperimentConfig.from_dict(root.config)
    routing = config.routing
    learns = prover_learns_from(config.setup, config.prover_trainer.learn_from_own_proofs)
    checked = 0
    for stream in root.streams("prover-actor-"):
        for record in records(root, stream):
            from_generator = record["generation"]["source"] == "generator"
            assert record["for_prover_trainer"] == routed_to_prover_trainer(
                learns,
                proved=record["proved"],
                send_only_failed=routing.prover_send_only_failed,
                solved_subgoals=bool(record.get("solved_subgoals")),
            )
            assert record["for_generator_trainer"] == (
                from_generator and (not record["proved"] or not routing.generator_send_only_failed)
            )
            checked += 1
    return checked


def assert_hygienic(root: ExperimentRoot) -> int:
    """No generation record is a held-out theorem or starts from one (their proofs would reach training), nor
    any goal a prover actor took from the train split itself (prover-only)."""
    from core.adversarial.workspace import Workspace

    database = status.ExperimentConfig.from_dict(root.config).database
    held_out = Workspace.load(
        database.path, stop_at=database.stop_at, splits=database.splits, split_salt=database.split_salt
    ).held_out_labels
    checked = 0
    for stream in root.streams("generator-actor-"):
        for record in records(root, stream):
            if record["source"] == "dataset":
                assert record["goal"]["label"] not in held_out, record["goal"]
            else:
                assert (record.get("stats") or {}).get("started_from") not in held_out, record["stats"]
            checked += 1
    for stream in root.streams("prover-actor-"):
        for record in records(root, stream):
            assert record["generation"]["goal"]["label"] not in held_out, record["generation"]["goal"]
    return checked


# --- each role through its CLI -----------------------------------------------------------------------------


@pytest.mark.slow
def test_each_role_runs_standalone_through_its_cli(tmp_path: Path) -> None:
    root = prepared_root(tmp_path / "exp", "tiny")
    done = cli("prover_trainer", root, "--rank", "0", "--max-steps", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    assert CheckpointStore(root, "prover").latest().version == 0
    assert cli("generator_trainer", root, "--max-steps", "0").returncode == 0
    done = cli("generator_actor", root, "--max-records", "4", "--minutes", "1.5")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(records(root, "generator-actor-00-to-00")) == 4
    done = cli("prover_actor", root, "--max-records", "4", "--minutes", "1.5")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(records(root, "prover-actor-00")) == 4
    for role in ("prover_trainer", "generator_trainer"):
        done = cli(role, root, "--max-steps", "5")
        assert done.returncode == 0, done.stderr[-2000:]
    prover = CheckpointStore(root, "prover").latest()
    assert prover.version >= 1 and prover.meta["cursors"]["0"] == {"prover-actor-00": 2}  # committed the results
    generator = CheckpointStore(root, "generator").latest()
    assert generator.version >= 1 and generator.meta["cursors"]["0"] == {"prover-actor-00": 2}
    done = cli("evaluator", root, "--max-records", "3", "--minutes", "1")  # the baseline, then v0, then the latest
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["version"] for r in records(root, "evaluator-00")] == ["baseline", 0, prover.version]
    assert_routed(root)
    assert_reconciled(root)
    # the rejection twins: a rank this experiment does not run, a flag no role has
    done = cli("prover_actor", root, "--rank", "1", "--max-records", "1")
    assert done.returncode == 1 and "rank 1 has nothing to do" in done.stderr and "Traceback" not in done.stderr
    done = cli("generator_actor", root, "--max-steps", "3")
    assert done.returncode == 2 and "unknown flag --max-steps" in done.stderr


# --- all adversarial roles as processes, one killed and restarted --------------------------------------------


@pytest.mark.slow
def test_adversarial_roles_as_processes_with_a_kill_and_restart(tmp_path: Path) -> None:
    root = prepared_root(tmp_path / "exp", "adversarial")
    minutes = 0.75
    start = time.time()
    logs = {
        role: open(tmp_path / f"{role}.log", "w")  # noqa: SIM115 - closed after the processes end
        for role in ("generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator")
    }

    def spawn(role: str, remaining: float) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", f"jobs.{role}", "--exp", root.url, "--minutes", f"{remaining:.3f}"],
            stdout=logs[role],
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=dict(os.environ, ADVPROVER_THREADS="1"),
        )

    processes = {role: spawn(role, minutes) for role in logs}
    killed = False
    try:
        while any(p.poll() is None for p in processes.values()) and time.time() - start < 60 * minutes + 90:
            if not killed and time.time() - start > 20 and records_present(root):
                processes["prover_actor"].send_signal(signal.SIGKILL)
                processes["prover_actor"].wait()
                processes["prover_actor"] = spawn("prover_actor", max(minutes - (time.time() - start) / 60, 0.15))
                killed = True
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        for log in logs.values():
            log.close()
    text = {role: (tmp_path / f"{role}.log").read_text() for role in logs}
    assert killed, text["prover_actor"][-2000:]
    for role, process in processes.items():
        assert process.returncode == 0, f"{role}:\n{text[role][-2000:]}"
    assert CheckpointStore(root, "prover").latest().version >= 2
    assert CheckpointStore(root, "generator").latest().version >= 2
    assert "hot reload: prover checkpoint" in text["prover_actor"]
    assert "hot reload: generator checkpoint" in text["generator_actor"]
    assert assert_routed(root) >= 4
    assert assert_hygienic(root) >= 4
    report = assert_reconciled(root)  # one result per consumed generation, across the kill
    assert report["checkpoints"]["prover"]["cursor"].get("prover-actor-00", 0) >= 1
    assert report["checkpoints"]["generator"]["cursor"].get("prover-actor-00", 0) >= 1
    assert len(report["evaluations"]) >= 2


def records_present(root: ExperimentRoot) -> bool:
    return stream_bounds(root, "prover-actor-00")[1] >= 1


# --- every setup, in-process ----------------------------------------------------------------------------------


def produce(root: ExperimentRoot, actors: bool = True) -> None:
    if actors:
        assert run_role("generator_actor", root, max_records=2) == "finished"
    config = status.ExperimentConfig.from_dict(root.config)
    if config.setup == "prover-only" or (
        actors and config.prover_actor.count
    ):  # the prover actor takes its goals from the train split
        assert run_role("prover_actor", root, max_records=2) == "finished"


SETUPS = [
    "fixed_prover",
    "fixed_generator",
    "generator_only",
    "generator_reward",
    "supervised_only",
    "prover_only",
    "mm_adv_fwd_debug_local",
    "mm_adv_bwd_debug_local",
    "mm_gen_only_debug_local",
    "mm_adv_fwd_no_prover_reward_debug_local",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SETUPS)
def test_each_setup_runs_and_routes_as_documented(name: str, tmp_path: Path) -> None:
    root = prepared_root(tmp_path / "exp", name)
    config = status.ExperimentConfig.from_dict(root.config)
    trainers = [r for r in ("prover_trainer", "generator_trainer") if config.role_count(r)]
    for role in trainers:
        assert run_role(role, root, max_steps=0) == "finished"  # version 0
    produce(root, actors=bool(config.generator_actor.count))
    for role in trainers:
        assert run_role(role, root, max_steps=3) == "finished"
    prover, generator = CheckpointStore(root, "prover"), CheckpointStore(root, "generator")
    if name == "fixed_prover":  # the prover never learns: prover actor 0 published version 0 itself
        assert prover.versions() == [0] and prover.latest().meta["trainer"] == "prover-actor-00"
        assert generator.latest().meta["cursors"]["0"] == {"prover-actor-00": 1}
    elif name == "fixed_generator":  # the generator never learns: generator actor 0 published version 0
        assert generator.versions() == [0] and generator.latest().meta["trainer"] == "generator-actor-00"
        assert prover.latest().meta["cursors"]["0"] == {"prover-actor-00": 1}
    elif name in ("generator_only", "mm_gen_only_debug_local"):
        # no prover: the generator trainer reads the generation stream
        assert root.streams() == ["generator-actor-00-to-00"] and prover.latest() is None
        assert generator.latest().meta["cursors"]["0"] == {"generator-actor-00-to-00": 1}
    elif name in ("generator_reward", "mm_adv_fwd_no_prover_reward_debug_local"):
        # generator on heuristic reward (generations), prover on the results
        assert generator.latest().meta["cursors"]["0"] == {"generator-actor-00-to-00": 1}
        assert prover.latest().meta["cursors"]["0"] == {"prover-actor-00": 1}
    elif name == "supervised_only":  # no generation at all
        assert root.streams() == [] and generator.latest() is None and prover.latest().version >= 1
        assert run_role("evaluator", root, max_records=3) == "finished"
        assert [r["version"] for r in records(root, "evaluator-00")] == ["baseline", 0, prover.latest().version]
    elif name == "prover_only":  # no generator: the prover searches the train split, learns its own proofs
        assert root.streams() == ["prover-actor-00"] and generator.latest() is None
        assert prover.latest().meta["cursors"]["0"] == {"prover-actor-00": 1}
        proved = {r["generation"]["goal"]["label"] for r in records(root, "prover-actor-00") if r["proved"]}
        assert prover.latest().meta["counters"]["buffer"] == len(proved)
    elif name == "mm_adv_fwd_debug_local":  # the forward prover, trained on forward examples
        assert prover.latest().meta.get("formats") == ["forward"]
        results = records(root, "prover-actor-00")
        assert results and all(r["search"]["prover"] == "forward-greedy" for r in results)
    elif name == "mm_adv_bwd_debug_local":  # the backward best-first prover, trained on backward examples
        assert prover.latest().meta.get("formats") == ["backward"]
        results = records(root, "prover-actor-00")
        assert results and all(r["search"]["prover"] == "backward" for r in results)
    assert_routed(root)
    assert_hygienic(root)
    assert_reconciled(root)


# --- test hygiene ---------------------------------------------------------------------------------------------


def test_no_test_theorem_enters_training_or_generator_goals(tmp_path: Path) -> None:
    from core.adversarial.generation import TheoremGenerator
    from core.adversarial.records import GenerationRecord, Goal, ResultRecord
    from core.metamath.prooftree import tree_from_proof
    from jobs import _trainer, prover_trainer
    from jobs._role import Runtime
    from jobs._version_zero import publish_version_zero

    root = prepared_root(tmp_path / "exp", "tiny")
    runtime = Runtime.start("prover_trainer", root.url, 0, 0.5)
    ws = runtime.workspace
    held_out = ws.held_out_labels
    assert held_out and not held_out & {a.label for a in ws.train_theorems()}
    # generator goals and dataset records come from the train split only
    generator = TheoremGenerator(ws, None, settings=None, seed=1)  # type: ignore[arg-type]
    drawn = {generator.dataset_theorem()[0].label for _ in range(200)}
    assert not {t.label for t in generator._goal_pool} & held_out  # rollouts start from train hypotheses
    assert drawn and not drawn & held_out
    assert held_out <= ws.generator_forbidden
    # the prover trainer refuses a held-out theorem and its proof, and accepts a train theorem (the twin)
    config = runtime.config
    job = _trainer.new_job(runtime, "prover", config.prover_trainer, config.prover_model, ("backward",))
    publish_version_zero(runtime, "prover", config.prover_trainer, config.prover_model, ("backward",))
    _trainer.resume(job)
    test_theorem = ws.split("test")[0]
    train_theorem = ws.train_theorems()[0]
    for theorem, accepted in ((test_theorem, False), (train_theorem, True)):
        record = GenerationRecord.of_database(theorem, tree_from_proof(ws.db, theorem, ws.kernel), source_stream="x")
        result = ResultRecord(
            id=record.id,
            generation=record,
            prover_version=0,
            proved=False,
            attempts=1,
            successes=0,
            proof=None,
            search={},
            reward=1.0,
            for_generator_trainer=False,
            for_prover_trainer=True,
        )
        assert (prover_trainer.derive(job, result) is not None) == accepted, theorem.label
    assert Goal.of(test_theorem).label in held_out
    runtime.finish()
