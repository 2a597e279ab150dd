"""Where a consumer resumes: the newest committed cursor of a stream, and the cursor a group committed."""

from __future__ import annotations

import pytest

from core.errors import StorageError
from core.storage import (
    GROUP_SHARES_BY_RECORD,
    Cursor,
    ExperimentRoot,
    ShardWriter,
    committed_cursor,
    group_cursor,
    newest_commit,
    read_shard,
)
from core.storage.shards import shard_path


def _commit_three(root: ExperimentRoot) -> ShardWriter:
    """``out`` commits input positions 1, 2, 3 (one shard each)."""
    out = ShardWriter(root, "out", max_records=100, max_age_s=60, committing=True)
    for position in (1, 2, 3):
        out.append({"from": position})
        out.flush(cursor=Cursor({"in": position}))
    return out


def test_the_newest_commit_is_where_the_consumer_resumes(root: ExperimentRoot) -> None:
    out = _commit_three(root)
    assert committed_cursor(root, "out") == Cursor({"in": 3})
    assert out.last_cursor() == committed_cursor(root, "out")  # the writer's view is the same rule


def test_uncommitted_records_move_no_cursor(root: ExperimentRoot) -> None:
    """Twin: records appended after the last commit are not published, so the committed cursor stays."""
    out = _commit_three(root)
    out.append({"from": 4})
    out.close()  # dropped: their input is not committed
    assert committed_cursor(root, "out") == Cursor({"in": 3})
    assert ShardWriter(root, "out", max_records=100, max_age_s=60).last_cursor() == Cursor({"in": 3})


def test_a_torn_newest_shard_is_passed_over(root: ExperimentRoot) -> None:
    """Twin: the newest shard is torn (truncated); it is quarantined and the commit before it decides."""
    _commit_three(root)
    data = root.backend.read(shard_path("out", 2)) or b""
    root.backend.replace(shard_path("out", 2), data[: len(data) // 2])
    assert committed_cursor(root, "out") == Cursor({"in": 2})
    assert "quarantined" in read_shard(root, "out", 2)[0]  # a tombstone now: a restarted writer derives it again


def test_a_stream_whose_newest_shard_commits_nothing_reads_empty(root: ExperimentRoot) -> None:
    with ShardWriter(root, "plain", max_records=1, max_age_s=60) as plain:
        for i in range(3):
            plain.append({"i": i})
    assert committed_cursor(root, "plain") == Cursor()
    assert committed_cursor(root, "never-written") == Cursor()


def test_newest_commit_skips_tombstones_and_stops_at_the_newest_shard() -> None:
    committed = {"cursor": {"in": 5}}
    assert newest_commit([{"cursor": None, "quarantined": {}}, committed]) == Cursor({"in": 5})
    assert newest_commit([{"cursor": None}, committed]) is None  # the newest real shard commits nothing
    assert newest_commit([]) is None


def test_a_group_sharing_by_record_is_as_far_as_its_slowest_member() -> None:
    meta = {"sharing": GROUP_SHARES_BY_RECORD, "cursors": {"0": {"a": 5, "b": 2}, "1": {"a": 3}}}
    assert group_cursor(meta) == Cursor({"a": 3, "b": 0})
    assert group_cursor({}) == Cursor()


def test_a_group_that_divided_its_streams_joins_them() -> None:
    """Twin: without ``sharing: by-record`` the members' cursors are disjoint shares, joined."""
    assert group_cursor({"cursors": {"0": {"a": 5}, "1": {"b": 2}}}) == Cursor({"a": 5, "b": 2})


@pytest.mark.parametrize("cursors", [{"0": {"a": -1}}, {"0": {"a": "3"}}, {"0": [1]}])
def test_a_malformed_group_cursor_is_refused(cursors: object) -> None:
    with pytest.raises(StorageError, match="cursor"):
        group_cursor({"sharing": GROUP_SHARES_BY_RECORD, "cursors": cursors})
