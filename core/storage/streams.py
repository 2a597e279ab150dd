"""Streams of shards: writers that publish them, readers that follow them, cursors that commit progress.

A stream is owned by one writer and numbered 0, 1, 2, ... with no hole from its low-water mark on (pruning
removes a prefix; a damaged shard is replaced by a tombstone). Hence:

* a reader only ever asks for the *next* number of each stream it follows: one storage call per stream when
  nothing is new, whatever the stream's length, and temporaries are never opened;
* a restarted writer finds its next number by exponential then binary search over ``exists`` from the
  low-water mark (O(log n) calls), and checks with one listing that no hole lies below it;
* publishing a number that exists fails: a second writer on a stream is detected and stopped.

Exactly-once consumption: a consumer writes its input cursor into the header of its own output shards
(:meth:`ShardWriter.set_commit` / ``flush(cursor=...)``). Once a writer has a commit point it only ever
publishes the records appended before its latest commit point, so every published output shard carries a
cursor consistent with the outputs published up to it; on restart the consumer resumes from
:meth:`ShardWriter.last_cursor`, and inputs consumed but not yet committed are processed again.

Gaps (protocol rule P23): a shard missing while a later shard of its stream exists was lost (deleted, or a
stray file with a future number was dropped into the folder). Its writer will never write it, so nothing
would ever fill it and its consumers would wait forever. A restarted writer replaces every such hole below
its end by a *lost-shard tombstone* (a valid empty shard, with a note in ``quarantine/``) before it
publishes; a reader whose next shard stays missing while a later one exists does the same after
``gap_grace_s``. A hole of more than :data:`MAX_GAP` shards is not a loss but a stray file far ahead:
:class:`StreamGapError` stops the writer and names the file to move away.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import CorruptShardError, StorageError, StreamConflictError, StreamGapError, StreamPrunedError
from core.storage.backend import is_temporary
from core.storage.root import (
    CHECKPOINTS_DIR,
    HEARTBEATS_DIR,
    QUARANTINE_DIR,
    STREAMS_DIR,
    ExperimentRoot,
    check_name,
    json_bytes,
    json_copy,
)
from core.storage.shards import (
    ShardEncoder,
    check_record_kind,
    decode_shard,
    is_tombstone,
    make_header,
    parse_shard_name,
    producer_info,
    quarantine_shard,
    shard_path,
)

logger = logging.getLogger(__name__)

MAX_GAP = 1000
"""Most missing shards a hole may span to be tombstoned as lost; a larger one stops the writer (StreamGapError)."""


class Cursor:
    """The next sequence number to read, per stream. A small immutable JSON value."""

    __slots__ = ("_positions",)

    def __init__(self, positions: Mapping[str, int] | None = None) -> None:
        self._positions: dict[str, int] = {}
        for stream, seq in (positions or {}).items():
            if not isinstance(stream, str) or type(seq) is not int or seq < 0:
                raise StorageError(f"invalid cursor entry {stream!r}: {seq!r} (need a stream name and a seq >= 0)")
            self._positions[stream] = seq

    def __getitem__(self, stream: str) -> int:
        return self._positions[stream]

    def get(self, stream: str, default: int = 0) -> int:
        return self._positions.get(stream, default)

    def __contains__(self, stream: object) -> bool:
        return stream in self._positions

    def __iter__(self) -> Iterator[str]:
        return iter(self._positions)

    def __len__(self) -> int:
        return len(self._positions)

    def items(self) -> Iterable[tuple[str, int]]:
        return self._positions.items()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cursor) and other._positions == self._positions

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._positions.items())))

    def __repr__(self) -> str:
        return f"Cursor({self.to_json()!r})"

    def merged(self, other: Cursor) -> Cursor:
        """Both cursors' streams; the furthest position where both have one (e.g. to join disjoint shares)."""
        positions = dict(self._positions)
        for stream, seq in other.items():
            positions[stream] = max(seq, positions.get(stream, 0))
        return Cursor(positions)

    def to_json(self) -> dict[str, int]:
        return dict(sorted(self._positions.items()))

    @classmethod
    def from_json(cls, value: Mapping[str, int] | str | None) -> Cursor:
        """From :meth:`to_json`'s value, or its JSON text; None gives an empty cursor."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as e:
                raise StorageError(f"cursor is not valid JSON: {e}") from None
        if value is not None and not isinstance(value, Mapping):
            raise StorageError(f"a cursor is a JSON object of stream -> seq, not {type(value).__name__}")
        return cls(value)


@dataclass(frozen=True)
class ShardBatch:
    """One shard as returned by a reader. ``cursor`` is the reader's position right after it."""

    stream: str
    seq: int
    header: dict[str, Any]
    records: list[dict[str, Any]]
    cursor: Cursor = field(default_factory=Cursor, compare=False)


# --- positions: low-water marks and the end of a stream ---------------------------------------


def _low_water_path(stream: str) -> str:
    return f"{STREAMS_DIR}/{stream}/low_water.json"


def _read_mark(root: ExperimentRoot, stream: str) -> dict[str, int]:
    """The low-water file: ``below`` (pruned below it), ``from`` (where an unfinished prune started), and
    ``records`` (how many records the pruned shards held; 0 in marks written before it was counted)."""
    data = root.backend.read(_low_water_path(stream))
    if data is None:
        return {"below": 0, "from": 0, "records": 0}
    try:
        mark = json.loads(data)
        return {"below": int(mark["below"]), "from": int(mark["from"]), "records": int(mark.get("records", 0))}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise StorageError(
            f"{root.backend.location(_low_water_path(stream))} is unreadable ({e}): it records which shards "
            f"were pruned; restore it or remove it if stream {stream} was never pruned"
        ) from None


def low_water(root: ExperimentRoot, stream: str) -> int:
    """Every shard of ``stream`` below this number was pruned (0 if never pruned)."""
    return _read_mark(root, stream)["below"]


def pruned_prefix(root: ExperimentRoot, stream: str) -> tuple[int, int]:
    """(low-water mark, how many records the shards below it held), read together (one read)."""
    mark = _read_mark(root, stream)
    return mark["below"], mark["records"]


def newest_commit(headers_newest_first: Iterable[dict[str, Any]]) -> Cursor | None:
    """The cursor committed by a stream, from its shard headers given newest first: tombstones are passed
    over and the newest other shard decides (None if it carries no cursor, or if there is no such shard).

    The one rule for "where does the consumer that writes this stream resume", shared by
    :func:`committed_cursor`, :meth:`ShardWriter.last_cursor` and readers that have the headers at hand
    (``jobs.status``, which reads every shard once and nothing more)."""
    for header in headers_newest_first:
        if is_tombstone(header):
            continue
        cursor = header.get("cursor")
        return None if cursor is None else Cursor(cursor)
    return None


def _headers_newest_first(root: ExperimentRoot, stream: str, low: int, end: int) -> Iterator[dict[str, Any]]:
    """The headers of the shards ``end - 1`` down to ``low`` (each with its ``seq``), read one at a time, as
    they are asked for: finding a commit usually reads one shard, not the stream's history."""
    for seq in range(end - 1, low - 1, -1):
        yield {**read_shard(root, stream, seq)[0], "seq": seq}


def committed_cursor(root: ExperimentRoot, stream: str) -> Cursor:
    """The newest input cursor committed in ``stream``'s shard headers (empty if none): where the consumer
    that writes ``stream`` resumes (:func:`newest_commit`). Pruning keeps a stream's last shard, so a
    committed cursor is never lost; a stream whose newest shard commits nothing (a producer's) reads empty."""
    low, end = stream_bounds(root, stream)
    return newest_commit(_headers_newest_first(root, stream, low, end)) or Cursor()


GROUP_SHARES_BY_RECORD = "by-record"
"""A group's ``sharing`` when every member reads every stream and keeps its own share of the records."""


def group_cursor(meta: Mapping[str, Any]) -> Cursor:
    """The position up to which a group of consumers has consumed each stream, from the metadata it commits
    with (``cursors``: member -> cursor, and ``sharing``), e.g. a trainer group's checkpoint metadata.

    Members that share streams by record (:data:`GROUP_SHARES_BY_RECORD`) each read every stream: the group
    is past a shard only when its slowest member is (the lowest cursor; a member without a stream counts as
    0). Older groups divided the streams among members: their cursors are disjoint, and joined.
    """
    cursors = [Cursor.from_json(cursor) for cursor in (meta.get("cursors") or {}).values()]
    if meta.get("sharing") != GROUP_SHARES_BY_RECORD:
        joined = Cursor()
        for cursor in cursors:
            joined = joined.merged(cursor)
        return joined
    streams = sorted({stream for cursor in cursors for stream in cursor})
    return Cursor({stream: min(cursor.get(stream, 0) for cursor in cursors) for stream in streams})


def _search_end(root: ExperimentRoot, stream: str, start: int) -> int:
    """First missing seq at or after ``start``, given that shards from ``start`` on have no hole."""
    exists = root.backend.exists
    if not exists(shard_path(stream, start)):
        return start
    present, step = start, 1
    while exists(shard_path(stream, start + step)):
        present, step = start + step, step * 2
    missing = start + step
    while missing - present > 1:
        middle = (present + missing) // 2
        if exists(shard_path(stream, middle)):
            present = middle
        else:
            missing = middle
    return missing


def stream_bounds(root: ExperimentRoot, stream: str) -> tuple[int, int]:
    """(low-water mark, next sequence number to publish) of a stream, in O(log n) calls, no listing."""
    check_name(stream, "stream")
    while True:
        mark = low_water(root, stream)
        end = _search_end(root, stream, mark)
        again = low_water(root, stream)
        if again == mark or end >= again:  # a prune between our probes moves the mark first: search again
            return again, max(end, again)


# --- gaps: shards missing below the newest one ------------------------------------------------


def _present_seqs(root: ExperimentRoot, stream: str) -> list[int]:
    """The sequence numbers of the shards of ``stream`` (one listing), sorted."""
    names = root.backend.listdir(f"{STREAMS_DIR}/{stream}")
    return sorted(seq for name in names if (seq := parse_shard_name(name)) is not None)


def stream_gaps(root: ExperimentRoot, stream: str) -> list[int]:
    """Shard numbers missing between the low-water mark and the newest shard present (one listing).

    Such a shard will never be written (P5: a writer publishes ``n + 1`` only after ``n``): it was lost, or
    the newer shard is a stray. Holes already closed by a lost-shard tombstone are not gaps.
    """
    check_name(stream, "stream")
    present = _present_seqs(root, stream)
    mark = low_water(root, stream)  # read after the listing: a concurrent prune moved it first
    present = [seq for seq in present if seq >= mark]
    if not present:
        return []
    have = set(present)
    if present[-1] - mark + 1 - len(have) > MAX_GAP:
        raise StreamGapError(
            f"stream {stream}: shard {present[-1]} lies more than {MAX_GAP} shards beyond the others "
            f"({root.backend.location(shard_path(stream, present[-1]))}): a stray file, not a lost shard. "
            "Move it out of the experiment folder, then restart"
        )
    return [seq for seq in range(mark, present[-1]) if seq not in have]


def tombstone_lost_shard(root: ExperimentRoot, stream: str, seq: int, reason: str) -> bool:
    """Close the hole at ``seq`` with a lost-shard tombstone and a quarantine note; False if a shard is there.

    The tombstone is published without overwriting, so a real shard that appears meanwhile wins and is read.
    """
    backend = root.backend
    header = make_header(stream, seq, 0, producer_info(), None, None)
    header["quarantined"] = {"file": None, "reason": reason}
    try:
        backend.create(shard_path(stream, seq), ShardEncoder().encode(header, []))
    except FileExistsError:
        return False
    note = {
        "file": backend.location(shard_path(stream, seq)),
        "reason": reason,
        "time": header["created"],
        "by": producer_info(),
        "lost": True,
    }
    backend.replace(
        f"{QUARANTINE_DIR}/{stream}/{seq:012d}-lost.reason.json", json_bytes(note, what="quarantine note", indent=2)
    )
    logger.warning(
        "stream %s: shard %d is missing while later shards exist (%s): replaced by a lost-shard "
        "tombstone; its records, if it had any, are lost",
        stream,
        seq,
        reason,
    )
    return True


def close_gaps(root: ExperimentRoot, stream: str, reason: str) -> list[int]:
    """Tombstone every gap of ``stream`` (:func:`stream_gaps`); returns the numbers tombstoned."""
    return [seq for seq in stream_gaps(root, stream) if tombstone_lost_shard(root, stream, seq, reason)]


# --- writer -----------------------------------------------------------------------------------


class ShardWriter:
    """Publishes records to one stream, as shards flushed by record count or age, whichever comes first.

    A *committing* writer (``committing=True``, for a consumer; any writer becomes one at its first
    :meth:`set_commit` or ``flush(cursor=...)``) publishes only the records appended before its latest
    commit point, each shard carrying that cursor; records appended after it wait for the next commit (and
    are dropped by :meth:`close`: their inputs are uncommitted, so a restarted consumer processes them
    again). ``clean_after_s``: remove this stream's temporaries older than that at start (None: don't).
    ``record_type`` and ``record_version`` (both or neither) are written into every shard's header: which
    record type the caller's records are, this layer does not know.
    """

    def __init__(
        self,
        root: ExperimentRoot,
        stream: str,
        *,
        max_records: int,
        max_age_s: float,
        producer: dict[str, Any] | None = None,
        committing: bool = False,
        clean_after_s: float | None = 3600.0,
        record_type: str | None = None,
        record_version: int | None = None,
    ) -> None:
        if max_records < 1 or max_age_s < 0:
            raise StorageError(
                f"stream {stream}: need max_records >= 1 and max_age_s >= 0, got {max_records} and {max_age_s}"
            )
        self._root = root
        self._backend = root.backend
        self.stream = check_name(stream, "stream")
        self.max_records = max_records
        self.max_age_s = max_age_s
        self._record_kind = check_record_kind(record_type, record_version, stream)
        self._producer = producer_info(json_copy(producer or {}, what=f"producer info of stream {stream}"))
        self._encoder = ShardEncoder()
        self._json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        self._lines: list[str] = []
        self._oldest = 0.0
        self._committing = committing
        self._commit: tuple[dict[str, int], dict[str, Any] | None] | None = None
        self._commit_at = 0  # records before this index are covered by the pending commit
        self._commit_dirty = False
        self._last_published_commit: tuple[dict[str, int], dict[str, Any] | None] | None = None
        self._conflict: StreamConflictError | None = None
        if clean_after_s is not None:
            _clean_folder(root, f"{STREAMS_DIR}/{stream}", clean_after_s)
        close_gaps(root, stream, "missing below the writer's end at its restart")
        self._low_water, self._next_seq = stream_bounds(root, stream)
        if self._next_seq:
            logger.info("stream %s: resuming at shard %d", stream, self._next_seq)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def pending(self) -> int:
        return len(self._lines)

    def append(self, record: dict[str, Any]) -> int | None:
        """Add a record; returns the seq of the shard published if this reached ``max_records``."""
        self._check_usable()
        if type(record) is not dict:
            raise StorageError(f"stream {self.stream}: a record is a dict, not {type(record).__name__}")
        try:
            line = self._json.encode(record)
        except (TypeError, ValueError) as e:
            raise StorageError(f"stream {self.stream}: record is not JSON-serializable: {e}") from None
        if not self._lines:
            self._oldest = time.monotonic()
        self._lines.append(line)
        if len(self._lines) >= self.max_records:
            return self._publish_ready()
        return None

    def maybe_flush(self) -> int | None:
        """Publish if the oldest pending record is older than ``max_age_s`` (or a commit waits that long)."""
        self._check_usable()
        if (self._lines or self._commit_dirty) and time.monotonic() - self._oldest >= self.max_age_s:
            return self._publish_ready()
        return None

    def set_commit(self, cursor: Cursor, extra: dict[str, Any] | None = None) -> None:
        """Mark every record appended so far as derived from inputs before ``cursor``.

        The cursor (and ``extra``) goes into the header of the next shard published.
        """
        self._check_usable()
        if not isinstance(cursor, Cursor):
            raise StorageError(f"stream {self.stream}: set_commit needs a Cursor, not {type(cursor).__name__}")
        commit = (cursor.to_json(), json_copy(extra, what=f"extra metadata of stream {self.stream}"))
        if not self._lines and not self._commit_dirty:
            self._oldest = time.monotonic()
        self._committing = True
        self._commit, self._commit_at = commit, len(self._lines)
        self._commit_dirty = commit != self._last_published_commit or self._commit_at > 0

    def flush(self, *, cursor: Cursor | None = None, extra: dict[str, Any] | None = None) -> int | None:
        """Publish pending records now; returns the seq published, or None if there was nothing to publish.

        With a cursor, commits it with every pending record (an empty shard if there is none and the cursor
        moved). Without one, a committing writer publishes up to its last commit point only.
        """
        self._check_usable()
        if cursor is not None:
            self.set_commit(cursor, extra)
            return self._publish_ready()
        if self._committing:
            return self._publish_ready()
        if not self._lines:
            return None
        return self._publish(len(self._lines), None, json_copy(extra, what="extra metadata"))

    def close(self) -> None:
        """Publish what may be published; records after the last commit point of a committing writer are
        dropped (their inputs are not committed, so a restarted consumer derives them again)."""
        if self._conflict is None:
            self.flush()
            if self._lines and self._committing:
                logger.info(
                    "stream %s: %d records after the last commit point are not published; "
                    "their inputs will be processed again",
                    self.stream,
                    len(self._lines),
                )
        self._lines = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()

    def last_header(self) -> dict[str, Any] | None:
        """Header of the last published shard of this stream (None if there is none left)."""
        if self._next_seq - 1 < self._low_water:
            return None
        return read_shard(self._root, self.stream, self._next_seq - 1)[0]

    def last_cursor(self) -> Cursor | None:
        """The cursor committed by the newest shard of this stream: where a restarted consumer resumes
        (:func:`newest_commit`: tombstones are passed over; None if there is no commit)."""
        newest = next(
            (
                header
                for header in _headers_newest_first(self._root, self.stream, self._low_water, self._next_seq)
                if not is_tombstone(header)
            ),
            None,
        )
        if newest is not None and newest["cursor"] is not None and newest["seq"] == self._next_seq - 1:
            self._last_published_commit = (newest["cursor"], newest["extra"])
        return newest_commit([newest] if newest is not None else [])

    def _check_usable(self) -> None:
        if self._conflict is not None:
            raise self._conflict

    def _publish_ready(self) -> int | None:
        """Publish what may be published now: everything, or up to the commit point of a committing writer."""
        if not self._committing:
            return self._publish(len(self._lines), None, None) if self._lines else None
        if not self._commit_dirty or self._commit is None:
            return None
        cursor, extra = self._commit
        return self._publish(self._commit_at, cursor, extra)

    def _publish(self, count: int, cursor: dict[str, int] | None, extra: dict[str, Any] | None) -> int:
        seq = self._next_seq
        header = make_header(self.stream, seq, count, self._producer, cursor, extra, self._record_kind)
        data = self._encoder.encode(header, self._lines[:count])
        try:
            self._backend.create(shard_path(self.stream, seq), data)
        except FileExistsError:
            self._conflict = StreamConflictError(
                f"stream {self.stream}: shard {seq} already exists at "
                f"{self._backend.location(shard_path(self.stream, seq))}: another writer publishes to this "
                "stream (two jobs started for one role and rank?). This writer stopped; run one writer per stream"
            )
            raise self._conflict from None
        self._next_seq = seq + 1
        del self._lines[:count]
        self._oldest = time.monotonic()
        if cursor is not None:
            self._last_published_commit = (cursor, extra)
            self._commit_at, self._commit_dirty = 0, False
        return seq


def read_shard(
    root: ExperimentRoot, stream: str, seq: int, *, quarantine: bool = True
) -> tuple[dict[str, Any], list[dict]]:
    """One shard's header and records; a damaged shard is quarantined and its tombstone returned instead.

    With ``quarantine=False`` (a read-only look, as ``jobs.status`` takes) a damaged shard raises
    :class:`CorruptShardError` and is left where it is. A shard of a newer schema raises
    :class:`NewerFormatError` either way: it is never quarantined.
    """
    path = shard_path(stream, seq)
    data = root.backend.read(path)
    if data is None:
        raise StorageError(f"stream {stream}: shard {seq} does not exist ({root.backend.location(path)})")
    if not quarantine:
        return decode_shard(data, stream=stream, seq=seq, where=root.backend.location(path))
    return _decode_or_quarantine(root, stream, seq, data)[:2]


def _decode_or_quarantine(
    root: ExperimentRoot, stream: str, seq: int, data: bytes
) -> tuple[dict[str, Any], list[dict], bool]:
    """(header, records, quarantined_now). A damaged shard is read again once before being quarantined."""
    where = root.backend.location(shard_path(stream, seq))
    try:
        return (*decode_shard(data, stream=stream, seq=seq, where=where), False)
    except CorruptShardError as first:
        again = root.backend.read(shard_path(stream, seq))
        if again is None:
            raise StorageError(
                f"{where} disappeared while being read: pruned below a reader's position? "
                "Prune only below the cursors every consumer has committed"
            ) from None
        if again != data:  # changed under us (a tombstone, or a flaky read): decode what is there now
            return _decode_or_quarantine(root, stream, seq, again)
        reason = getattr(first, "reason", str(first))
        quarantine_shard(root, stream, seq, data, reason)
        tombstone = decode_shard(root.backend.read(shard_path(stream, seq)) or b"", stream=stream, seq=seq, where=where)
        return (*tombstone, True)


# --- reader -----------------------------------------------------------------------------------


class StreamReader:
    """Follows streams in order from a cursor; each :meth:`poll` returns the shards published since.

    Damaged shards are quarantined (see :func:`quarantine_shard`), counted in :attr:`quarantined` and
    skipped, as are tombstones. A stream whose next shard stays missing is checked every ``prune_check_s``
    (one read of its mark, and one listing): if its low-water mark has passed this reader's position,
    :class:`StreamPrunedError`; if a later shard exists, the missing one is a gap, tombstoned once it has
    been seen missing for ``gap_grace_s`` (counted in :attr:`lost`).
    """

    def __init__(
        self,
        root: ExperimentRoot,
        streams: Iterable[str],
        cursor: Cursor | None = None,
        *,
        prune_check_s: float = 30.0,
        gap_grace_s: float = 60.0,
    ) -> None:
        self._root = root
        self._positions: dict[str, int] = dict(cursor.items()) if cursor is not None else {}
        self._streams: list[str] = []
        self._checked_marks: dict[str, float] = {}
        self._gaps_seen: dict[tuple[str, int], float] = {}
        self.prune_check_s = prune_check_s
        self.gap_grace_s = gap_grace_s
        self.quarantined = 0
        self.lost = 0
        self.add_streams(streams)

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    @property
    def cursor(self) -> Cursor:
        """The position after everything returned so far (with any stream of the initial cursor)."""
        return Cursor(self._positions)

    def add_streams(self, streams: Iterable[str]) -> None:
        """Follow more streams: from the cursor's position if it has one, else from the stream's start."""
        if isinstance(streams, str):
            raise StorageError(f"add_streams takes a list of stream names, not the string {streams!r}")
        for stream in streams:
            if stream in self._streams:
                continue
            check_name(stream, "stream")
            mark = low_water(self._root, stream)
            position = self._positions.setdefault(stream, mark)
            self._raise_if_pruned(stream, position, mark)
            self._streams.append(stream)
            self._checked_marks[stream] = time.monotonic()

    def poll(self, max_shards: int | None = None) -> list[ShardBatch]:
        """Shards published since the last poll, in order within each stream, round-robin across streams."""
        batches: list[ShardBatch] = []
        active = list(self._streams)
        while active and (max_shards is None or len(batches) < max_shards):
            still_active = []
            for stream in active:
                if max_shards is not None and len(batches) >= max_shards:
                    break
                found, batch = self._next(stream)
                if found:
                    still_active.append(stream)
                if batch is not None:
                    batches.append(batch)
            active = still_active
        return batches

    def _next(self, stream: str) -> tuple[bool, ShardBatch | None]:
        seq = self._positions[stream]
        data = self._root.backend.read(shard_path(stream, seq))
        if data is None:
            if self._check_missing(stream, seq):
                return self._next(stream)
            return False, None
        header, records, quarantined_now = _decode_or_quarantine(self._root, stream, seq, data)
        self._positions[stream] = seq + 1
        self.quarantined += quarantined_now
        if is_tombstone(header):
            return True, None
        return True, ShardBatch(stream, seq, header, records, Cursor(self._positions))

    def _check_missing(self, stream: str, seq: int) -> bool:
        """Now and then, why the next shard is missing: pruned (raise), a gap (True once tombstoned), or new."""
        checked = self._checked_marks.get(stream, 0.0)
        if time.monotonic() - checked < self.prune_check_s:
            return False
        self._checked_marks[stream] = time.monotonic()
        self._raise_if_pruned(stream, seq, low_water(self._root, stream))
        later = [s for s in _present_seqs(self._root, stream) if s > seq]
        if not later:
            self._gaps_seen.pop((stream, seq), None)
            return False
        first_seen = self._gaps_seen.setdefault((stream, seq), time.monotonic())
        if time.monotonic() - first_seen < self.gap_grace_s:
            return False
        del self._gaps_seen[(stream, seq)]
        reason = f"missing for {self.gap_grace_s:g} s while shard {later[0]} exists; found by a reader"
        self.lost += sum(tombstone_lost_shard(self._root, stream, s, reason) for s in range(seq, later[0]))
        return True

    def _raise_if_pruned(self, stream: str, position: int, mark: int) -> None:
        if position < mark:
            raise StreamPrunedError(
                f"stream {stream}: this reader is at shard {position} but shards below {mark} were pruned, "
                "so their records can no longer be read. Prune only below the cursors every consumer has "
                f"committed, or restart this consumer from shard {mark} knowingly"
            )


# --- maintenance ------------------------------------------------------------------------------


def prune_stream(root: ExperimentRoot, stream: str, below_seq: int) -> int:
    """Remove the shards of ``stream`` numbered below ``below_seq``; returns how many were removed.

    The last shard is always kept (it holds a consumer's newest commit, and tells a restarted writer where
    it is). The low-water mark is written before any shard is removed (so that a writer or reader never
    mistakes a pruned prefix for the end of the stream), and records where an interrupted prune started, so
    that the next one finishes its work, and how many records the pruned shards held (counted before any is
    removed, so that ``jobs.status`` still reconciles what was produced with what was consumed).
    """
    mark = _read_mark(root, stream)
    _, end = stream_bounds(root, stream)
    target = min(below_seq, max(end - 1, 0))
    if target <= mark["below"] and mark["from"] >= mark["below"]:
        return 0
    target = max(target, mark["below"])
    records = mark["records"] + sum(_record_count(root, stream, seq) for seq in range(mark["below"], target))
    backend = root.backend
    backend.replace(
        _low_water_path(stream), json_bytes({"below": target, "from": mark["from"], "records": records}, what="mark")
    )
    removed = sum(backend.remove(shard_path(stream, seq)) for seq in range(mark["from"], target))
    backend.replace(
        _low_water_path(stream), json_bytes({"below": target, "from": target, "records": records}, what="mark")
    )
    logger.info("stream %s: pruned %d shards below %d (%d records pruned in all)", stream, removed, target, records)
    return removed


def _record_count(root: ExperimentRoot, stream: str, seq: int) -> int:
    """Records in one shard about to be pruned (a damaged one is quarantined first, and counts as empty)."""
    return len(read_shard(root, stream, seq)[1])


def list_quarantined(root: ExperimentRoot) -> list[dict[str, Any]]:
    """The notes of every quarantined shard (file, reason, time, by; plus ``kept``: where its bytes are)."""
    notes = []
    for stream in root.backend.listdir(QUARANTINE_DIR):
        folder = f"{QUARANTINE_DIR}/{stream}"
        for name in sorted(root.backend.listdir(folder)):
            data = root.backend.read(f"{folder}/{name}") if name.endswith(".reason.json") else None
            if data is None:
                continue
            try:
                note = json.loads(data)
            except (ValueError, RecursionError):
                note = None
            if not isinstance(note, dict):
                note = {"reason": "unreadable quarantine note"}
            lost = note.get("lost") is True  # a lost shard: no bytes were kept
            note["kept"] = None if lost else root.backend.location(f"{folder}/{name[: -len('.reason.json')]}.zst")
            notes.append(note)
    return notes


def restore_quarantined(root: ExperimentRoot, name: str | None = None) -> list[str]:
    """Put quarantined shards back in their streams, when the quarantine was wrong; returns where they went.

    ``name`` picks the quarantined file (``000000000001-ab12cd34.zst``, or ``STREAM/`` before it: the end of
    :func:`list_quarantined`'s ``kept``); ``None`` restores every one. A shard is restored only if its bytes
    now decode as a sound shard of its stream (:class:`NewerFormatError` if they need a newer advprover) and
    its place holds the tombstone naming it, or nothing at or above the low-water mark; else
    :class:`StorageError` says why, and nothing of that shard changes. Readers already past the tombstone do
    not go back for the restored records; consumers started later, or from an older cursor, read them.
    """
    kept = _quarantined_files(root)
    if name is not None:
        kept = [(stream, file) for stream, file in kept if name in (file, f"{stream}/{file}")]
        if not kept:
            raise StorageError(
                f"no quarantined shard named {name!r} in {root.backend.location(QUARANTINE_DIR)} "
                "(jobs.status lists them)"
            )
    return [_restore_one(root, stream, file) for stream, file in kept]


def _quarantined_files(root: ExperimentRoot) -> list[tuple[str, str]]:
    """(stream, file name) of every quarantined shard's bytes, in order."""
    backend = root.backend
    return [
        (stream, file)
        for stream in sorted(backend.listdir(QUARANTINE_DIR))
        if not is_temporary(stream)
        for file in sorted(backend.listdir(f"{QUARANTINE_DIR}/{stream}"))
        if file.endswith(".zst") and not is_temporary(file)
    ]


def _restore_one(root: ExperimentRoot, stream: str, file: str) -> str:
    """Restore one quarantined shard (see :func:`restore_quarantined`); returns the shard's location."""
    backend = root.backend
    kept = f"{QUARANTINE_DIR}/{stream}/{file}"
    seq_text = file.partition("-")[0]
    if not (seq_text.isdigit() and len(seq_text) == 12):
        raise StorageError(f"{backend.location(kept)}: not a quarantined shard's name (SEQ-ID.zst)")
    seq = int(seq_text)
    target = shard_path(stream, seq)
    data = backend.read(kept) or b""
    try:
        decode_shard(data, stream=stream, seq=seq, where=backend.location(kept))
    except CorruptShardError as error:
        raise StorageError(
            f"{backend.location(kept)} is still damaged ({getattr(error, 'reason', error)}): not restored"
        ) from None
    current = backend.read(target)
    if current is None:
        if seq < low_water(root, stream):
            raise StorageError(f"{backend.location(kept)}: stream {stream} was pruned past shard {seq}: not restored")
        backend.create(target, data)
    elif current != data:  # else restored already, by a restore interrupted before its cleaning
        _check_tombstone_of(root, stream, seq, current, backend.location(kept))
        backend.replace(target, data)
    backend.remove(f"{kept[: -len('.zst')]}.reason.json")
    backend.remove(kept)
    logger.warning("restored quarantined shard %s from %s", backend.location(target), backend.location(kept))
    return backend.location(target)


def _check_tombstone_of(root: ExperimentRoot, stream: str, seq: int, current: bytes, kept: str) -> None:
    """Raise :class:`StorageError` unless ``current`` is the tombstone that names the quarantined ``kept``."""
    where = root.backend.location(shard_path(stream, seq))
    try:
        header, _ = decode_shard(current, stream=stream, seq=seq, where=where)
    except CorruptShardError as error:
        raise StorageError(
            f"{where} is damaged ({getattr(error, 'reason', error)}); {kept} not restored over "
            "it: let a reader quarantine it first"
        ) from None
    if not is_tombstone(header):
        raise StorageError(f"{where} exists and holds records: {kept} not restored over it")
    named = header["quarantined"].get("file") if isinstance(header["quarantined"], dict) else None
    if named != kept:
        raise StorageError(f"{where} is the tombstone of another quarantined copy ({named}): {kept} not restored")


def _clean_folder(root: ExperimentRoot, folder: str, grace_s: float) -> int:
    backend = root.backend
    removed = 0
    for name in backend.listdir(folder):
        if not is_temporary(name):
            continue
        path = f"{folder}/{name}" if folder else name
        age = backend.age_s(path)
        if age is not None and age >= grace_s and backend.remove(path):
            removed += 1
    if removed:
        logger.info("%s: removed %d temporaries older than %.0f s", backend.location(folder), removed, grace_s)
    return removed


def clean_temporaries(root: ExperimentRoot, grace_s: float) -> int:
    """Remove temporaries (left by killed writers) older than ``grace_s`` everywhere in the root."""
    folders = ["", HEARTBEATS_DIR]
    for parent in (STREAMS_DIR, CHECKPOINTS_DIR, QUARANTINE_DIR):
        folders += [f"{parent}/{name}" for name in root.backend.listdir(parent) if not is_temporary(name)]
    return sum(_clean_folder(root, folder, grace_s) for folder in folders)
