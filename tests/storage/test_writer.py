"""P3-P6: atomic no-overwrite publishing, the shard format, sequence numbers, flushing."""

from __future__ import annotations

import json
import threading
import time

import pytest
import zstandard

from core.errors import StorageError, StreamConflictError
from core.storage import ExperimentRoot, ShardWriter, StreamReader, prune_stream, read_shard, stream_bounds
from core.storage.shards import SCHEMA_VERSION, shard_path

from .helpers import CountingBackend


def _records(n: int, tag: str = "r") -> list[dict]:
    return [{"id": f"{tag}{i}", "n": i, "text": "é ∀ x"} for i in range(n)]


def test_backend_create_never_overwrites(root: ExperimentRoot) -> None:
    root.backend.create("streams/s/000000000000.zst", b"first")
    with pytest.raises(FileExistsError):
        root.backend.create("streams/s/000000000000.zst", b"second")
    assert root.backend.read("streams/s/000000000000.zst") == b"first"
    assert root.backend.listdir("streams/s") == ["000000000000.zst"]  # no temporary left behind


def test_backend_create_is_exclusive_under_races(root: ExperimentRoot) -> None:
    """Threads racing to publish the same names: each name is won by exactly one, with that one's bytes."""
    names = [f"streams/race/{i:012d}.zst" for i in range(40)]
    wins: dict[str, list[bytes]] = {name: [] for name in names}

    def contender(tag: bytes) -> None:
        for name in names:
            try:
                root.backend.create(name, tag * 1000)
                wins[name].append(tag)
            except FileExistsError:
                pass

    threads = [threading.Thread(target=contender, args=(bytes([65 + i]),)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in names:
        assert len(wins[name]) == 1 and root.backend.read(name) == wins[name][0] * 1000
    assert sorted(root.backend.listdir("streams/race")) == sorted(n.rpartition("/")[2] for n in names)


def test_second_writer_on_a_stream_is_stopped(root: ExperimentRoot) -> None:
    first = ShardWriter(root, "gen-0", max_records=2, max_age_s=60)
    second = ShardWriter(root, "gen-0", max_records=2, max_age_s=60)  # same role started twice
    assert first.append({"w": 1}) is None and first.append({"w": 1}) == 0
    second.append({"w": 2})
    with pytest.raises(StreamConflictError, match="gen-0: shard 0 already exists.*another writer"):
        second.append({"w": 2})
    with pytest.raises(StreamConflictError):  # stays stopped
        second.append({"w": 2})
    assert read_shard(root, "gen-0", 0)[1] == [{"w": 1}, {"w": 1}]  # not overwritten
    assert first.append({"w": 1}) is None and first.append({"w": 1}) == 1


def test_shard_is_one_checked_zstd_frame_of_json_lines(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=100, max_age_s=60, producer={"model_version": 3})
    for record in _records(3):
        writer.append(record)
    assert writer.flush(extra={"note": "x"}) == 0
    data = root.backend.read(shard_path("gen-0", 0))
    params = zstandard.get_frame_parameters(data)
    assert params.has_checksum and params.content_size > 0
    payload = zstandard.ZstdDecompressor().decompress(data, allow_extra_data=False)  # exactly one frame
    lines = payload.decode().splitlines()
    header = json.loads(lines[0])
    assert {k: header[k] for k in ("schema", "stream", "seq", "count", "cursor", "extra")} == {
        "schema": SCHEMA_VERSION,
        "stream": "gen-0",
        "seq": 0,
        "count": 3,
        "cursor": None,
        "extra": {"note": "x"},
    }
    assert header["producer"]["model_version"] == 3 and {"host", "pid", "library"} <= set(header["producer"])
    assert abs(header["created"] - time.time()) < 60
    assert [json.loads(line) for line in lines[1:]] == _records(3)


def test_records_must_be_json_objects(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=10, max_age_s=60)
    with pytest.raises(StorageError, match="gen-0: record is not JSON-serializable"):
        writer.append({"x": object()})
    with pytest.raises(StorageError, match="not JSON-serializable"):
        writer.append({"reward": float("nan")})
    with pytest.raises(StorageError, match="a record is a dict"):
        writer.append([1, 2])  # type: ignore[arg-type]
    assert writer.pending == 0


def test_restarted_writer_continues_at_next_number(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=1, max_age_s=60)
    for record in _records(5):
        writer.append(record)
    restarted = ShardWriter(root, "gen-0", max_records=1, max_age_s=60)
    assert restarted.next_seq == 5
    assert restarted.append({"id": "after"}) == 5
    assert restarted.last_header()["seq"] == 5
    batches = StreamReader(root, ["gen-0"]).poll()
    assert [b.seq for b in batches] == list(range(6))


def test_empty_stream_starts_at_zero(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=1, max_age_s=60)
    assert writer.next_seq == 0 and writer.last_header() is None and writer.last_cursor() is None


def test_resume_probes_logarithmically_with_one_listing(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=1, max_age_s=60)
    for i in range(100):
        writer.append({"i": i})
    counter = CountingBackend(root.backend)
    root.backend = counter  # type: ignore[assignment]
    assert ShardWriter(root, "gen-0", max_records=1, max_age_s=60, clean_after_s=None).next_seq == 100
    assert counter.calls["listdir"] == 1  # the hole check (P23), once at start
    assert counter.calls["exists"] <= 2 * 7 + 2  # exponential then binary search: ~2 log2(100), not 100


def test_resume_after_prune_starts_from_low_water_mark(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=1, max_age_s=60)
    for i in range(40):
        writer.append({"i": i})
    assert prune_stream(root, "gen-0", 40) == 39  # all but the last shard
    assert stream_bounds(root, "gen-0") == (39, 40)
    restarted = ShardWriter(root, "gen-0", max_records=1, max_age_s=60)
    assert restarted.next_seq == 40 and restarted.last_header()["seq"] == 39
    assert restarted.append({"i": 40}) == 40


def test_flush_by_record_count(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=3, max_age_s=3600)
    published = [writer.append(r) for r in _records(7)]
    assert published == [None, None, 0, None, None, 1, None]
    assert writer.pending == 1 and writer.maybe_flush() is None  # young: stays pending
    writer.close()
    assert [len(b.records) for b in StreamReader(root, ["gen-0"]).poll()] == [3, 3, 1]


def test_flush_by_age(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=1000, max_age_s=0.05)
    writer.append({"i": 0})
    assert writer.maybe_flush() is None
    time.sleep(0.06)
    writer.append({"i": 1})  # the age is the oldest pending record's
    assert writer.maybe_flush() == 0
    assert writer.maybe_flush() is None  # nothing pending
    assert read_shard(root, "gen-0", 0)[1] == [{"i": 0}, {"i": 1}]


def test_flush_with_nothing_pending_publishes_nothing(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=10, max_age_s=0)
    assert writer.flush() is None and writer.maybe_flush() is None
    assert not root.backend.exists(shard_path("gen-0", 0))


def test_invalid_flush_limits_are_rejected(root: ExperimentRoot) -> None:
    with pytest.raises(StorageError, match="max_records >= 1"):
        ShardWriter(root, "gen-0", max_records=0, max_age_s=1)


def test_generic_fsspec_backend_publishes_without_overwrite(tmp_path: object) -> None:
    """The path of protocols without exclusive create (sftp, hdfs, ...): temporary, existence check, move."""
    import fsspec

    from core.storage.backend import FsspecBackend

    backend = FsspecBackend(fsspec.filesystem("file"), str(tmp_path))
    assert backend.create("streams/s/000000000000.zst", b"first") == 5
    with pytest.raises(FileExistsError):
        backend.create("streams/s/000000000000.zst", b"second")
    backend.replace("streams/s/low_water.json", b"1")
    backend.replace("streams/s/low_water.json", b"2")
    assert backend.read("streams/s/000000000000.zst") == b"first" and backend.read("streams/s/low_water.json") == b"2"
    assert sorted(backend.listdir("streams/s")) == ["000000000000.zst", "low_water.json"]  # no temporaries
    assert backend.read("streams/s/missing.zst") is None and not backend.exists("streams/s/missing.zst")
    assert backend.remove("streams/s/low_water.json") and not backend.remove("streams/s/low_water.json")
    assert 0 <= backend.age_s("streams/s/000000000000.zst") < 60 and backend.size("streams/s/000000000000.zst") == 5
