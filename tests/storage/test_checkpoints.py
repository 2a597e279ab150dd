"""P13-P16: checkpoints are published weights first, found cheaply, loaded safely, and retained with grace."""

from __future__ import annotations

import json
import time

import pytest
import torch

from core.errors import CheckpointConflictError, CheckpointError, StorageError
from core.storage import (CheckpointStore, ExperimentRoot, load_checkpoint, load_checkpoint_file,
                          save_checkpoint_file)

from .helpers import CountingBackend


def _state(value: float) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.full((2, 3), value), "layer.bias": torch.zeros(2)}


def _publish(store: CheckpointStore, count: int) -> None:
    for step in range(count):
        store.publish(_state(step), {"step": step, "cursor": {"in": step}})


def test_publish_and_load_round_trip(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    assert store.latest() is None and store.versions() == []
    info = store.publish(_state(1.5), {"step": 10, "model": {"dim": 8}, "cursor": {"gen-0": 4}})
    assert info.version == 0 and info.meta["cursor"] == {"gen-0": 4} and info.path.endswith(".pt")
    state, loaded = store.load()
    assert torch.equal(state["layer.weight"], torch.full((2, 3), 1.5)) and loaded == info
    assert store.publish(_state(2.0), {"step": 20}).version == 1
    assert store.versions() == [0, 1] and store.latest().meta == {"step": 20}
    assert torch.equal(store.load(0)[0]["layer.weight"], torch.full((2, 3), 1.5))


def test_weights_come_first_and_metadata_makes_a_version_visible(root: ExperimentRoot,
                                                                 counted: CountingBackend) -> None:
    store = CheckpointStore(root, "prover")
    store.publish(_state(0), {"step": 0})
    created = [path for method, path in counted.log if method == "create"]
    assert created[0].endswith(".pt") and created[1] == "checkpoints/prover/00000000.json"


def test_weights_without_metadata_are_invisible_and_block_nothing(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 1)
    # A publisher killed between its two steps leaves weights for version 1 and no metadata.
    root.backend.create("checkpoints/prover/00000001-deadbeef.pt", b"partial weights")
    assert store.latest().version == 0 and store.versions() == [0]
    assert store.publish(_state(1), {"step": 1}).version == 1
    assert store.load()[1].version == 1


def test_a_second_publisher_of_a_version_fails_and_leaves_it_intact(root: ExperimentRoot) -> None:
    first, second = CheckpointStore(root, "prover"), CheckpointStore(root, "prover")
    first.publish(_state(1), {"by": "first"})
    with pytest.raises(CheckpointConflictError, match="prover: version 0 already exists"):
        second._publish_as(0, _state(2), {"by": "second"})  # a publisher with a stale view of the versions
    assert first.load(0)[1].meta == {"by": "first"}
    assert torch.equal(first.load(0)[0]["layer.weight"], torch.full((2, 3), 1.0))
    assert len([n for n in root.backend.listdir("checkpoints/prover") if n.endswith(".pt")]) == 1


def test_latest_never_trusts_the_hint(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 3)
    hint = "checkpoints/prover/latest.json"
    root.backend.replace(hint, b'{"version": 0}')  # stale
    assert store.latest().version == 2
    root.backend.replace(hint, b'{"version": 9}')  # names no version
    assert store.latest().version == 2
    root.backend.replace(hint, b"garbage")
    assert store.latest().version == 2
    root.backend.remove(hint)
    assert store.latest().version == 2


def test_latest_is_cheap(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 30)
    counter = CountingBackend(root.backend)
    root.backend = counter  # type: ignore[assignment]
    assert CheckpointStore(root, "prover").latest().version == 29
    assert counter.calls["listdir"] == 0 and counter.total() <= 3  # hint, its version, probe of the next


def test_wait_for_newer(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    started = time.monotonic()
    assert store.wait_for_newer(None, timeout_s=0.05, poll_s=0.01) is None
    assert time.monotonic() - started >= 0.05
    _publish(store, 2)
    assert store.wait_for_newer(None, timeout_s=1).version == 1
    assert store.wait_for_newer(0, timeout_s=1).version == 1
    assert store.wait_for_newer(1, timeout_s=0.02, poll_s=0.01) is None


def test_loading_refuses_to_unpickle_code(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 1)
    info = store.latest()
    weights = "checkpoints/prover/" + info.path.rpartition("/")[2]
    import io

    hostile = io.BytesIO()
    torch.save({"format": "advprover-checkpoint", "format_version": 1, "meta": {}, "state_dict": {},
                "payload": _Hostile()}, hostile)
    root.backend.remove(weights)
    root.backend.create(weights, hostile.getvalue())
    sidecar = json.loads(root.backend.read("checkpoints/prover/00000000.json"))
    sidecar["size"] = len(hostile.getvalue())
    root.backend.replace("checkpoints/prover/00000000.json", json.dumps(sidecar).encode())
    _Hostile.ran = False
    with pytest.raises(CheckpointError, match="weights_only load failed"):
        store.load()
    assert not _Hostile.ran


class _Hostile:
    ran = False

    def __reduce__(self) -> tuple:
        return (_Hostile._run, ())

    @staticmethod
    def _run() -> None:
        _Hostile.ran = True


def test_truncated_weights_are_reported(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 1)
    weights = "checkpoints/prover/" + store.latest().path.rpartition("/")[2]
    data = root.backend.read(weights)
    root.backend.replace(weights, data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        store.load()


def test_missing_versions_are_named(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    with pytest.raises(CheckpointError, match="prover has no version yet"):
        store.load()
    _publish(store, 1)
    with pytest.raises(CheckpointError, match=r"no version 5 .*versions: \[0\]"):
        store.load(5)


def test_retain_keeps_the_last_k(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 5)
    assert store.retain(keep_last=2, grace_s=0) == [0, 1, 2]
    assert store.versions() == [3, 4] and store.latest().version == 4
    assert len([n for n in root.backend.listdir("checkpoints/prover") if n.endswith(".pt")]) == 2
    assert store.retain(keep_last=2, grace_s=0) == []
    with pytest.raises(StorageError, match="keep_last must be at least 1"):
        store.retain(keep_last=0, grace_s=0)


def test_retain_spares_versions_superseded_within_the_grace_period(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 3)
    assert store.retain(keep_last=1, grace_s=3600) == []  # a slow reader may still be loading 0 or 1
    assert store.versions() == [0, 1, 2]
    for version in (0, 1):  # pretend versions 1 and 2 were published long ago
        sidecar = json.loads(root.backend.read(f"checkpoints/prover/{version + 1:08d}.json"))
        sidecar["time"] -= 7200 if version == 0 else 0
        root.backend.replace(f"checkpoints/prover/{version + 1:08d}.json", json.dumps(sidecar).encode())
    assert store.retain(keep_last=1, grace_s=3600) == [0]  # 1 was superseded (by 2) just now: kept
    assert store.versions() == [1, 2]


def test_retain_removes_old_leftover_weights_only(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 1)
    root.backend.create("checkpoints/prover/00000001-deadbeef.pt", b"left by a killed publisher")
    store.retain(keep_last=1, grace_s=3600)
    assert root.backend.exists("checkpoints/prover/00000001-deadbeef.pt")  # young: may be a live publisher's
    store.retain(keep_last=1, grace_s=0)
    assert not root.backend.exists("checkpoints/prover/00000001-deadbeef.pt")
    assert store.load()[1].version == 0


def test_checkpoint_file_round_trip(root_url: str) -> None:
    path = f"{root_url}-model.pt"
    save_checkpoint_file(path, _state(3.0), {"step": 3, "model": {"dim": 8}})
    state, meta = load_checkpoint_file(path)
    assert torch.equal(state["layer.weight"], torch.full((2, 3), 3.0)) and meta == {"step": 3, "model": {"dim": 8}}
    save_checkpoint_file(path, _state(4.0), {"step": 4})  # replaces
    assert load_checkpoint_file(path)[1] == {"step": 4}


def test_a_store_weights_file_is_a_checkpoint_file(root: ExperimentRoot) -> None:
    info = CheckpointStore(root, "prover").publish(_state(5.0), {"step": 5})
    state, meta = load_checkpoint_file(info.path)
    assert meta == {"step": 5} and torch.equal(state["layer.bias"], torch.zeros(2))


def test_load_checkpoint_takes_a_file_or_an_experiment_root(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 2)
    assert load_checkpoint(root.url, "prover")[1]["step"] == 1
    assert load_checkpoint(root.url, "prover", version=0)[1]["step"] == 0
    assert load_checkpoint(store.latest().path, "ignored")[1]["step"] == 1
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(root.url + "/nothing-here.pt", "prover")
    with pytest.raises(CheckpointError, match="not an advprover checkpoint|not a loadable checkpoint"):
        root.backend.create("junk.pt", b"not a checkpoint")
        load_checkpoint(root.backend.location("junk.pt"), "prover")
