"""P24-P26: a shard of a newer schema is refused, never quarantined; decompression is bounded; a wrongly
quarantined shard can be restored, and a restore never overwrites records or puts damage back."""

from __future__ import annotations

import io
import json

import pytest
import zstandard

from core.errors import CorruptShardError, NewerFormatError, StorageError
from core.storage import (
    Cursor,
    ExperimentRoot,
    ShardWriter,
    StreamReader,
    list_quarantined,
    prune_stream,
    read_shard,
    restore_quarantined,
)
from core.storage.shards import (
    MAX_EXPANSION,
    SCHEMA_VERSION,
    SMALL_PAYLOAD_BYTES,
    ShardEncoder,
    decode_shard,
    make_header,
    quarantine_shard,
    shard_path,
)

RECORDS = [{"id": i, "goal": "|- ( ph -> ph )"} for i in range(6)]


def three_shards(root: ExperimentRoot) -> None:
    with ShardWriter(root, "gen-0", max_records=2, max_age_s=60) as writer:
        for record in RECORDS:
            writer.append(record)


def shard_of_schema(schema: int, seq: int = 1) -> bytes:
    header = {**make_header("gen-0", seq, 2, {}, None, None), "schema": schema, "a field of the future": [1]}
    return ShardEncoder().encode(header, [json.dumps(r) for r in RECORDS[2:4]])


# --- schema versions ----------------------------------------------------------------------------------


def test_a_shard_of_the_current_schema_with_unknown_extra_fields_is_read(root: ExperimentRoot) -> None:
    three_shards(root)
    root.backend.replace(shard_path("gen-0", 1), shard_of_schema(SCHEMA_VERSION))
    assert [r["id"] for b in StreamReader(root, ["gen-0"]).poll() for r in b.records] == list(range(6))


def test_a_shard_of_a_newer_schema_is_refused_and_never_quarantined(root: ExperimentRoot) -> None:
    three_shards(root)
    newer = shard_of_schema(SCHEMA_VERSION + 1)
    root.backend.replace(shard_path("gen-0", 1), newer)
    reader = StreamReader(root, ["gen-0"])
    with pytest.raises(NewerFormatError, match=r"written by a newer advprover .*upgrade advprover"):
        reader.poll()
    with pytest.raises(NewerFormatError):
        read_shard(root, "gen-0", 1)
    assert root.backend.read(shard_path("gen-0", 1)) == newer  # left in place
    assert root.backend.listdir("quarantine") == [] and reader.quarantined == 0
    assert not isinstance(NewerFormatError("x"), CorruptShardError)


# --- bounded decompression ---------------------------------------------------------------------------


def frame_of(pad_bytes: int) -> bytes:
    """A sound zstd frame (content size, checksum): a header line, then one record padded with ``pad_bytes``
    letters (streamed into the compressor: the payload is never in memory)."""
    header = json.dumps(make_header("gen-0", 0, 1, {}, None, None)).encode() + b"\n"
    start, end = b'{"pad": "', b'"}\n'
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    with compressor.stream_writer(out, size=len(header) + len(start) + pad_bytes + len(end), closefd=False) as writer:
        writer.write(header + start)
        for offset in range(0, pad_bytes, 1 << 20):
            writer.write(b"a" * min(1 << 20, pad_bytes - offset))
        writer.write(end)
    return out.getvalue()


def test_a_small_file_claiming_a_huge_payload_is_refused_before_decompressing() -> None:
    assert decode_shard(frame_of(1000), stream="gen-0", seq=0, where="sound")[1] == [{"pad": "a" * 1000}]
    bomb = frame_of(256 << 20)  # 256 MiB of one letter in a few kilobytes
    assert len(bomb) * MAX_EXPANSION < 256 << 20
    with pytest.raises(CorruptShardError, match=r"claims \d+ bytes from \d+ \(limit"):
        decode_shard(bomb, stream="gen-0", seq=0, where="bomb")


def test_a_repetitive_shard_below_the_small_payload_size_is_read() -> None:
    record = json.dumps({"id": 0, "pad": "a" * (SMALL_PAYLOAD_BYTES // 2)})
    data = ShardEncoder().encode(make_header("gen-0", 0, 1, {}, None, None), [record])
    assert len(data) * MAX_EXPANSION < SMALL_PAYLOAD_BYTES // 2  # far beyond the ratio, but small
    assert decode_shard(data, stream="gen-0", seq=0, where="small")[1][0]["id"] == 0


def test_a_writer_refuses_a_shard_readers_would_refuse() -> None:
    record = json.dumps({"id": 0, "pad": "a" * (4 * SMALL_PAYLOAD_BYTES)})
    with pytest.raises(StorageError, match=f"more than {MAX_EXPANSION} times"):
        ShardEncoder().encode(make_header("gen-0", 0, 1, {}, None, None), [record])
    varied = json.dumps({"id": 0, "pad": " ".join(str(i * 7919 % 100003) for i in range(600_000))})
    data = ShardEncoder().encode(make_header("gen-0", 0, 1, {}, None, None), [varied])  # > 1 MiB, ordinary ratio
    assert decode_shard(data, stream="gen-0", seq=0, where="varied")[1][0]["id"] == 0


# --- restoring quarantined shards ----------------------------------------------------------------------


def quarantine_good_shard(root: ExperimentRoot, seq: int = 1) -> str:
    """What an older advprover did to a shard it could not read: quarantined; returns the kept file's name."""
    data = root.backend.read(shard_path("gen-0", seq))
    assert data is not None
    kept = quarantine_shard(root, "gen-0", seq, data, "schema version 2, this reader knows 1")
    return kept.rsplit("/", 1)[1]


def test_a_wrongly_quarantined_shard_is_restored(root: ExperimentRoot) -> None:
    three_shards(root)
    original = root.backend.read(shard_path("gen-0", 1))
    name = quarantine_good_shard(root)
    assert [b.seq for b in StreamReader(root, ["gen-0"]).poll()] == [0, 2]  # the tombstone hides its records
    assert restore_quarantined(root, name) == [root.backend.location(shard_path("gen-0", 1))]
    assert root.backend.read(shard_path("gen-0", 1)) == original
    assert list_quarantined(root) == [] and root.backend.listdir("quarantine/gen-0") == []
    reader = StreamReader(root, ["gen-0"], Cursor({"gen-0": 0}))
    assert [r["id"] for b in reader.poll() for r in b.records] == list(range(6))


def test_restore_all_and_by_stream_slash_name(root: ExperimentRoot) -> None:
    three_shards(root)
    first, second = quarantine_good_shard(root, 0), quarantine_good_shard(root, 2)
    assert len(restore_quarantined(root, f"gen-0/{first}")) == 1
    assert restore_quarantined(root) == [root.backend.location(shard_path("gen-0", 2))]
    assert second not in root.backend.listdir("quarantine/gen-0")
    assert [len(b.records) for b in StreamReader(root, ["gen-0"]).poll()] == [2, 2, 2]


def test_restore_refuses_to_overwrite_a_shard_with_records(root: ExperimentRoot) -> None:
    three_shards(root)
    name = quarantine_good_shard(root)
    other = ShardEncoder().encode(make_header("gen-0", 1, 1, {}, None, None), [json.dumps({"id": "other"})])
    root.backend.replace(shard_path("gen-0", 1), other)
    with pytest.raises(StorageError, match="exists and holds records"):
        restore_quarantined(root, name)
    assert root.backend.read(shard_path("gen-0", 1)) == other and len(list_quarantined(root)) == 1


def test_restore_refuses_bytes_that_are_still_damaged(root: ExperimentRoot) -> None:
    three_shards(root)
    root.backend.replace(shard_path("gen-0", 1), b"not a shard")
    StreamReader(root, ["gen-0"]).poll()  # quarantined, rightly
    [note] = list_quarantined(root)
    tombstone = root.backend.read(shard_path("gen-0", 1))
    with pytest.raises(StorageError, match="is still damaged .*not a zstd frame"):
        restore_quarantined(root, note["kept"].rsplit("/", 1)[1])
    assert root.backend.read(shard_path("gen-0", 1)) == tombstone and len(list_quarantined(root)) == 1


def test_restore_refuses_an_unknown_name_and_a_pruned_place(root: ExperimentRoot) -> None:
    three_shards(root)
    with pytest.raises(StorageError, match="no quarantined shard named 'nothing.zst'"):
        restore_quarantined(root, "nothing.zst")
    name = quarantine_good_shard(root, 0)
    prune_stream(root, "gen-0", 2)
    with pytest.raises(StorageError, match="pruned past shard 0"):
        restore_quarantined(root, name)


def test_restore_refuses_the_tombstone_of_another_copy(root: ExperimentRoot) -> None:
    three_shards(root)
    name = quarantine_good_shard(root)
    tombstone = root.backend.read(shard_path("gen-0", 1))
    assert tombstone is not None
    quarantine_shard(root, "gen-0", 1, tombstone, "quarantined again")  # a second tombstone, naming another copy
    with pytest.raises(StorageError, match="tombstone of another quarantined copy"):
        restore_quarantined(root, name)


def test_an_unreadable_quarantine_note_is_listed_as_such(root: ExperimentRoot) -> None:
    three_shards(root)
    quarantine_good_shard(root)
    [note] = list_quarantined(root)
    assert note["reason"].startswith("schema version 2")
    [name] = [n for n in root.backend.listdir("quarantine/gen-0") if n.endswith(".reason.json")]
    for damaged in (b"[1, 2]", b"{oops", b"[" * 100_000):
        root.backend.replace(f"quarantine/gen-0/{name}", damaged)
        [note] = list_quarantined(root)
        assert note["reason"] == "unreadable quarantine note" and note["kept"].endswith(".zst")
