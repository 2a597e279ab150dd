"""P10-P11: damaged shards are detected, quarantined with a logged reason, replaced by tombstones, skipped."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
import zstandard

from core.errors import CorruptShardError
from core.storage import Cursor, ExperimentRoot, ShardWriter, StreamReader, list_quarantined, read_shard
from core.storage.shards import ShardEncoder, decode_shard, make_header, shard_path

RECORDS = [{"id": i, "goal": "|- ( ph -> ph )", "proof": ["a", "b"] * i} for i in range(6)]


def _three_shards(root: ExperimentRoot) -> None:
    writer = ShardWriter(root, "gen-0", max_records=2, max_age_s=60)
    for record in RECORDS:
        writer.append(record)


def _compress(payload: bytes, **options: bool) -> bytes:
    return zstandard.ZstdCompressor(**{"write_checksum": True, "write_content_size": True, **options}).compress(payload)


def _payload_with_header(**changes: object) -> bytes:
    header = {**make_header("gen-0", 1, 2, {}, None, None), **changes}
    return (json.dumps(header) + "\n" + "\n".join(json.dumps(r) for r in RECORDS[2:4]) + "\n").encode()


def _flip_bit(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1 :]


DAMAGES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated by one byte": (lambda d: d[:-1], "truncated: the zstd frame is incomplete"),
    "one bit flipped": (_flip_bit, "zstd:"),
    "empty file": (lambda d: b"", "empty file"),
    "unknown older schema version": (lambda d: _compress(_payload_with_header(schema=0)), "schema version 0"),
    "schema version not a number": (lambda d: _compress(_payload_with_header(schema="2")), "schema version '2'"),
    "garbage JSON": (lambda d: _compress(b"this is {not JSON\n"), "header line is not JSON"),
    "bad record line": (lambda d: _compress(_payload_with_header() + b"{oops\n"), "record line 4 is not JSON"),
    "count mismatch": (lambda d: _compress(_payload_with_header(count=5)), "header says 5 records, the shard holds 2"),
    "seq mismatch": (lambda d: _compress(_payload_with_header(seq=7)), "header says seq 7, the file name says 1"),
    "stream mismatch": (lambda d: _compress(_payload_with_header(stream="other")), "header names stream 'other'"),
    "not zstd": (lambda d: b"plain text, not a zstd frame", "not a zstd frame"),
    "no checksum": (lambda d: _compress(_payload_with_header(), write_checksum=False), "no content checksum"),
    "no content size": (
        lambda d: _compress(_payload_with_header(), write_content_size=False),
        "does not record its content size",
    ),
    "two frames": (lambda d: d + d, "bytes after the end of the zstd frame"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_shard_is_quarantined_and_skipped(
    root: ExperimentRoot, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _three_shards(root)
    corrupt, reason = DAMAGES[damage]
    original = root.backend.read(shard_path("gen-0", 1))
    root.backend.replace(shard_path("gen-0", 1), corrupt(original))
    damaged_bytes = root.backend.read(shard_path("gen-0", 1))
    reader = StreamReader(root, ["gen-0"])
    with caplog.at_level(logging.WARNING, logger="core.storage"):
        batches = reader.poll()
    assert [b.seq for b in batches] == [0, 2]  # the reader went on past the damaged shard
    assert [r["id"] for b in batches for r in b.records] == [0, 1, 4, 5]
    assert reader.quarantined == 1 and reader.cursor == Cursor({"gen-0": 3})
    message = next(r.getMessage() for r in caplog.records if "quarantined" in r.getMessage())
    assert root.backend.location(shard_path("gen-0", 1)) in message and reason in message
    kept = [n for n in root.backend.listdir("quarantine/gen-0") if n.endswith(".zst")]
    assert len(kept) == 1 and root.backend.read(f"quarantine/gen-0/{kept[0]}") == damaged_bytes
    note = json.loads(root.backend.read(f"quarantine/gen-0/{kept[0][:-4]}.reason.json"))
    assert reason in note["reason"] and note["file"].endswith(shard_path("gen-0", 1))
    header, records = read_shard(root, "gen-0", 1)  # the tombstone
    assert records == [] and reason in header["quarantined"]["reason"]
    [listed] = list_quarantined(root)  # what a status tool shows
    assert reason in listed["reason"] and listed["kept"] == root.backend.location(f"quarantine/gen-0/{kept[0]}")


def test_the_good_twin_is_read_intact(root: ExperimentRoot) -> None:
    _three_shards(root)
    reader = StreamReader(root, ["gen-0"])
    assert [r for b in reader.poll() for r in b.records] == RECORDS and reader.quarantined == 0
    assert root.backend.listdir("quarantine") == [] and list_quarantined(root) == []


def test_a_read_without_quarantine_raises_and_leaves_the_damaged_shard(root: ExperimentRoot) -> None:
    _three_shards(root)
    root.backend.replace(shard_path("gen-0", 1), b"")
    with pytest.raises(CorruptShardError, match="empty file"):
        read_shard(root, "gen-0", 1, quarantine=False)
    assert root.backend.read(shard_path("gen-0", 1)) == b""  # still there, untouched
    assert root.backend.listdir("quarantine") == []
    assert read_shard(root, "gen-0", 2, quarantine=False)[1] == RECORDS[4:]  # its intact twin reads as usual


def test_a_reader_from_an_older_cursor_passes_the_tombstone(root: ExperimentRoot) -> None:
    _three_shards(root)
    root.backend.replace(shard_path("gen-0", 1), b"")
    StreamReader(root, ["gen-0"]).poll()
    restarted = StreamReader(root, ["gen-0"], Cursor({"gen-0": 1}))
    assert [b.seq for b in restarted.poll()] == [2] and restarted.quarantined == 0  # no hole, no re-quarantine


def test_every_single_bit_flip_is_caught_or_harmless() -> None:
    """No flipped bit anywhere in a shard ever yields wrong records: it is rejected or decodes identically.

    (A property of the format alone; the storage path of a rejected shard is covered above.)
    """
    good = ShardEncoder().encode(make_header("gen-0", 0, 2, {}, None, None), [json.dumps(r) for r in RECORDS[:2]])
    undetected = 0
    for position in range(len(good)):
        for bit in range(8):
            damaged = good[:position] + bytes([good[position] ^ (1 << bit)]) + good[position + 1 :]
            try:
                header, records = decode_shard(damaged, stream="gen-0", seq=0, where="shard")
            except CorruptShardError:
                continue
            undetected += 1
            assert records == RECORDS[:2] and header["count"] == 2
    assert undetected <= 8  # a few frame-header bits that change nothing of the content


def test_a_flaky_read_is_not_quarantined(root: ExperimentRoot) -> None:
    """A reader reads a damaged-looking shard again before quarantining it; if the bytes changed it uses them."""
    _three_shards(root)
    backend = root.backend
    reads = {"n": 0}

    class FlakyOnce:
        def __getattr__(self, name: str) -> object:
            return getattr(backend, name)

        def read(self, rel: str) -> bytes | None:
            reads["n"] += 1
            data = backend.read(rel)
            return data[:-3] if reads["n"] == 1 and data else data

    root.backend = FlakyOnce()  # type: ignore[assignment]
    reader = StreamReader(root, ["gen-0"])
    assert [r for b in reader.poll() for r in b.records] == RECORDS
    assert reader.quarantined == 0 and backend.listdir("quarantine") == []
