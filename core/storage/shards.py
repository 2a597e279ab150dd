"""The shard format: one zstd frame (with content size and checksum) holding JSON lines, and its checks.

A shard's payload is a header line, then one line per record::

    {"schema": 1, "stream": "generator-actor-03", "seq": 17, "count": 2, "created": 1732.5,
     "producer": {...}, "cursor": {...} | null, "extra": {...} | null,
     "record_type": "generation", "record_version": 1}
    {"id": "...", ...}
    {"id": "...", ...}

:func:`decode_shard` accepts a shard only if every check passes, and raises :class:`CorruptShardError`
with the reason otherwise, except for a shard of a newer schema version: that one is sound but unreadable
here, and :class:`NewerFormatError` asks for an upgrade (it is never quarantined). Decompression is bounded:
a frame must record its content size, at most :data:`MAX_EXPANSION` times the file's size (above 1 MiB).

:func:`quarantine_shard` copies a damaged shard's bytes to the quarantine folder and replaces it with a
*tombstone*: a valid shard with no records whose header says where the
damaged bytes went, so the stream never has a hole and every reader, even one restarted from an older
cursor, passes it.

``record_type`` and ``record_version`` are the caller's: which record type the lines hold, and its version
(optional: shards written before they existed, and tombstones, lack them). This layer stores them and
checks only their shape; what they mean is the records' business (core/adversarial/records.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import uuid
from typing import Any

import zstandard

from core.errors import CorruptShardError, NewerFormatError, StorageError
from core.storage.root import QUARANTINE_DIR, STREAMS_DIR, ExperimentRoot, json_bytes, now

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ZSTD_LEVEL = 3
MAX_SHARD_BYTES = 1 << 30
"""Largest uncompressed payload accepted (a flipped bit in the frame's size field must not exhaust memory)."""
MAX_EXPANSION = 1024
"""Largest ratio of payload to shard size accepted above :data:`SMALL_PAYLOAD_BYTES` (JSON records compress
about 5-20 times): a small file cannot make a reader allocate or decompress gigabytes."""
SMALL_PAYLOAD_BYTES = 1 << 20
"""Payloads up to this size are accepted whatever their compression ratio."""

_HEADER_KEYS = ("schema", "stream", "seq", "count", "created", "producer", "cursor", "extra")


def shard_name(seq: int) -> str:
    return f"{seq:012d}.zst"


def shard_path(stream: str, seq: int) -> str:
    return f"{STREAMS_DIR}/{stream}/{shard_name(seq)}"


def parse_shard_name(name: str) -> int | None:
    """The sequence number of a shard file name, or None for any other name (temporaries included)."""
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "zst" and len(stem) >= 12 and stem.isdigit() else None


def producer_info(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Who wrote a file: host, pid, library version, plus the caller's fields."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "library": _library_version()}
    info.update(extra or {})
    return info


@functools.lru_cache(maxsize=1)
def _library_version() -> str:
    try:
        from importlib.metadata import version

        return f"advprover {version('advprover')}"
    except Exception:  # noqa: BLE001 - any failure means the same: not installed as a distribution: a checkout used in place
        return "advprover (unknown version)"


def make_header(
    stream: str,
    seq: int,
    count: int,
    producer: dict[str, Any],
    cursor: dict[str, int] | None,
    extra: dict[str, Any] | None,
    record: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """A shard's header; ``record`` is the (record type, version) the writer's caller declared, if any."""
    header = {
        "schema": SCHEMA_VERSION,
        "stream": stream,
        "seq": seq,
        "count": count,
        "created": now(),
        "producer": producer,
        "cursor": cursor,
        "extra": extra,
    }
    if record is not None:
        header["record_type"], header["record_version"] = record
    return header


def check_record_kind(record_type: str | None, record_version: int | None, stream: str) -> tuple[str, int] | None:
    """A writer's declared record type and version, checked for shape (both or neither)."""
    if record_type is None and record_version is None:
        return None
    if not isinstance(record_type, str) or not record_type or type(record_version) is not int or record_version < 1:
        raise StorageError(
            f"stream {stream}: record_type must be a non-empty string and record_version an "
            f"integer >= 1, got {record_type!r} and {record_version!r}"
        )
    return record_type, record_version


class ShardEncoder:
    """Encodes headers + JSON lines into a shard (reuses one compressor: not thread-safe)."""

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)

    def encode(self, header: dict[str, Any], lines: list[str]) -> bytes:
        head = json_bytes(header, what=f"header of shard {header.get('seq')} of stream {header.get('stream')}")
        body = ("\n".join(lines) + "\n").encode() if lines else b""
        payload = head + b"\n" + body
        if len(payload) > MAX_SHARD_BYTES:
            raise StorageError(
                f"stream {header.get('stream')}: a shard of {len(payload)} bytes exceeds the "
                f"{MAX_SHARD_BYTES}-byte limit; lower max_records"
            )
        data = self._compressor.compress(payload)
        if len(payload) > payload_limit(len(data)):
            raise StorageError(
                f"stream {header.get('stream')}: {len(payload)} bytes of records compress to {len(data)}, more "
                f"than {MAX_EXPANSION} times: readers would refuse the shard; lower max_records (the records "
                "repeat one another)"
            )
        return data


_DECOMPRESSOR = zstandard.ZstdDecompressor()


def payload_limit(shard_bytes: int) -> int:
    """The largest payload accepted in a shard of ``shard_bytes`` bytes (see :data:`MAX_EXPANSION`)."""
    return min(MAX_SHARD_BYTES, max(SMALL_PAYLOAD_BYTES, shard_bytes * MAX_EXPANSION))


def decode_shard(data: bytes, *, stream: str, seq: int, where: str) -> tuple[dict[str, Any], list[dict]]:
    """Check and decode a shard's bytes; CorruptShardError (reason, naming ``where``) if anything is off."""
    payload = _decompress(data, where)
    header_end = payload.find(b"\n")
    if header_end < 0:
        raise _corrupt(where, "no header line")
    header = _parse_header(payload[:header_end], where)
    _check_header(header, stream=stream, seq=seq, where=where)
    records = _parse_records(payload[header_end + 1 :], where)
    if len(records) != header["count"]:
        raise _corrupt(where, f"header says {header['count']} records, the shard holds {len(records)}")
    return header, records


def _corrupt(where: str, reason: str) -> CorruptShardError:
    err = CorruptShardError(f"{where}: {reason}")
    err.reason = reason  # type: ignore[attr-defined]  # read by quarantine reports
    return err


def _decompress(data: bytes, where: str) -> bytes:
    if not data:
        raise _corrupt(where, "empty file")
    try:
        params = zstandard.get_frame_parameters(data)
    except zstandard.ZstdError as e:
        raise _corrupt(where, f"not a zstd frame ({e})") from None
    if not params.has_checksum:
        raise _corrupt(where, "zstd frame has no content checksum")
    if params.content_size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
        raise _corrupt(where, "zstd frame does not record its content size")
    if params.content_size > payload_limit(len(data)):
        raise _corrupt(
            where,
            f"zstd frame claims {params.content_size} bytes from {len(data)} (limit "
            f"{payload_limit(len(data))}: at most {MAX_EXPANSION} times the shard's size "
            f"above {SMALL_PAYLOAD_BYTES} bytes, and {MAX_SHARD_BYTES} in all)",
        )
    try:
        payload = _DECOMPRESSOR.decompress(data, allow_extra_data=False)
    except zstandard.ZstdError as e:
        text = str(e)
        if "did not decompress full frame" in text:
            raise _corrupt(where, "truncated: the zstd frame is incomplete") from None
        if "unused data" in text:
            raise _corrupt(where, "bytes after the end of the zstd frame") from None
        raise _corrupt(where, f"zstd: {text}") from None
    if len(payload) != params.content_size:
        raise _corrupt(where, f"content is {len(payload)} bytes, the frame says {params.content_size}")
    return payload


def _parse_header(line: bytes, where: str) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as e:  # RecursionError: arrays nested thousands deep
        raise _corrupt(where, f"header line is not JSON ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(header, dict):
        raise _corrupt(where, "header line is not a JSON object")
    missing = [k for k in _HEADER_KEYS if k not in header]
    schema = header.get("schema")
    if type(schema) is int and schema > SCHEMA_VERSION:  # checked first: a newer format may differ in anything else
        raise NewerFormatError(
            f"{where}: written by a newer advprover (shard schema {schema}, this advprover "
            f"reads schema {SCHEMA_VERSION}): upgrade advprover to read this experiment"
        )
    if "schema" in header and schema != SCHEMA_VERSION:
        raise _corrupt(where, f"schema version {schema!r}, this reader knows {SCHEMA_VERSION}")
    if missing:
        raise _corrupt(where, f"header lacks {', '.join(missing)}")
    return header


def _check_header(header: dict[str, Any], *, stream: str, seq: int, where: str) -> None:
    if header["stream"] != stream:
        raise _corrupt(where, f"header names stream {header['stream']!r}, the file is in stream {stream!r}")
    if header["seq"] != seq or type(header["seq"]) is not int:
        raise _corrupt(where, f"header says seq {header['seq']!r}, the file name says {seq}")
    count = header["count"]
    if type(count) is not int or count < 0:
        raise _corrupt(where, f"header count {count!r} is not a record count")
    if "record_type" in header and not (
        isinstance(header["record_type"], str) and type(header.get("record_version")) is int
    ):
        raise _corrupt(
            where,
            f"header record_type {header['record_type']!r} / record_version "
            f"{header.get('record_version')!r} are not a name and a version number",
        )
    cursor = header["cursor"]
    if cursor is not None and not (
        isinstance(cursor, dict) and all(type(v) is int and v >= 0 for v in cursor.values())
    ):
        raise _corrupt(where, "header cursor is not a mapping of stream names to sequence numbers")


def _parse_records(body: bytes, where: str) -> list[dict]:
    if not body:
        return []
    if not body.endswith(b"\n"):
        raise _corrupt(where, "last record line is not terminated")
    # One json.loads over all lines: JSON strings cannot hold a raw newline, so newlines only separate.
    try:
        records = json.loads(b"[" + body[:-1].replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):
        raise _corrupt(where, _locate_bad_line(body)) from None
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise _corrupt(where, f"record {i} is not a JSON object")
    return records


def _locate_bad_line(body: bytes) -> str:
    lines = body[:-1].split(b"\n")
    for i, line in enumerate(lines):
        try:
            json.loads(line)
        except (ValueError, RecursionError) as e:
            return f"record line {i + 2} is not JSON ({type(e).__name__}: {str(e)[:100]})"
    return "record lines are not one JSON value per line"


def quarantine_shard(root: ExperimentRoot, stream: str, seq: int, data: bytes, reason: str) -> str:
    """Keep the damaged bytes in ``quarantine/``, replace the shard by a tombstone; returns where they went."""
    backend = root.backend
    base = f"{QUARANTINE_DIR}/{stream}/{seq:012d}-{uuid.uuid4().hex[:8]}"
    dest = f"{base}.zst"
    backend.create(dest, data)
    note = {"file": backend.location(shard_path(stream, seq)), "reason": reason, "time": now(), "by": producer_info()}
    backend.create(f"{base}.reason.json", json_bytes(note, what="quarantine note", indent=2))
    header = make_header(stream, seq, 0, producer_info(), None, None)
    header["quarantined"] = {"file": backend.location(dest), "reason": reason}
    backend.replace(shard_path(stream, seq), ShardEncoder().encode(header, []))
    logger.warning(
        "quarantined shard %s: %s (damaged bytes kept in %s)",
        backend.location(shard_path(stream, seq)),
        reason,
        backend.location(dest),
    )
    return backend.location(dest)


def is_tombstone(header: dict[str, Any]) -> bool:
    return "quarantined" in header
