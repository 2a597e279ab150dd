"""P1-P2: the experiment root, its frozen configuration, and names."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError, ExperimentConfigMismatch, StorageError
from core.storage import CheckpointStore, ExperimentRoot, Heartbeat, ShardWriter, inspect_root

from .helpers import CONFIG


def test_config_written_once_and_reopened(root_url: str) -> None:
    created = ExperimentRoot.create_or_open(root_url, CONFIG)
    assert json.loads(created.backend.read("config.json")) == CONFIG
    again = ExperimentRoot.create_or_open(root_url, dict(CONFIG))
    opened = ExperimentRoot.open(root_url)
    assert again.config == opened.config == CONFIG
    assert opened.url == created.url


def test_file_urls_and_plain_paths_are_the_same_root(tmp_path: object) -> None:
    created = ExperimentRoot.create_or_open(f"{tmp_path}/exp", CONFIG)
    assert ExperimentRoot.open(f"file://{tmp_path}/exp").url == created.url


def test_inspect_root_tells_what_is_at_a_url(root_url: str) -> None:
    assert inspect_root(root_url).kind == "empty"
    assert inspect_root(root_url).shared_across_processes is not root_url.startswith("memory://")
    ExperimentRoot.create_or_open(root_url, CONFIG)
    assert inspect_root(root_url).kind == "experiment"
    root = ExperimentRoot.open(root_url)
    root.backend.create("notes.txt", b"someone's notes")
    root.backend.remove("config.json")  # a folder holding something, without a configuration: not an experiment
    assert inspect_root(root_url).kind == "occupied"
    root.backend.create("config.json", b"{}")
    assert inspect_root(f"{root_url}/config.json").kind == "file"


def test_config_is_normalized_as_json(root_url: str) -> None:
    root = ExperimentRoot.create_or_open(root_url, {"sizes": (1, 2), "nested": {"k": 1}})
    assert root.config == {"sizes": [1, 2], "nested": {"k": 1}}
    ExperimentRoot.create_or_open(root_url, {"sizes": [1, 2], "nested": {"k": 1}})  # same once normalized


def test_different_config_names_every_differing_key(root_url: str) -> None:
    ExperimentRoot.create_or_open(root_url, CONFIG)
    changed = {**CONFIG, "model": {"dim": 16, "layers": 1}, "extra": True}
    del changed["seed"]
    with pytest.raises(ExperimentConfigMismatch) as err:
        ExperimentRoot.create_or_open(root_url, changed)
    message = str(err.value)
    assert "model.dim (existing 8, given 16)" in message
    assert "extra (only in the given configuration" in message
    assert "seed (only in the existing configuration" in message
    assert "layers" not in message
    assert json.loads(ExperimentRoot.open(root_url).backend.read("config.json")) == CONFIG  # untouched


def test_bool_and_int_are_different_values(root_url: str) -> None:
    ExperimentRoot.create_or_open(root_url, {"flag": 1})
    with pytest.raises(ExperimentConfigMismatch, match="flag"):
        ExperimentRoot.create_or_open(root_url, {"flag": True})


def test_open_missing_root_says_so(root_url: str) -> None:
    with pytest.raises(StorageError, match="no experiment at .*config.json does not exist"):
        ExperimentRoot.open(root_url)


def test_unserializable_config_is_a_config_error(root_url: str) -> None:
    with pytest.raises(ConfigError, match="not JSON-serializable"):
        ExperimentRoot.create_or_open(root_url, {"f": object()})
    with pytest.raises(StorageError):
        ExperimentRoot.open(root_url)  # nothing was written


def test_streams_lists_existing_streams(root: ExperimentRoot) -> None:
    assert root.streams() == []
    for name in ("prover-actor-01", "generator-actor-00", "generator-actor-01"):
        ShardWriter(root, name, max_records=1, max_age_s=1).append({"x": 1})
    assert root.streams() == ["generator-actor-00", "generator-actor-01", "prover-actor-01"]
    assert root.streams("generator-") == ["generator-actor-00", "generator-actor-01"]


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", ".hidden", "-dash", "x" * 129, "sp ace"])
def test_invalid_names_are_rejected(root: ExperimentRoot, bad: str) -> None:
    with pytest.raises(StorageError, match="invalid stream name"):
        ShardWriter(root, bad, max_records=1, max_age_s=1)
    with pytest.raises(StorageError, match="invalid checkpoint name"):
        CheckpointStore(root, bad)
    with pytest.raises(StorageError, match="invalid role name"):
        Heartbeat(root, bad, 0)


def test_valid_names_are_accepted(root: ExperimentRoot) -> None:
    for good in ("generator-actor-03", "prover_v2", "a.b", "0"):
        ShardWriter(root, good, max_records=1, max_age_s=1)
        CheckpointStore(root, good)
        Heartbeat(root, good, 0)


def test_a_local_root_names_its_folder_and_its_creation_time(root_url: str, tmp_path: object) -> None:
    import time

    before = time.time()
    root = ExperimentRoot.create_or_open(root_url, CONFIG)
    assert before - 5 <= root.created_at() <= time.time() + 1
    if root_url.startswith(("memory://", "s3://")):
        assert root.local_folder is None  # not a folder TensorBoard's writer can use
    else:
        assert root.local_folder == root_url
