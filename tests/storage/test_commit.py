"""P9: consumers commit their input cursor atomically with their output, hence exactly-once processing."""

from __future__ import annotations

import random
from collections import Counter

from core.storage import Cursor, ExperimentRoot, ShardWriter, StreamReader, read_shard
from core.storage.shards import shard_path

from .helpers import CountingBackend


def _produce(root: ExperimentRoot, stream: str, records: int, per_shard: int) -> list[str]:
    writer = ShardWriter(root, stream, max_records=per_shard, max_age_s=60)
    ids = [f"{stream}-{i}" for i in range(records)]
    for record_id in ids:
        writer.append({"id": record_id})
    writer.close()
    return ids


def _outputs(root: ExperimentRoot, stream: str) -> list[dict]:
    return [r for b in StreamReader(root, [stream]).poll() for r in b.records]


def test_cursor_is_written_into_the_output_shard_header(root: ExperimentRoot) -> None:
    _produce(root, "in", 4, 2)
    reader = StreamReader(root, ["in"])
    out = ShardWriter(root, "out", max_records=100, max_age_s=60, committing=True)
    for batch in reader.poll():
        for record in batch.records:
            out.append({"from": record["id"]})
    assert out.flush(cursor=reader.cursor, extra={"step": 7}) == 0
    header, records = read_shard(root, "out", 0)
    assert header["cursor"] == {"in": 2} and header["extra"] == {"step": 7} and len(records) == 4
    assert out.last_cursor() == Cursor({"in": 2})


def test_committing_writer_publishes_only_committed_records(root: ExperimentRoot) -> None:
    out = ShardWriter(root, "out", max_records=3, max_age_s=0, committing=True)
    for i in range(5):  # nothing committed yet: neither count nor age may publish these
        assert out.append({"i": i}) is None
    assert out.maybe_flush() is None and out.flush() is None and out.pending == 5
    out.set_commit(Cursor({"in": 1}))
    assert out.append({"i": 5}) == 0  # full: publishes what is committed, not this record of input 1
    header, records = read_shard(root, "out", 0)
    assert header["cursor"] == {"in": 1} and [r["i"] for r in records] == [0, 1, 2, 3, 4]
    assert out.pending == 1
    out.close()  # the uncommitted record is dropped: its input will be processed again
    assert ShardWriter(root, "out", max_records=3, max_age_s=0).next_seq == 1


def test_plain_writer_publishes_without_commits(root: ExperimentRoot) -> None:
    out = ShardWriter(root, "out", max_records=2, max_age_s=60)
    out.append({"i": 0})
    assert out.append({"i": 1}) == 0 and read_shard(root, "out", 0)[0]["cursor"] is None


def test_progress_without_output_publishes_an_empty_commit_shard(root: ExperimentRoot) -> None:
    _produce(root, "in", 2, 1)
    reader = StreamReader(root, ["in"])
    out = ShardWriter(root, "out", max_records=10, max_age_s=60, committing=True)
    reader.poll()  # every input filtered out: no output record
    assert out.flush(cursor=reader.cursor) == 0
    header, records = read_shard(root, "out", 0)
    assert records == [] and header["count"] == 0 and header["cursor"] == {"in": 2}
    assert out.flush(cursor=reader.cursor) is None  # no progress since: nothing to commit
    restarted = ShardWriter(root, "out", max_records=10, max_age_s=60, committing=True)
    assert restarted.last_cursor() == Cursor({"in": 2})
    assert restarted.flush(cursor=Cursor({"in": 2})) is None


def test_commit_waits_for_age_when_no_record_fills_a_shard(root: ExperimentRoot) -> None:
    out = ShardWriter(root, "out", max_records=10, max_age_s=0, committing=True)
    out.append({"i": 0})
    out.set_commit(Cursor({"in": 1}))
    assert out.maybe_flush() == 0 and read_shard(root, "out", 0)[0]["cursor"] == {"in": 1}


def test_last_cursor_reads_the_newest_shard_only(root: ExperimentRoot, counted: CountingBackend) -> None:
    plain = ShardWriter(root, "plain", max_records=1, max_age_s=60)
    for i in range(20):
        plain.append({"i": i})
    counted.reset()
    assert plain.last_cursor() is None and counted.calls["read"] == 1  # not a walk through the history
    out = ShardWriter(root, "out", max_records=10, max_age_s=60, committing=True)
    out.flush(cursor=Cursor({"in": 3}))
    out.flush(cursor=Cursor({"in": 5}))
    assert out.last_cursor() == Cursor({"in": 5})


def test_consumer_killed_anywhere_processes_every_record_once(root: ExperimentRoot) -> None:
    """In-process twin of the crash test (runs on memory:// too): a consumer abandoned at random points."""
    produced = _produce(root, "in", 300, 7)
    rng = random.Random(3)
    crashes = 0
    while True:
        out = ShardWriter(root, "out", max_records=rng.randint(1, 20), max_age_s=rng.choice([0, 60]), committing=True)
        reader = StreamReader(root, ["in"], out.last_cursor())
        crashed = False
        while not crashed and (batches := reader.poll(max_shards=rng.randint(1, 4))):
            for batch in batches:
                for record in batch.records:
                    out.append({"from": record["id"]})
                    crashed = rng.random() < 0.03
                    if crashed:
                        break
                if crashed:
                    break
                out.set_commit(batch.cursor)
                if rng.random() < 0.3 and out.maybe_flush() is not None:
                    crashed = rng.random() < 0.3  # right after a publish
                    if crashed:
                        break
        if not crashed:
            out.close()
            break
        crashes += 1  # the writer and reader are dropped with whatever they held
    assert crashes >= 10
    consumed = Counter(r["from"] for r in _outputs(root, "out"))
    assert consumed == Counter(produced)  # every record, once
    assert ShardWriter(root, "out", max_records=1, max_age_s=1).last_cursor() == Cursor({"in": 43})


def test_a_damaged_last_output_shard_is_derived_again(root: ExperimentRoot) -> None:
    _produce(root, "in", 4, 1)
    out = ShardWriter(root, "out", max_records=100, max_age_s=60, committing=True)
    reader = StreamReader(root, ["in"])
    for batch in reader.poll():
        out.append({"from": batch.records[0]["id"]})
        out.flush(cursor=batch.cursor)
    root.backend.replace(shard_path("out", 3), b"")  # the output of input 3, committed, then damaged
    restarted = ShardWriter(root, "out", max_records=100, max_age_s=60, committing=True)
    assert restarted.last_cursor() == Cursor({"in": 3})  # the damaged shard is quarantined on the way
    reader = StreamReader(root, ["in"], restarted.last_cursor())
    for batch in reader.poll():
        restarted.append({"from": batch.records[0]["id"]})
    restarted.flush(cursor=reader.cursor)
    assert Counter(r["from"] for r in _outputs(root, "out")) == Counter(f"in-{i}" for i in range(4))


def test_without_commits_a_restart_would_duplicate(root: ExperimentRoot) -> None:
    """Rejection twin: a plain writer that publishes before committing duplicates outputs after a crash."""
    _produce(root, "in", 4, 2)
    out = ShardWriter(root, "out", max_records=1, max_age_s=60)  # not committing
    reader = StreamReader(root, ["in"], out.last_cursor())
    out.append({"from": reader.poll(max_shards=1)[0].records[0]["id"]})  # published, never committed
    out = ShardWriter(root, "out", max_records=100, max_age_s=60, committing=True)
    reader = StreamReader(root, ["in"], out.last_cursor())
    for batch in reader.poll():
        for record in batch.records:
            out.append({"from": record["id"]})
    out.flush(cursor=reader.cursor)
    assert Counter(r["from"] for r in _outputs(root, "out"))["in-0"] == 2
