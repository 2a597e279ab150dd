"""P23: a shard missing while a later one exists is a gap; writers and readers close it, nothing stalls."""

from __future__ import annotations

import pytest

from core.errors import StreamGapError
from core.storage import Cursor, ExperimentRoot, ShardWriter, StreamReader, list_quarantined, read_shard, stream_gaps
from core.storage.shards import is_tombstone, shard_path
from core.storage.streams import MAX_GAP, tombstone_lost_shard


def _fill(root: ExperimentRoot, stream: str, shards: int) -> None:
    writer = ShardWriter(root, stream, max_records=1, max_age_s=60)
    for i in range(shards):
        writer.append({"i": i})


def _plant_stray(root: ExperimentRoot, stream: str, seq: int) -> None:
    """A careless copy: the bytes of shard 0 under a future number."""
    root.backend.replace(shard_path(stream, seq), root.backend.read(shard_path(stream, 0)) or b"")


def _read_all(root: ExperimentRoot, stream: str) -> list[int]:
    return [r["i"] for batch in StreamReader(root, [stream]).poll() for r in batch.records]


def test_a_restarted_writer_closes_the_hole_below_a_stray_shard(root: ExperimentRoot) -> None:
    _fill(root, "a", 5)
    _plant_stray(root, "a", 6)
    assert stream_gaps(root, "a") == [5]
    writer = ShardWriter(root, "a", max_records=1, max_age_s=60)
    assert writer.next_seq == 7 and stream_gaps(root, "a") == []
    assert writer.append({"i": 7}) == 7
    # every reader passes the hole and the stray (quarantined: its header names shard 0) and sees the new record
    assert _read_all(root, "a") == [0, 1, 2, 3, 4, 7]
    notes = list_quarantined(root)
    assert any(n.get("lost") and n["kept"] is None and "restart" in n["reason"] for n in notes)


def test_a_writer_without_a_hole_tombstones_nothing(root: ExperimentRoot) -> None:
    _fill(root, "a", 5)
    assert ShardWriter(root, "a", max_records=1, max_age_s=60).next_seq == 5
    assert list_quarantined(root) == [] and stream_gaps(root, "a") == []


def test_a_stray_far_ahead_stops_the_writer_and_names_it(root: ExperimentRoot) -> None:
    _fill(root, "a", 3)
    _plant_stray(root, "a", 3 + MAX_GAP + 5)
    with pytest.raises(StreamGapError, match=f"{3 + MAX_GAP + 5:012d}.zst.*Move it out"):
        ShardWriter(root, "a", max_records=1, max_age_s=60)
    assert not root.backend.exists(shard_path("a", 3))  # nothing was tombstoned


def test_a_reader_tombstones_a_lost_shard_only_after_the_grace_period(root: ExperimentRoot) -> None:
    _fill(root, "a", 5)
    root.backend.remove(shard_path("a", 2))
    patient = StreamReader(root, ["a"], prune_check_s=0, gap_grace_s=3600)
    assert [b.seq for b in patient.poll()] == [0, 1]
    assert patient.poll() == [] and patient.lost == 0 and not root.backend.exists(shard_path("a", 2))
    reader = StreamReader(root, ["a"], Cursor({"a": 2}), prune_check_s=0, gap_grace_s=0)
    assert [b.seq for b in reader.poll()] == [3, 4] and reader.lost == 1
    assert [b.seq for b in patient.poll()] == [3, 4]  # the other reader passes the tombstone too
    assert any(n.get("lost") and "found by a reader" in n["reason"] for n in list_quarantined(root))


def test_a_reader_tombstones_every_shard_of_a_wide_gap_at_once(root: ExperimentRoot) -> None:
    _fill(root, "a", 6)
    for seq in (1, 2, 3):
        root.backend.remove(shard_path("a", seq))
    reader = StreamReader(root, ["a"], prune_check_s=0, gap_grace_s=0)
    seen = [b.seq for _ in range(3) for b in reader.poll()]
    assert seen == [0, 4, 5] and reader.lost == 3


def test_a_missing_newest_shard_is_not_a_gap(root: ExperimentRoot) -> None:
    _fill(root, "a", 3)
    reader = StreamReader(root, ["a"], Cursor({"a": 3}), prune_check_s=0, gap_grace_s=0)
    assert reader.poll() == [] and reader.poll() == [] and reader.lost == 0
    assert not root.backend.exists(shard_path("a", 3))  # the writer publishes it normally later
    _fill(root, "a", 1)
    assert [b.seq for b in reader.poll()] == [3]


def test_a_lost_shard_tombstone_never_overwrites_a_real_shard(root: ExperimentRoot) -> None:
    _fill(root, "a", 2)
    before = root.backend.read(shard_path("a", 1))
    assert tombstone_lost_shard(root, "a", 1, "test") is False
    assert root.backend.read(shard_path("a", 1)) == before and list_quarantined(root) == []
    assert tombstone_lost_shard(root, "a", 2, "test") is True
    assert is_tombstone(read_shard(root, "a", 2)[0])
