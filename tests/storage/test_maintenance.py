"""P12 and P18: temporaries are cleaned after a grace period; pruning keeps readers and writers working."""

from __future__ import annotations

import time

import pytest

from core.errors import StreamPrunedError
from core.storage import (
    Cursor,
    ExperimentRoot,
    ShardWriter,
    StreamReader,
    clean_temporaries,
    committed_cursor,
    low_water,
    prune_stream,
    pruned_prefix,
    stream_bounds,
)
from core.storage.shards import shard_path

from .helpers import CountingBackend


def _fill(root: ExperimentRoot, stream: str, shards: int) -> ShardWriter:
    writer = ShardWriter(root, stream, max_records=1, max_age_s=60)
    for i in range(shards):
        writer.append({"i": i})
    return writer


def _leave_temporaries(root: ExperimentRoot) -> list[str]:
    names = [
        "streams/a/.tmp-000000000001-000000000005.zst",
        "checkpoints/prover/.tmp-000000000002-00000003.json",
        "heartbeats/.tmp-000000000003-gen-0.json",
        ".tmp-000000000004-config.json",
    ]
    for name in names:
        root.backend.replace(name, b"left by a killed writer")
    return names


def test_clean_temporaries_respects_the_grace_period(root: ExperimentRoot) -> None:
    _fill(root, "a", 2)
    names = _leave_temporaries(root)
    assert clean_temporaries(root, grace_s=3600) == 0
    assert all(root.backend.exists(n) for n in names)
    time.sleep(0.02)
    assert clean_temporaries(root, grace_s=0.01) == len(names)
    assert not any(root.backend.exists(n) for n in names)
    assert stream_bounds(root, "a") == (0, 2)  # published files untouched


def test_a_writer_cleans_its_stream_at_start(root: ExperimentRoot) -> None:
    _leave_temporaries(root)
    ShardWriter(root, "a", max_records=1, max_age_s=1, clean_after_s=3600)
    assert root.backend.exists("streams/a/.tmp-000000000001-000000000005.zst")
    ShardWriter(root, "a", max_records=1, max_age_s=1, clean_after_s=0)
    assert not root.backend.exists("streams/a/.tmp-000000000001-000000000005.zst")
    assert root.backend.exists("heartbeats/.tmp-000000000003-gen-0.json")  # other folders are not its business


def test_prune_removes_a_prefix_and_readers_and_writers_go_on(root: ExperimentRoot) -> None:
    writer = _fill(root, "a", 10)
    reader = StreamReader(root, ["a"], Cursor({"a": 6}))
    assert prune_stream(root, "a", 6) == 6
    assert low_water(root, "a") == 6 and not root.backend.exists(shard_path("a", 5))
    assert [b.seq for b in reader.poll()] == [6, 7, 8, 9]
    assert writer.append({"i": 10}) == 10
    assert ShardWriter(root, "a", max_records=1, max_age_s=1).next_seq == 11
    assert [b.seq for b in StreamReader(root, ["a"]).poll()] == [6, 7, 8, 9, 10]  # new readers start at the mark
    assert prune_stream(root, "a", 3) == 0 and low_water(root, "a") == 6  # the mark never goes back


def test_prune_keeps_the_last_shard(root: ExperimentRoot) -> None:
    _fill(root, "a", 4)
    assert prune_stream(root, "a", 100) == 3
    assert stream_bounds(root, "a") == (3, 4) and root.backend.exists(shard_path("a", 3))
    restarted = ShardWriter(root, "a", max_records=1, max_age_s=1)
    assert restarted.last_header()["seq"] == 3 and restarted.append({"i": 4}) == 4


def test_a_consumer_keeps_its_commit_through_pruning(root: ExperimentRoot) -> None:
    out = ShardWriter(root, "out", max_records=10, max_age_s=60, committing=True)
    for position in range(1, 6):
        out.append({"i": position})
        out.flush(cursor=Cursor({"in": position}))
    prune_stream(root, "out", 5)  # below every shard: the newest one stays
    assert ShardWriter(root, "out", max_records=1, max_age_s=1).last_cursor() == Cursor({"in": 5})


def test_an_interrupted_prune_is_finished_by_the_next(root: ExperimentRoot) -> None:
    _fill(root, "a", 8)
    # A prune killed after writing its mark and removing only shard 0.
    root.backend.replace("streams/a/low_water.json", b'{"below": 5, "from": 0}')
    root.backend.remove(shard_path("a", 0))
    assert prune_stream(root, "a", 5) == 4
    assert not any(root.backend.exists(shard_path("a", s)) for s in range(5))


def test_a_reader_behind_the_mark_fails_loudly(root: ExperimentRoot) -> None:
    _fill(root, "a", 8)
    prune_stream(root, "a", 3)
    with pytest.raises(StreamPrunedError, match="at shard 1 but shards below 3 were pruned"):
        StreamReader(root, ["a"], Cursor({"a": 1}))
    slow = StreamReader(root, ["a"], Cursor({"a": 3}), prune_check_s=0)
    prune_stream(root, "a", 6)  # past a live consumer: a retention policy bug
    with pytest.raises(StreamPrunedError, match="at shard 3 but shards below 6"):
        slow.poll()


def test_polls_check_the_mark_only_now_and_then(root: ExperimentRoot, counted: CountingBackend) -> None:
    _fill(root, "a", 2)
    reader = StreamReader(root, ["a"], prune_check_s=3600)
    reader.poll()
    counted.reset()
    for _ in range(5):
        reader.poll()
    assert counted.calls["read"] == 5  # the next shard only; the mark is not read on every poll
    assert counted.calls["listdir"] == 0  # nor is the stream listed for gaps (P23): only now and then


def test_a_writer_restarted_while_pruned_finds_its_place(root: ExperimentRoot, counted: CountingBackend) -> None:
    _fill(root, "a", 120)
    prune_stream(root, "a", 110)
    counted.reset()
    assert ShardWriter(root, "a", max_records=1, max_age_s=1, clean_after_s=None).next_seq == 120
    assert counted.calls["exists"] <= 10 and counted.calls["listdir"] == 1  # log2 of the 10 left, not of 120


def _fill_uneven(root: ExperimentRoot, stream: str, sizes: list[int]) -> None:
    with ShardWriter(root, stream, max_records=100, max_age_s=60) as writer:
        for size in sizes:
            for i in range(size):
                writer.append({"i": i})
            writer.flush()


def test_prune_counts_the_records_it_removes(root: ExperimentRoot) -> None:
    _fill_uneven(root, "a", [1, 2, 3, 4, 5])
    assert pruned_prefix(root, "a") == (0, 0)
    prune_stream(root, "a", 2)
    assert pruned_prefix(root, "a") == (2, 3)
    prune_stream(root, "a", 4)
    assert pruned_prefix(root, "a") == (4, 10)
    prune_stream(root, "a", 3)  # nothing more: the count stays
    assert pruned_prefix(root, "a") == (4, 10)


def test_an_interrupted_prune_counts_the_records_once(root: ExperimentRoot) -> None:
    _fill_uneven(root, "a", [1, 2, 3, 4, 5])
    # A prune killed after writing its mark (records of shards 0..2 counted) and removing only shard 0.
    root.backend.replace("streams/a/low_water.json", b'{"below": 3, "from": 0, "records": 6}')
    root.backend.remove(shard_path("a", 0))
    assert prune_stream(root, "a", 3) == 2
    assert pruned_prefix(root, "a") == (3, 6)
    prune_stream(root, "a", 4)
    assert pruned_prefix(root, "a") == (4, 10)


def test_a_mark_without_a_record_count_reads_as_none_counted(root: ExperimentRoot) -> None:
    _fill(root, "a", 4)
    root.backend.replace("streams/a/low_water.json", b'{"below": 0, "from": 0}')  # written by an older advprover
    assert pruned_prefix(root, "a") == (0, 0)
    prune_stream(root, "a", 2)
    assert pruned_prefix(root, "a") == (2, 2)


def test_committed_cursor_is_the_newest_commit_and_survives_pruning(root: ExperimentRoot) -> None:
    assert committed_cursor(root, "out") == Cursor()
    out = ShardWriter(root, "out", max_records=10, max_age_s=60, committing=True)
    for position in range(1, 5):
        out.append({"i": position})
        out.flush(cursor=Cursor({"in": position}))
    assert committed_cursor(root, "out") == Cursor({"in": 4})
    prune_stream(root, "out", 10)
    assert committed_cursor(root, "out") == Cursor({"in": 4})
    _fill(root, "plain", 3)  # a producer's stream commits nothing
    assert committed_cursor(root, "plain") == Cursor()
