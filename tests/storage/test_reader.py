"""P7-P8: readers poll cheaply, in order, never list, never open temporaries; cursors."""

from __future__ import annotations

import pytest

from core.errors import StorageError
from core.storage import Cursor, ExperimentRoot, ShardWriter, StreamReader
from core.storage.shards import ShardEncoder, make_header, shard_path

from .helpers import CountingBackend


def _fill(root: ExperimentRoot, stream: str, shards: int, per_shard: int = 2) -> None:
    writer = ShardWriter(root, stream, max_records=per_shard, max_age_s=60)
    for i in range(shards * per_shard):
        writer.append({"stream": stream, "i": i})


def test_idle_poll_costs_one_call_per_stream(root: ExperimentRoot, counted: CountingBackend) -> None:
    _fill(root, "a", 60)
    _fill(root, "b", 3)
    reader = StreamReader(root, ["a", "b"])
    assert len(reader.poll()) == 63
    counted.reset()
    assert reader.poll() == []
    assert counted.total() == 2 and counted.calls["read"] == 2
    assert counted.paths == [shard_path("a", 60), shard_path("b", 3)]


def test_poll_never_lists(root: ExperimentRoot, counted: CountingBackend) -> None:
    _fill(root, "a", 5)
    reader = StreamReader(root, ["a"])
    counted.reset()
    reader.poll()
    reader.poll()
    assert counted.calls["listdir"] == 0 and counted.calls["exists"] == 0


def test_temporaries_are_never_read(root: ExperimentRoot, counted: CountingBackend) -> None:
    # A complete-looking shard under a temporary name, as left by a writer killed before its move.
    header = make_header("a", 0, 1, {}, None, None)
    root.backend.backend.replace(
        "streams/a/.tmp-0123456789ab-000000000000.zst", ShardEncoder().encode(header, ['{"ghost":1}'])
    )
    reader = StreamReader(root, ["a"])
    assert reader.poll() == []
    _fill(root, "a", 1)
    assert [b.records for b in reader.poll()] == [[{"stream": "a", "i": 0}, {"stream": "a", "i": 1}]]
    assert shard_path("a", 0) in counted.read_paths()
    assert not any(".tmp-" in path for path in counted.read_paths())


def test_shards_come_in_order_with_cursor_after_each(root: ExperimentRoot) -> None:
    _fill(root, "a", 3)
    _fill(root, "b", 2)
    batches = StreamReader(root, ["a", "b"]).poll()
    assert [(b.stream, b.seq) for b in batches] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert batches[2].cursor == Cursor({"a": 2, "b": 1})
    assert batches[-1].cursor == Cursor({"a": 3, "b": 2})


def test_max_shards_limits_a_poll_and_the_rest_follows(root: ExperimentRoot) -> None:
    _fill(root, "a", 5)
    reader = StreamReader(root, ["a"])
    assert [b.seq for b in reader.poll(max_shards=2)] == [0, 1]
    assert reader.cursor == Cursor({"a": 2})
    assert [b.seq for b in reader.poll()] == [2, 3, 4]


def test_reader_resumes_exactly_from_a_cursor(root: ExperimentRoot) -> None:
    _fill(root, "a", 4)
    first = StreamReader(root, ["a"])
    first.poll(max_shards=3)
    saved = Cursor.from_json(first.cursor.to_json())
    resumed = StreamReader(root, ["a"], saved)
    assert [b.seq for b in resumed.poll()] == [3]


def test_new_shards_appear_on_the_next_poll(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "a", max_records=1, max_age_s=60)
    reader = StreamReader(root, ["a"])
    assert reader.poll() == []
    writer.append({"i": 0})
    assert [b.records for b in reader.poll()] == [[{"i": 0}]]


def test_add_streams_follows_discovered_streams(root: ExperimentRoot) -> None:
    _fill(root, "a", 1)
    reader = StreamReader(root, ["a"], Cursor({"b": 1, "other": 7}))
    reader.poll()
    _fill(root, "b", 3)
    reader.add_streams(["b", "a"])
    assert [(b.stream, b.seq) for b in reader.poll()] == [("b", 1), ("b", 2)]
    assert reader.streams == ["a", "b"]
    assert reader.cursor == Cursor({"a": 1, "b": 3, "other": 7})  # positions it does not follow are kept
    with pytest.raises(StorageError, match="list of stream names"):
        reader.add_streams("c")


def test_cursor_is_a_small_json_value() -> None:
    cursor = Cursor({"b": 2, "a": 5})
    assert cursor.to_json() == {"a": 5, "b": 2}
    assert Cursor.from_json('{"a": 5, "b": 2}') == cursor == Cursor.from_json(cursor.to_json())
    assert Cursor.from_json(None) == Cursor() and len(Cursor()) == 0
    assert cursor.get("zzz") == 0 and cursor["a"] == 5 and "b" in cursor
    assert cursor.merged(Cursor({"a": 3, "c": 1})) == Cursor({"a": 5, "b": 2, "c": 1})


@pytest.mark.parametrize("bad", ['{"a": -1}', '{"a": "3"}', "[1, 2]", "{not json", '{"a": 1.5}'])
def test_malformed_cursors_are_rejected(bad: str) -> None:
    with pytest.raises(StorageError, match="cursor"):
        Cursor.from_json(bad)
