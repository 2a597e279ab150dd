"""The goal critic learned from search (``prover_trainer.critic``):

- a search reports critic targets; a result record carries them (an older record without them still reads);
- the prover trainer, given result records with known outcomes, moves the critic's value of the proved goals
  up and of the failed goals down, whatever the records' routing, never from a held-out statement;
- it publishes the critic inside the prover version and resumes it; with ``prover_trainer.critic=false`` it
  publishes none;
- end to end (prover-only): the prover actor's records carry targets, the trainer's version holds a critic,
  and the prover actor and the evaluator search with it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from core.adversarial.records import CriticTarget, ResultRecord
from core.adversarial.topology import OWN_PROOFS
from core.models.checkpoint import load_version
from core.models.critic import GoalCritic
from core.search.runner import SearchResult
from core.storage import CheckpointStore
from jobs import _trainer, evaluator, prover_actor, prover_trainer
from tests.jobs.test_prover_only import result_of, trainer_job
from tests.jobs.test_roles import prepared_root, records
from tests.roles import run_role


def outcomes(job: Any) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Distinct statements of train theorems: four as proved goals, four others as failed ones."""
    statements = list(dict.fromkeys(t.statement for t in job.rt.workspace.train_theorems()))[:8]
    return statements[:4], statements[4:]


def with_targets(record: ResultRecord, proved: list, failed: list, **fields: Any) -> ResultRecord:
    targets = [CriticTarget(" ".join(s), 1.0, 3) for s in proved] + [CriticTarget(" ".join(s), 0.0, 5) for s in failed]
    return dataclasses.replace(record, critic_examples=tuple(targets), **fields)


def test_a_search_reports_critic_targets_and_a_record_carries_them(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        theorem = job.rt.workspace.train_theorems()[0]
        goal = tuple(theorem.statement)
        tries = [
            SearchResult(theorem.label, "htps", critic_examples=[(goal, 0.0, 3), (("|-", "ph"), 1.0, 1)]),
            SearchResult(theorem.label, "htps", critic_examples=[(goal, 1.0, 1)]),
        ]
        record = ResultRecord.of_attempts(
            result_of(job, theorem, None).generation,
            tries,
            prover_version=0,
            reward=0.0,
            generator_send_only_failed=False,
            prover_send_only_failed=True,
            prover_learns=OWN_PROOFS,
        )
        by_goal = {t.statement: t for t in record.critic_examples}
        assert by_goal[" ".join(goal)] == CriticTarget(" ".join(goal), 0.25, 4)  # weighted by visits
        assert by_goal["|- ph"].target == 1.0 and not record.for_prover_trainer  # no change to the routing
        assert ResultRecord.parse(record.to_json(), stream="s") == record
        old = {k: v for k, v in record.to_json().items() if k != "critic_examples"}
        assert ResultRecord.parse(old, stream="s", version=1).critic_examples == ()  # an older writer's record
        bad = record.to_json()
        bad["critic_examples"][0]["target"] = 1.5
        with pytest.raises(Exception, match=r"critic_examples'\[0\], field 'target': should be in \[0, 1\]"):
            ResultRecord.parse(bad, stream="s")


def test_the_trainer_moves_the_critic_up_for_proved_goals_and_down_for_failed_ones(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        _trainer.enable_critic(job, job.section.critic_lr)
        proved, failed = outcomes(job)
        theorem = job.rt.workspace.train_theorems()[0]
        routed = with_targets(result_of(job, theorem, None), proved[:2], failed[:2])
        unrouted = with_targets(result_of(job, theorem, None), proved[2:], failed[2:], for_prover_trainer=False)
        for index, record in enumerate([routed, unrouted]):
            _trainer.absorb(job, prover_trainer.RULES, "prover-actor-00", (0, index), record)
        assert job.critic is not None and job.critic_buffer is not None and len(job.critic_buffer) == 2
        before = job.critic.critic.values(proved + failed)
        for _ in range(200):
            prover_trainer.critic_train(job)
        after = job.critic.critic.values(proved + failed)
        assert all(a > b for a, b in zip(after[:4], before[:4])), (before, after)  # proved goals: up
        assert all(a < b for a, b in zip(after[4:], before[4:])), (before, after)  # failed goals: down
        assert job.critic.steps == 200


def test_the_trainer_never_learns_a_held_out_statement(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        _trainer.enable_critic(job, job.section.critic_lr)
        ws = job.rt.workspace
        proved, _ = outcomes(job)
        test_statement = ws.split("test")[0].statement
        record = with_targets(result_of(job, ws.train_theorems()[0], None), [proved[0], test_statement], [])
        assert prover_trainer.critic_targets(job, record) == [(tuple(proved[0]), 1.0)]
        assert job.rt.counters["critic_held_out"] == 1
        held_out_goal = result_of(job, ws.split("test")[0], None)
        assert prover_trainer.critic_targets(job, with_targets(held_out_goal, proved, [])) == []
        assert job.rt.counters["critic_held_out"] == 5


def test_the_critic_is_published_with_the_prover_and_resumed(tmp_path: Path) -> None:
    with trainer_job(tmp_path, "prover_only") as job:
        _trainer.commit(job, None)  # no critic step yet: no critic published
        assert load_version(job.store)[0].critic is None
        _trainer.enable_critic(job, job.section.critic_lr)
        proved, failed = outcomes(job)
        record = with_targets(result_of(job, job.rt.workspace.train_theorems()[0], None), proved, failed)
        _trainer.absorb(job, prover_trainer.RULES, "prover-actor-00", (0, 0), record)
        for _ in range(3):
            prover_trainer.critic_train(job)
        _trainer.commit(job, None)
        loaded, _ = load_version(job.store)
        assert job.critic is not None and loaded.critic is not None
        assert loaded.critic.values(proved) == pytest.approx(job.critic.critic.values(proved))
        fresh = _trainer.new_job(job.rt, "prover", job.section, job.spec, job.formats)
        _trainer.enable_critic(fresh, job.section.critic_lr)
        _trainer.resume(fresh)
        assert fresh.critic is not None and fresh.critic.steps == 3
        assert fresh.critic.critic.values(proved) == pytest.approx(job.critic.critic.values(proved))


def test_without_the_critic_setting_the_trainer_learns_and_publishes_none(tmp_path: Path) -> None:
    root = prepared_root(tmp_path / "exp", "prover_only", "prover_trainer.critic=false",
                         "prover_actor.search.batch_goals=4")  # fmt: skip
    assert run_role("prover_trainer", root, max_steps=0) == "finished"
    assert run_role("prover_actor", root, max_records=4) == "finished"
    assert not any(r.get("critic_examples") for r in records(root, "prover-actor-00"))
    assert run_role("prover_trainer", root, max_steps=2) == "finished"
    assert load_version(CheckpointStore(root, "prover"))[0].critic is None


def test_end_to_end_the_actor_and_evaluator_search_with_the_published_critic(tmp_path: Path, monkeypatch) -> None:
    root = prepared_root(tmp_path / "exp", "prover_only", "prover_actor.search.batch_goals=4",
                         "evaluator.max_theorems=2")  # fmt: skip
    assert run_role("prover_trainer", root, max_steps=0) == "finished"  # version 0: no critic yet
    searched: list[Any] = []
    prove = prover_actor.prove_theorems

    def spy(*args: Any, **kwargs: Any) -> list[SearchResult]:
        searched.append((kwargs["critic"], kwargs["max_critic_examples"]))
        return prove(*args, **kwargs)

    monkeypatch.setattr(prover_actor, "prove_theorems", spy)
    assert run_role("prover_actor", root, max_records=4) == "finished"
    assert searched == [(None, root_config(root)["prover_trainer"]["critic_max_examples"])]
    results = records(root, "prover-actor-00")
    assert all(r["critic_examples"] for r in results)  # every search reports targets, its root first
    assert all(r["critic_examples"][0]["statement"] == r["generation"]["goal"]["statement"] for r in results)
    assert run_role("prover_trainer", root, max_steps=2) == "finished"
    published = load_version(CheckpointStore(root, "prover"))[0].critic
    assert isinstance(published, GoalCritic)

    assert run_role("prover_actor", root, max_records=4) == "finished"
    assert isinstance(searched[-1][0], GoalCritic)  # the actor loaded it with the policy
    evaluated: list[Any] = []
    evaluate = evaluator.evaluate

    def spy_evaluate(*args: Any, **kwargs: Any) -> dict[str, Any]:
        evaluated.append(kwargs["critic"])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluator, "evaluate", spy_evaluate)
    assert run_role("evaluator", root, max_records=3) == "finished"  # the baseline, version 0, the newest
    assert evaluated[0] is None and isinstance(evaluated[-1], GoalCritic)
    assert [r["critic"] for r in records(root, "evaluator-00")][-1] is True


def root_config(root: Any) -> dict[str, Any]:
    return root.config
