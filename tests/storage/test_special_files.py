"""Special files planted where the protocol expects regular ones are refused by name, never read forever.

*Local only*: FIFOs and device links exist on local and NFS folders, not on ``memory://``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import StorageError
from core.storage import CheckpointStore, ExperimentRoot, ShardWriter, StreamReader
from core.storage.shards import shard_path

from .helpers import CONFIG


@pytest.fixture
def local_root(tmp_path: Path) -> ExperimentRoot:
    return ExperimentRoot.create_or_open(str(tmp_path / "exp"), CONFIG)


def _fill(root: ExperimentRoot, shards: int) -> None:
    writer = ShardWriter(root, "a", max_records=1, max_age_s=60)
    for i in range(shards):
        writer.append({"i": i})


def test_a_fifo_in_place_of_a_shard_is_refused_not_waited_on(local_root: ExperimentRoot) -> None:
    _fill(local_root, 1)
    os.mkfifo(local_root.backend.location(shard_path("a", 1)))
    reader = StreamReader(local_root, ["a"])
    assert [b.seq for b in reader.poll(max_shards=1)] == [0]
    with pytest.raises(StorageError, match=r"000000000001.zst is not a regular file .*move it out"):
        reader.poll()  # would block forever in open() without the check


def test_a_link_to_a_device_in_place_of_a_heartbeat_or_config_is_refused(local_root: ExperimentRoot) -> None:
    os.makedirs(local_root.backend.location("heartbeats"), exist_ok=True)
    os.symlink("/dev/zero", local_root.backend.location("heartbeats/x-0.json"))
    with pytest.raises(StorageError, match="x-0.json is not a regular file"):
        local_root.backend.read("heartbeats/x-0.json")


def test_regular_files_and_links_to_them_are_read(local_root: ExperimentRoot, tmp_path: Path) -> None:
    _fill(local_root, 2)
    target = tmp_path / "elsewhere.zst"
    target.write_bytes(local_root.backend.read(shard_path("a", 1)) or b"")
    os.unlink(local_root.backend.location(shard_path("a", 1)))
    os.symlink(target, local_root.backend.location(shard_path("a", 1)))
    assert [b.seq for b in StreamReader(local_root, ["a"]).poll()] == [0, 1]


def test_a_fifo_in_place_of_checkpoint_weights_is_refused(local_root: ExperimentRoot) -> None:
    import torch

    store = CheckpointStore(local_root, "prover")
    info = store.publish({"w": torch.zeros(2)}, {"step": 1})
    weights = info.path
    os.unlink(weights)
    os.mkfifo(weights)
    with pytest.raises(StorageError, match="truncated|not a regular file"):  # a clear error, not a hang
        store.load()
