"""Fuzzing the shard reader with hypothesis: random bytes, mutated shards (bit flips, cuts, splices), sound zstd
frames around mutated payloads (the JSON layer), frames whose header lies about their size, and frames that
decompress far beyond their size. Every input gives a shard or a project error (:class:`CorruptShardError`, or
:class:`NewerFormatError` for a newer schema): never another exception, never a hang (hypothesis deadline),
never a large allocation (the peak of traced allocations of each example stays under a bound).

The accepted twin: a sound shard decodes to its records, through the same check.
"""

from __future__ import annotations

import io
import json
import tracemalloc

import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import AdvproverError
from core.storage.shards import MAX_EXPANSION, ShardEncoder, decode_shard, make_header

PEAK_BYTES = 64 << 20
FUZZ = settings(
    max_examples=300,
    deadline=5000,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RECORDS = [{"id": i, "goal": "|- ( ph -> ph )", "proof": ["wph", "ax-1"] * i} for i in range(4)]
HEADER = make_header("gen-0", 0, len(RECORDS), {"host": "h"}, {"gen-1": 3}, None)
SOUND = ShardEncoder().encode(HEADER, [json.dumps(r) for r in RECORDS])


def outcome(data: bytes) -> tuple[dict, list[dict]] | AdvproverError:
    """What the reader makes of ``data``: a shard, or the project error it raised (anything else fails)."""
    tracemalloc.start()
    try:
        return decode_shard(data, stream="gen-0", seq=0, where="fuzzed")
    except AdvproverError as error:
        return error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_BYTES, f"peak allocation {peak} bytes"


def note(result: tuple[dict, list[dict]] | AdvproverError) -> None:
    event(type(result).__name__ if isinstance(result, AdvproverError) else "decoded")


def compress(payload: bytes, *, size: int | None = None) -> bytes:
    """A zstd frame with a checksum, recording ``size`` (default: the true size) as its content size."""
    compressor = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    out = io.BytesIO()
    with compressor.stream_writer(out, size=len(payload) if size is None else size, closefd=False) as writer:
        writer.write(payload)
    return out.getvalue()


def test_a_sound_shard_decodes_to_its_records() -> None:
    result = outcome(SOUND)
    assert not isinstance(result, AdvproverError) and result[1] == RECORDS


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    note(outcome(data))


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "splice", "insert"]), st.integers(0, len(SOUND) - 1), st.integers(0, 255)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_shards(mutations: list[tuple[str, int, int]]) -> None:
    data = bytearray(SOUND)
    for kind, at, value in mutations:
        at = min(at, len(data) - 1) if data else 0
        if kind == "flip" and data:
            data[at] ^= 1 << (value % 8)
        elif kind == "cut":
            del data[at:]
        elif kind == "splice":
            data[at:at] = SOUND[value % len(SOUND) :]
        else:
            data[at:at] = bytes([value])
    result = outcome(bytes(data))
    if bytes(data) == SOUND:
        assert not isinstance(result, AdvproverError)
    note(result)


JSON_PIECES = [
    "{",
    "}",
    "[",
    "]",
    '"',
    ",",
    ":",
    "\n",
    "null",
    "1",
    "-0",
    "1e999",
    "NaN",
    '"schema"',
    '"count"',
    '"seq"',
    '"stream"',
    '"gen-0"',
    '"cursor"',
    "{}",
    "[" * 3000,
    "\\u0000",
    "\xff",
    " ",
]


@FUZZ
@given(st.lists(st.sampled_from(JSON_PIECES) | st.text(max_size=5), max_size=40), st.integers(0, 2), st.integers(0, 40))
def test_sound_frames_around_mutated_payloads(pieces: list[str], where: int, position: int) -> None:
    """The checksum passes, so the header and record checks meet the mutated JSON."""
    payload = (json.dumps(HEADER) + "\n" + "\n".join(json.dumps(r) for r in RECORDS) + "\n").encode()
    garbage = "".join(pieces).encode("utf-8", errors="replace")
    at = [0, payload.index(b"\n") + 1, len(payload)][where]
    at = min(at + position, len(payload))
    note(outcome(compress(payload[:at] + garbage + payload[at:])))


@FUZZ
@given(st.integers(0, 1 << 40), st.binary(max_size=64))
def test_frames_whose_header_lies_about_their_size(claimed: int, payload: bytes) -> None:
    """A frame header is written before the data: a lie about the size is caught by zstd or by the bound."""
    payload = json.dumps(HEADER).encode() + b"\n" + payload
    frame = compress(payload)
    params = zstandard.get_frame_parameters(frame)
    lied = bytearray(frame)
    # Rewrite the frame content size field (the last 8, 4, 2 or 1 bytes of the frame header) when it has room.
    descriptor = lied[4]
    size_bytes = {0: 1 if descriptor & 0x20 else 0, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
    start = 5 + (0 if descriptor & 0x20 else 1) + {0: 0, 1: 1, 2: 2, 3: 4}[descriptor & 3]
    if size_bytes:
        value = claimed % (1 << (8 * size_bytes))
        stored = value - 256 if size_bytes == 2 and value >= 256 else value
        lied[start : start + size_bytes] = stored.to_bytes(size_bytes, "little")
    result = outcome(bytes(lied))
    if zstandard.get_frame_parameters(bytes(lied)).content_size != params.content_size:
        assert isinstance(result, AdvproverError)
    note(result)


@settings(FUZZ, max_examples=30)
@given(st.integers(2, 200), st.sampled_from([b"a", b" ", b"{}", b"0123456789"]))
def test_frames_that_decompress_far_beyond_their_size(mebibytes: int, unit: bytes) -> None:
    """Megabytes of one repeated pattern in a few kilobytes: refused before any decompression."""
    header = json.dumps(HEADER).encode() + b"\n"
    size = mebibytes << 20
    compressor = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True)
    out = io.BytesIO()
    chunk = unit * ((1 << 20) // len(unit))
    with compressor.stream_writer(out, size=len(header) + len(chunk) * mebibytes, closefd=False) as writer:
        writer.write(header)
        for _ in range(mebibytes):
            writer.write(chunk)
    bomb = out.getvalue()
    assert len(bomb) * MAX_EXPANSION < size
    result = outcome(bomb)
    assert isinstance(result, AdvproverError) and "claims" in str(result)
