"""Speed of the storage protocol (core/storage), as ratios against baselines measured in the same run.

(a) Throughput: records/s through ``ShardWriter`` -> files -> ``StreamReader`` versus the same work done in
    memory with no storage: each record to a JSON line, the lines of a shard compressed into one zstd frame
    and decompressed, the lines parsed back into dicts (the codec the protocol uses). The zstd-only rate
    (compress + decompress of the already-encoded JSON lines) is printed too: it shows how little of the
    cost is zstd's. Target: >= 0.8 of the in-memory codec.
(b) Idle poll cost: one ``poll()`` of a reader that is caught up, on a stream of 10,000 shards versus one of
    10. Target: <= 2x (a poll checks for the next shard only).
(c) Publish-to-visible latency: a reader in another process polls in a loop (as fast as it can, and every
    10 ms); the writer publishes a shard every 20 ms; latency = time seen by the reader - time in the
    shard's header. Also the time ``flush()`` takes (write, fsync, link).

Every figure is the best of ``--repeat`` runs of wall-clock time (the runs of (a) interleaved), which keeps
ratios meaningful on a busy machine. Run from the repository root::

    .venv/bin/python benchmarks/storage.py                    # in a temporary folder (seconds)
    .venv/bin/python benchmarks/storage.py --dir /nfs/scratch # on the storage you will use
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zstandard

from core.errors import run_guarded
from core.storage import Cursor, ExperimentRoot, ShardWriter, StreamReader, stream_bounds
from core.storage.shards import ZSTD_LEVEL, ShardEncoder, make_header, shard_path


def sample_records(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Records shaped like a generator actor's: ids, a goal, a proof, statistics, tactics with log-probs."""
    rng = random.Random(seed)
    labels = ["ax-mp", "syl", "mpd", "a1i", "wi", "wn", "wph", "wps", "wch", "ax-1", "ax-2", "ax-3", "id"]
    records = []
    for i in range(count):
        proof = [rng.choice(labels) for _ in range(rng.randint(10, 60))]
        records.append(
            {
                "id": f"generator-actor-03-{i:09d}",
                "generator_version": 12,
                "source": "generator",
                "goal": {
                    "hypotheses": ["|- ( ph -> ps )"] * rng.randint(0, 2),
                    "statement": "|- "
                    + " ".join(rng.choice(["ph", "ps", "ch", "->", "-.", "(", ")"]) for _ in range(rng.randint(5, 40))),
                    "disjoint": [],
                },
                "proof": proof,
                "stats": {"size": len(proof), "depth": rng.randint(2, 12)},
                "reward": round(rng.random(), 4),
                "tactics": [{"label": t, "logprob": round(-rng.random() * 5, 4)} for t in proof[:8]],
            }
        )
    return records


def best_of(repeat: int, run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


# --- (a) throughput ---------------------------------------------------------------------------


def throughput(folder: Path, records: list[dict], per_shard: int, repeat: int) -> dict[str, float]:
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    chunks = [records[i : i + per_shard] for i in range(0, len(records), per_shard)]
    payloads = [("\n".join(encoder.encode(r) for r in chunk) + "\n").encode() for chunk in chunks]
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, write_content_size=True)
    decompressor = zstandard.ZstdDecompressor()

    def zstd_only() -> None:
        for payload in payloads:
            decompressor.decompress(compressor.compress(payload))

    def codec_in_memory() -> None:
        frames = [
            compressor.compress(("\n".join(encoder.encode(r) for r in chunk) + "\n").encode()) for chunk in chunks
        ]
        decoded = []  # like a reader, return every record
        for frame in frames:
            body = decompressor.decompress(frame)
            parsed = json.loads(b"[" + body[:-1].replace(b"\n", b",") + b"]")
            if not all(type(r) is dict for r in parsed):
                raise RuntimeError("codec round trip failed")
            decoded.append(parsed)
        if sum(map(len, decoded)) != len(records):
            raise RuntimeError("codec round trip lost records")

    runs = iter(range(1_000_000))

    def through_storage() -> None:
        root = ExperimentRoot.create_or_open(str(folder / f"throughput-{next(runs)}"), {"benchmark": "a"})
        writer = ShardWriter(root, "gen-0", max_records=per_shard, max_age_s=3600)
        for record in records:
            writer.append(record)
        writer.close()
        got = sum(len(b.records) for b in StreamReader(root, ["gen-0"]).poll())
        if got != len(records):
            raise RuntimeError(f"read back {got} of {len(records)} records")

    runs_of = {"zstd only": zstd_only, "codec in memory": codec_in_memory, "storage": through_storage}
    wall = dict.fromkeys(runs_of, float("inf"))
    cpu = dict.fromkeys(runs_of, float("inf"))
    for _ in range(repeat):  # interleaved, so that a burst of other work on the machine hits all alike
        for name, run in runs_of.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name] = min(wall[name], time.perf_counter() - started)
            cpu[name] = min(cpu[name], time.process_time() - started_cpu)
    n = len(records)
    return {name: (n / wall[name], n / cpu[name]) for name in runs_of}


# --- (b) idle poll ----------------------------------------------------------------------------


def make_stream(root: ExperimentRoot, stream: str, shards: int) -> None:
    """``shards`` tiny valid shards, written directly (fast set-up: the poll is what is measured)."""
    encoder = ShardEncoder()
    for seq in range(shards):
        data = encoder.encode(make_header(stream, seq, 1, {}, None, None), [f'{{"i":{seq}}}'])
        if seq == 0:
            root.backend.create(shard_path(stream, seq), data)  # creates the folder
        else:
            with open(root.backend.location(shard_path(stream, seq)), "wb") as f:
                f.write(data)


def idle_poll(folder: Path, repeat: int, polls: int = 5000) -> dict[str, Any]:
    root = ExperimentRoot.create_or_open(str(folder / "polls"), {"benchmark": "b"})
    out: dict[str, Any] = {}
    for shards in (10, 10_000):
        stream = f"s{shards}"
        make_stream(root, stream, shards)
        reader = StreamReader(root, [stream], Cursor({stream: shards}))
        out[shards] = best_of(repeat, lambda reader=reader: [reader.poll() for _ in range(polls)]) / polls
        calls = _count_exists(root)
        started = time.perf_counter()
        if stream_bounds(root, stream)[1] != shards:
            raise RuntimeError("resume search failed")
        out[f"resume {shards}"] = (time.perf_counter() - started, calls())
    return out


def _count_exists(root: ExperimentRoot) -> Callable[[], int]:
    backend, count = root.backend, [0]
    original = backend.exists

    def exists(rel: str) -> bool:
        count[0] += 1
        return original(rel)

    backend.exists = exists  # type: ignore[method-assign]  # a counting wrapper, on this benchmark's root only
    return lambda: count[0]


# --- (c) latency ------------------------------------------------------------------------------


def latency(folder: Path, shards: int, interval_s: float) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for sleep_s in (0.0, 0.010):
        root = ExperimentRoot.create_or_open(str(folder / f"latency-{sleep_s}"), {"benchmark": "c"})
        reader = subprocess.Popen(
            [sys.executable, __file__, "--latency-reader", root.url, str(shards), str(sleep_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)  # let the reader start polling
        writer = ShardWriter(root, "gen-0", max_records=10_000, max_age_s=3600)
        flushes = []
        for i in range(shards):
            writer.append({"i": i})
            started = time.perf_counter()
            writer.flush()
            flushes.append(time.perf_counter() - started)
            time.sleep(interval_s)
        output, _ = reader.communicate(timeout=60)
        results[f"visible (reader sleeps {sleep_s * 1000:.0f} ms)"] = json.loads(output)
        results.setdefault("flush", []).extend(flushes)
    return results


def latency_reader(url: str, shards: int, sleep_s: float) -> None:
    root = ExperimentRoot.open(url)
    reader = StreamReader(root, ["gen-0"])
    delays: list[float] = []
    while len(delays) < shards:
        for batch in reader.poll():
            delays.append(time.time() - batch.header["created"])
        if sleep_s:
            time.sleep(sleep_s)
    print(json.dumps(delays))


# --- report -----------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/storage.py", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dir", help="folder to benchmark in (default: a temporary folder)")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--per-shard", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-shards", type=int, default=100)
    parser.add_argument("--latency-reader", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency_reader:
        url, shards, sleep_s = args.latency_reader
        latency_reader(url, int(shards), float(sleep_s))
        return
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="advprover-bench-") as tmp:
        folder = Path(tmp)
        print(
            f"storage benchmark in {folder} ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"zstandard {zstandard.__version__}, zstd level {ZSTD_LEVEL}); best of {args.repeat} runs"
        )
        records = sample_records(args.records)
        size = sum(len(json.dumps(r, separators=(",", ":"))) for r in records[:1000]) / 1000
        rates = throughput(folder, records, args.per_shard, args.repeat)
        print(
            f"(a) throughput, {args.records} records of ~{size:.0f} bytes in shards of {args.per_shard} "
            "(records/s by wall-clock time; by CPU time of this process):"
        )
        for name, (by_wall, by_cpu) in rates.items():
            print(f"      {name:<17} {by_wall:>10,.0f}   {by_cpu:>10,.0f}")
        for i, clock in enumerate(("wall-clock", "CPU time")):
            print(
                f"    ratio storage / codec in memory = {rates['storage'][i] / rates['codec in memory'][i]:.2f} "
                f"by {clock}   (target >= 0.8; storage / zstd only = "
                f"{rates['storage'][i] / rates['zstd only'][i]:.2f})"
            )
        polls = idle_poll(folder, args.repeat)
        print(
            f"(b) idle poll: {polls[10] * 1e6:.1f} us with 10 shards, {polls[10_000] * 1e6:.1f} us with "
            f"10,000 shards; ratio = {polls[10_000] / polls[10]:.2f}   (target <= 2)"
        )
        for shards in (10, 10_000):
            seconds, calls = polls[f"resume {shards}"]
            print(f"    writer resume on {shards:>6,} shards: {calls} existence checks, {seconds * 1000:.2f} ms")
        lat = latency(folder, args.latency_shards, 0.02)
        print(f"(c) publish-to-visible latency over {args.latency_shards} shards:")
        for name, values in lat.items():
            print(f"      {name:<30} {_ms(values)}")


if __name__ == "__main__":
    sys.exit(run_guarded(main))
