"""Data-parallel trainer groups: record ownership, the backend, gradient averaging, the group's cursor,
and a real group of two gloo ranks (processes) that share one prover actor's stream by record."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from configs.databases import resolve_database
from configs.presets import preset
from core.storage import CheckpointStore, ExperimentRoot, group_cursor, read_shard, stream_bounds
from jobs import status
from jobs._group import SHARING, Group, backend_for
from jobs._trainer import committed_cursor

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("group_worker.py")


# --- which rank takes which record --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3])
def test_every_record_belongs_to_exactly_one_rank(size: int) -> None:
    ranks = [Group(rank, size) for rank in range(size)]
    positions = [
        (stream, seq, index)
        for stream in ("prover-actor-00", "prover-actor-01")
        for seq in range(20)
        for index in range(8)
    ]
    owners = [[g.rank for g in ranks if g.owns(*p)] for p in positions]
    assert all(len(o) == 1 for o in owners)
    shares = [sum(o == [rank] for o in owners) for rank in range(size)]
    assert all(share > len(positions) / (2 * size) for share in shares), shares  # every rank gets a fair share


def test_ownership_is_stable_and_a_group_of_one_owns_everything() -> None:
    first, again = Group(1, 2), Group(1, 2)
    positions = [("prover-actor-00", seq, index) for seq in range(10) for index in range(4)]
    assert [first.owns(*p) for p in positions] == [again.owns(*p) for p in positions]  # a restarted rank
    assert all(Group(0, 1).owns(*p) for p in positions)
    assert not all(first.owns(*p) for p in positions)  # the twin: a rank of two does not take everything


def test_the_backend_follows_the_device_of_the_tensors() -> None:
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"
    assert Group.from_environment(0, 1).device == torch.device("cpu")  # a group of one joins nothing


def test_grad_sync_averages_and_gives_every_parameter_a_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    def all_reduce(tensor: torch.Tensor, op: Any = None) -> None:  # the other rank's gradient is 3 everywhere
        tensor += 3.0

    monkeypatch.setattr("jobs._group.dist.all_reduce", all_reduce)
    model = torch.nn.Linear(2, 1)
    model.weight.grad = torch.ones_like(model.weight)  # the bias got no gradient on this rank
    Group(0, 2).grad_sync(model)
    assert torch.equal(model.weight.grad, torch.full_like(model.weight, 2.0))
    assert torch.equal(model.bias.grad, torch.full_like(model.bias, 1.5))  # zeros joined the reduction


# --- what a group has committed ------------------------------------------------------------------------------


def test_a_group_sharing_by_record_has_committed_up_to_its_slowest_rank() -> None:
    meta = {"sharing": SHARING, "cursors": {"0": {"a": 5, "b": 2}, "1": {"a": 3}}}
    assert group_cursor(meta).to_json() == {"a": 3, "b": 0}
    assert status.merged_trainer_cursor(meta) == {"a": 3, "b": 0}


def test_a_group_that_divided_its_streams_joins_its_cursors() -> None:
    meta = {"cursors": {"0": {"a": 5}, "1": {"b": 2}}}  # the twin: written before sharing by record
    assert group_cursor(meta).to_json() == {"a": 5, "b": 2}


def test_a_rank_resuming_a_divided_group_starts_streams_it_never_read_where_their_reader_stopped() -> None:
    divided = {"cursors": {"0": {"a": 5}, "1": {"b": 2}}}
    assert committed_cursor(divided, 0, 2).to_json() == {"a": 5, "b": 2}
    shared = {"sharing": SHARING, "cursors": {"0": {"a": 5}, "1": {"a": 7, "b": 2}}}
    assert committed_cursor(shared, 0, 2).to_json() == {"a": 5}


# --- two ranks as processes ----------------------------------------------------------------------------------


FAST = [
    "generator_trainer.bootstrap_steps=5",
    "prover_trainer.bootstrap_steps=5",
    "prover_trainer.count=2",
    "prover_trainer.replay_min=1",
    "prover_trainer.checkpoint_every_steps=100",
    "prover_trainer.checkpoint_every_minutes=10",
    "generator_actor.mix=1,generator;1,dataset",
    "generator_actor.shard_records=2",
    "prover_actor.shard_records=2",
    "generator_actor.shard_seconds=1",
    "prover_actor.shard_seconds=1",
    "prover_trainer.device=cpu",
    "database.path=embedded",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def produced_results(root: ExperimentRoot, records: int) -> list[tuple[str, int, int]]:
    """Version 0 of both models, then ``records`` results of one prover actor; their positions."""
    import importlib

    from jobs._role import Runtime
    from jobs._version_zero import ensure_version_zero, prover_formats

    config = status.ExperimentConfig.from_dict(root.config)
    rt = Runtime.start("prover_trainer", root.url, 0, 1.0)
    formats = prover_formats(config.prover_trainer.examples, config.prover_actor.search.prover)
    ensure_version_zero(
        rt, "prover", dataclasses.replace(config.prover_trainer, count=1), config.prover_model, formats
    )  # the group's rank 0 would do this itself; here the actors need it first
    rt.finish()
    for role, bounds in (
        ("generator_trainer", {"max_steps": 0}),
        ("generator_actor", {"max_records": records}),
        ("prover_actor", {"max_records": records}),
    ):
        assert importlib.import_module(f"jobs.{role}").main(root.url, rank=0, minutes=1.0, **bounds) == "finished"
    low, end = stream_bounds(root, "prover-actor-00")
    return [
        ("prover-actor-00", seq, index)
        for seq in range(low, end)
        for index in range(len(read_shard(root, "prover-actor-00", seq)[1]))
    ]


@pytest.mark.slow
def test_two_gloo_ranks_share_one_producer_by_record_and_hold_equal_weights(tmp_path: Path) -> None:
    config = preset("tiny").with_overrides(FAST)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), config.to_dict())
    positions = produced_results(root, records=8)
    assert len(positions) >= 4
    env = dict(
        os.environ,
        ADVPROVER_THREADS="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        PYTHONPATH=str(PROJECT_ROOT),
    )
    ranks = [
        subprocess.Popen(
            [sys.executable, str(WORKER), root.url, str(rank), "3"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = []
    for process in ranks:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    first, second = outputs
    assert first["status"] == second["status"] == "finished"
    assert first["step"] == second["step"] == 3 and first["device"] == second["device"] == "cpu"
    assert first["digest"] == second["digest"]  # averaged gradients: both ranks hold the same weights
    taken = [{tuple(p) for p in out["taken"]} for out in outputs]
    assert taken[0] and taken[1]  # both ranks learn from the one producer
    assert not taken[0] & taken[1] and taken[0] | taken[1] == set(positions)  # each record once
    assert [out["records_in"] for out in outputs] == [len(t) for t in taken]
    latest = CheckpointStore(root, "prover").latest()
    end = stream_bounds(root, "prover-actor-00")[1]
    assert latest.meta["sharing"] == SHARING
    assert latest.meta["cursors"] == {"0": {"prover-actor-00": end}, "1": {"prover-actor-00": end}}
    assert status.merged_trainer_cursor(latest.meta) == {"prover-actor-00": end}
