"""P13-P16, P20-P22: checkpoints are published weights first, found cheaply, loaded safely (safetensors, legacy
.pt), retained with grace, never followed outside their folder, and a damaged newest version is skipped."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
import torch

from core.errors import CheckpointConflictError, CheckpointError, StorageError
from core.storage import CheckpointStore, ExperimentRoot, load_checkpoint, load_checkpoint_file, save_checkpoint_file

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
    assert info.version == 0 and info.meta["cursor"] == {"gen-0": 4} and info.path.endswith(".safetensors")
    state, loaded = store.load()
    assert torch.equal(state["layer.weight"], torch.full((2, 3), 1.5)) and loaded == info
    assert store.publish(_state(2.0), {"step": 20}).version == 1
    assert store.versions() == [0, 1] and store.latest().meta == {"step": 20}
    assert torch.equal(store.load(0)[0]["layer.weight"], torch.full((2, 3), 1.5))


def test_weights_come_first_and_metadata_makes_a_version_visible(
    root: ExperimentRoot, counted: CountingBackend
) -> None:
    store = CheckpointStore(root, "prover")
    store.publish(_state(0), {"step": 0})
    created = [path for method, path in counted.log if method == "create"]
    assert created[0].endswith(".safetensors") and created[1] == "checkpoints/prover/00000000.json"
    counted.reset()
    store.publish(_state(1), {"step": 1}, extras={"optimizer": {"lr": 0.1}})
    created = [path for method, path in counted.log if method == "create"]
    assert created[0].endswith(".safetensors") and created[1].endswith(".extras.pt")
    assert created[2] == "checkpoints/prover/00000001.json" and len(created) == 3


def test_weights_without_metadata_are_invisible_and_block_nothing(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    _publish(store, 1)
    # A publisher killed between its two steps leaves weights for version 1 and no metadata.
    root.backend.create("checkpoints/prover/00000001-deadbeef.safetensors", b"partial weights")
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
    assert len([n for n in root.backend.listdir("checkpoints/prover") if n.endswith(".safetensors")]) == 1


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


@pytest.mark.parametrize("where", ["weights", "extras"])
def test_loading_refuses_to_unpickle_code(root: ExperimentRoot, where: str) -> None:
    store = CheckpointStore(root, "prover")
    info = store.publish(_state(0), {"step": 0}, extras={"steps": 0})
    hostile = io.BytesIO()
    torch.save(
        {"format": "advprover-checkpoint", "format_version": 1, "meta": {}, "state_dict": {}, "payload": _Hostile()},
        hostile,
    )
    sidecar = json.loads(root.backend.read("checkpoints/prover/00000000.json"))
    name = sidecar["weights"] if where == "weights" else sidecar["extras"]
    if where == "weights":  # a legacy .pt in place of the weights: the only kind of weights torch reads
        name = name.replace(".safetensors", ".pt")
        sidecar["weights"], sidecar["size"] = name, len(hostile.getvalue())
    else:
        sidecar["extras_size"] = len(hostile.getvalue())
    root.backend.replace(f"checkpoints/prover/{name}", hostile.getvalue())
    root.backend.replace("checkpoints/prover/00000000.json", json.dumps(sidecar).encode())
    _Hostile.ran = False
    with pytest.raises(CheckpointError, match="weights_only load failed") as caught:
        store.load_with_extras(info.version)
    assert not _Hostile.ran and "\n" not in str(caught.value)  # one line


class _Hostile:
    ran = False

    def __reduce__(self) -> tuple:
        return (_Hostile._run, ())

    @staticmethod
    def _run() -> None:
        _Hostile.ran = True


@pytest.mark.parametrize("which", ["weights", "extras"])
def test_truncated_weights_are_reported(root: ExperimentRoot, which: str) -> None:
    store = CheckpointStore(root, "prover")
    info = store.publish(_state(0), {"step": 0}, extras={"steps": 0})
    path = info.path if which == "weights" else info.extras_path
    name = "checkpoints/prover/" + path.rpartition("/")[2]
    data = root.backend.read(name)
    root.backend.replace(name, data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        store.load_with_extras()
    if which == "extras":  # actors never read the extras: damaged ones do not stop them
        assert torch.equal(store.load()[0]["layer.weight"], _state(0)["layer.weight"])


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
    assert len([n for n in root.backend.listdir("checkpoints/prover") if n.endswith(".safetensors")]) == 2
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
    leftovers = [
        "checkpoints/prover/00000001-deadbeef.safetensors",
        "checkpoints/prover/00000001-deadbeef.extras.pt",
        "checkpoints/prover/00000001-cafecafe.pt",
    ]
    for name in leftovers:
        root.backend.create(name, b"left by a killed publisher")
    root.backend.create("checkpoints/prover/notes.txt", b"not a checkpoint file: never touched")
    store.retain(keep_last=1, grace_s=3600)
    assert all(root.backend.exists(name) for name in leftovers)  # young: may be a live publisher's
    store.retain(keep_last=1, grace_s=0)
    assert not any(root.backend.exists(name) for name in leftovers)
    assert root.backend.exists("checkpoints/prover/notes.txt")
    assert store.load()[1].version == 0


def test_checkpoint_file_round_trip(root_url: str) -> None:
    path = f"{root_url}-model.safetensors"
    save_checkpoint_file(path, _state(3.0), {"step": 3, "model": {"dim": 8}})
    state, meta = load_checkpoint_file(path)
    assert torch.equal(state["layer.weight"], torch.full((2, 3), 3.0)) and meta == {"step": 3, "model": {"dim": 8}}
    save_checkpoint_file(path, _state(4.0), {"step": 4})  # replaces
    assert load_checkpoint_file(path)[1] == {"step": 4}
    with pytest.raises(CheckpointError, match=r"name it \*\.safetensors"):
        save_checkpoint_file(f"{root_url}-model.pt", _state(4.0), {"step": 4})


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
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        root.backend.create("junk.pt", b"not a checkpoint")
        load_checkpoint(root.backend.location("junk.pt"), "prover")


# --- P13/P15: the weights are safetensors with the metadata inside; extras apart -------------------


def test_weights_are_a_self_contained_safetensors_file(root: ExperimentRoot) -> None:
    from safetensors.torch import load as safetensors_load

    info = CheckpointStore(root, "prover").publish(
        _state(2.0), {"step": 2, "cursor": {"in": 1}}, extras={"optimizer": {"state": {}}, "steps": 2}
    )
    data = root.backend.read("checkpoints/prover/" + info.path.rpartition("/")[2])
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert json.loads(header["__metadata__"]["meta"]) == {"step": 2, "cursor": {"in": 1}}
    assert torch.equal(safetensors_load(data)["layer.weight"], _state(2.0)["layer.weight"])  # no pickle, no torch.load
    assert set(safetensors_load(data)) == {"layer.weight", "layer.bias"}  # the extras are not in it


def test_extras_are_read_only_when_asked_for(root: ExperimentRoot, counted: CountingBackend) -> None:
    store = CheckpointStore(root, "prover")
    store.publish(_state(1.0), {"step": 1}, extras={"optimizer": {"lr": 0.5}, "steps": 7})
    counted.reset()
    tensors, info = store.load()
    assert set(tensors) == {"layer.weight", "layer.bias"} and info.extras_path.endswith(
        "00000000-" + info.path[-20:-12] + ".extras.pt"
    )
    assert not [p for p in counted.read_paths() if p.endswith(".extras.pt")]  # an actor never reads them
    tensors, extras, _ = store.load_with_extras()
    assert extras == {"optimizer": {"lr": 0.5}, "steps": 7}
    store.publish(_state(2.0), {"step": 2})  # without extras
    assert store.load_with_extras()[1] is None


def test_weights_must_be_tensors_only(root: ExperimentRoot) -> None:
    with pytest.raises(StorageError, match="tensors only; step"):
        CheckpointStore(root, "prover").publish({**_state(1.0), "step": 3}, {})


# --- P20: names read from a sidecar are checked before any file operation ----------------------------


@pytest.mark.parametrize(
    "field,name",
    [
        ("weights", "../../../../victim.txt"),
        ("weights", "../../victim.txt"),
        ("weights", "/etc/victim.txt"),
        ("weights", "00000001-deadbeef.safetensors"),
        ("weights", "00000000-deadbeef.safetensors/../x"),
        ("weights", "00000000-DEADBEEF.safetensors"),
        ("weights", None),
        ("extras", "../../victim.txt"),
        ("extras", "00000000-deadbeef.safetensors"),
    ],
)
def test_retention_never_follows_a_name_outside_the_version(
    root: ExperimentRoot, field: str, name: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(root, "prover")
    for step in range(3):
        store.publish(_state(step), {"step": step}, extras={"steps": step})
    root.backend.create("victim.txt", b"must survive")
    sidecar = json.loads(root.backend.read("checkpoints/prover/00000000.json"))
    original = dict(sidecar)
    sidecar[field] = name
    root.backend.replace("checkpoints/prover/00000000.json", json.dumps(sidecar).encode())
    with caplog.at_level(logging.WARNING, logger="core.storage.checkpoints"):
        assert store.retain(keep_last=1, grace_s=0) == [1]  # 0 is damaged: reported, kept; 1 goes as usual
    assert root.backend.read("victim.txt") == b"must survive"
    assert "version 0 is damaged" in caplog.text
    for kept in (original["weights"], original["extras"]):  # nothing of the damaged version is deleted either
        assert root.backend.exists(f"checkpoints/prover/{kept}")
    with pytest.raises(CheckpointError, match="damaged checkpoint metadata"):
        store.load(0)
    assert store.versions() == [0, 2] and store.load()[1].version == 2


def test_retention_deletes_the_files_a_good_sidecar_names(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    for step in range(3):
        store.publish(_state(step), {"step": step}, extras={"steps": step})
    assert store.retain(keep_last=1, grace_s=0) == [0, 1]
    names = sorted(root.backend.listdir("checkpoints/prover"))
    assert [n for n in names if not n.startswith("00000002")] == ["latest.json"]
    assert len(names) == 4  # version 2: sidecar, weights, extras


# --- P21: legacy .pt versions still load ------------------------------------------------------------


def write_legacy_version(root: ExperimentRoot, version: int, state: dict, meta: dict) -> str:
    """A version as the format-1 store wrote it: one torch.save'd .pt (trainer state inside), its sidecar."""
    buffer = io.BytesIO()
    torch.save({"format": "advprover-checkpoint", "format_version": 1, "meta": meta, "state_dict": state}, buffer)
    weights = f"{version:08d}-0123abcd.pt"
    root.backend.create(f"checkpoints/prover/{weights}", buffer.getvalue())
    sidecar = {
        "version": version,
        "time": time.time(),
        "weights": weights,
        "size": len(buffer.getvalue()),
        "meta": meta,
        "producer": {},
    }
    root.backend.create(f"checkpoints/prover/{version:08d}.json", json.dumps(sidecar).encode())
    root.backend.replace("checkpoints/prover/latest.json", json.dumps({"version": version}).encode())
    return weights


def test_a_legacy_version_loads_weights_apart_from_its_trainer_state(root: ExperimentRoot) -> None:
    trainer = {"optimizer": {"state": {}, "param_groups": []}, "steps": 12}
    weights = write_legacy_version(root, 0, {**_state(4.0), "__trainer__": trainer}, {"step": 12})
    store = CheckpointStore(root, "prover")
    tensors, info = store.load()
    assert set(tensors) == {"layer.weight", "layer.bias"} and info.meta == {"step": 12} and info.extras_path is None
    assert store.load_with_extras()[1] == {"__trainer__": trainer}
    tensors, meta = load_checkpoint_file(info.path)  # the legacy file alone, as jobs.prove --checkpoint reads it
    assert set(tensors) == {"layer.weight", "layer.bias"} and meta == {"step": 12}
    assert store.publish(_state(5.0), {"step": 13}).path.endswith(
        "00000001-" + store.latest().path[-20:-12] + ".safetensors"
    )
    assert store.retain(keep_last=1, grace_s=0) == [0] and not root.backend.exists(f"checkpoints/prover/{weights}")


def test_a_legacy_file_of_another_format_version_is_refused(root: ExperimentRoot) -> None:
    buffer = io.BytesIO()
    torch.save({"format": "advprover-checkpoint", "format_version": 7, "meta": {}, "state_dict": _state(1.0)}, buffer)
    root.backend.create("old.pt", buffer.getvalue())
    with pytest.raises(CheckpointError, match="format version 7"):
        load_checkpoint_file(root.backend.location("old.pt"))


@pytest.mark.parametrize(
    "damage",
    [
        "garbage",
        "empty",
        "truncated safetensors",
        "truncated header",
        "truncated legacy",
        "other safetensors",
        "folder",
    ],
)
def test_damaged_checkpoint_files_fail_with_one_line(tmp_path, damage: str) -> None:
    from safetensors.torch import save as safetensors_save

    path = tmp_path / "model.safetensors"
    save_checkpoint_file(str(path), _state(1.0), {"step": 1})
    good = path.read_bytes()
    legacy = io.BytesIO()
    torch.save({"format": "advprover-checkpoint", "format_version": 1, "meta": {}, "state_dict": _state(1.0)}, legacy)
    assert load_checkpoint_file(str(path))[1] == {"step": 1}  # the good twin
    bad = {
        "garbage": b"this is not a checkpoint\n",
        "empty": b"",
        "truncated safetensors": good[:-7],
        "truncated header": good[:40],
        "truncated legacy": legacy.getvalue()[:-100],
        "other safetensors": safetensors_save(_state(1.0)),
        "folder": None,
    }[damage]
    target = tmp_path / "bad"
    if bad is None:
        target.mkdir()
    else:
        target.write_bytes(bad)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint_file(str(target))
    assert str(target) in str(caught.value) and "\n" not in str(caught.value)


# --- P22: a damaged newest version does not stop the run -----------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "missing", "garbage", "bad sidecar"])
def test_loading_the_latest_falls_back_past_a_damaged_newest(
    root: ExperimentRoot, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(root, "prover")
    for step in range(3):
        store.publish(_state(step), {"step": step}, extras={"steps": step})
    assert store.load()[1].version == 2  # the intact twin
    weights = "checkpoints/prover/" + store.latest().path.rpartition("/")[2]
    if damage == "truncated":
        root.backend.replace(weights, root.backend.read(weights)[:-5])
    elif damage == "missing":
        root.backend.remove(weights)
    elif damage == "garbage":
        size = len(root.backend.read(weights))
        root.backend.replace(weights, b"x" * size)
    else:
        root.backend.replace("checkpoints/prover/00000002.json", b'{"version": 2, "weigh')
    with caplog.at_level(logging.WARNING, logger="core.storage.checkpoints"):
        tensors, info = store.load()
        assert info.version == 1 and torch.equal(tensors["layer.weight"], _state(1)["layer.weight"])
        assert store.load_with_extras()[1] == {"steps": 1}
    assert "version 2" in caplog.text and "damaged" in caplog.text
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]  # not "published version 2"
    assert sum("version 2" in r.getMessage() for r in warnings) == 1  # warned once, not at every poll
    with pytest.raises(CheckpointError):
        store.load(2)  # an explicit version never falls back
    assert store.publish(_state(3), {"step": 3}).version == 3  # the next version is still the next number


def test_without_an_intact_version_loading_fails_clearly(root: ExperimentRoot) -> None:
    store = CheckpointStore(root, "prover")
    info = store.publish(_state(0), {"step": 0})
    root.backend.remove("checkpoints/prover/" + info.path.rpartition("/")[2])
    with pytest.raises(CheckpointError, match="weights of version 0 are gone"):
        store.load()
