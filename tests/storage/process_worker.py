"""Small jobs run as separate processes by test_processes.py (killed with SIGKILL, restarted, raced).

    python process_worker.py writer   ROOT STREAM TAG GO_FILE STOP_FILE ACK_FILE
    python process_worker.py producer ROOT STOP_FILE SEED
    python process_worker.py consumer ROOT DONE_FILE VIOLATIONS_FILE SEED

Every read of a stored file is checked: opening a temporary is written to VIOLATIONS_FILE. Producer and
consumer touch the file named by $READY_FILE once started, so that the test can kill them while they work.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
import uuid

from core.errors import StreamConflictError
from core.storage import ExperimentRoot, ShardWriter, StreamReader, stream_bounds
from core.storage.backend import LocalBackend, is_temporary


def _watch_reads(violations: str) -> None:
    """Record any attempt to read a temporary file (readers must never do that)."""
    for name in ("read", "open_read"):
        original = getattr(LocalBackend, name)

        def checked(self: LocalBackend, rel: str, _original=original) -> object:
            if is_temporary(rel.rpartition("/")[2]):
                with open(violations, "a") as f:
                    f.write(f"{os.getpid()} read temporary {rel}\n")
            return _original(self, rel)

        setattr(LocalBackend, name, checked)


def _ready() -> None:
    if os.environ.get("READY_FILE"):
        open(os.environ["READY_FILE"], "w").close()


def writer(root_url: str, stream: str, tag: str, go_file: str, stop_file: str, ack_file: str) -> int:
    """From GO_FILE to STOP_FILE, publish records as fast as possible; log each shard's seq and ids to ACK_FILE."""
    root = ExperimentRoot.open(root_url)
    out = ShardWriter(root, stream, max_records=1, max_age_s=60)
    rng = random.Random(tag)
    _ready()
    while not os.path.exists(go_file):
        time.sleep(0.001)
    pending: list[str] = []
    with open(ack_file, "a") as acks:
        for i in itertools.count():
            stopping = os.path.exists(stop_file)
            try:
                if stopping:
                    seq = out.flush()
                else:
                    out.max_records = rng.randint(1, 3)
                    pending.append(f"{tag}-{i}")
                    seq = out.append({"id": pending[-1], "writer": tag})
            except StreamConflictError as e:
                print(f"conflict: {e}", file=sys.stderr)
                return 3
            if seq is not None:
                acks.write(json.dumps({"seq": seq, "ids": pending}) + "\n")
                acks.flush()
                pending = []
            if stopping:
                return 0
    return 0


def producer(root_url: str, stop_file: str, seed: str) -> int:
    """Append uniquely named records in small bursts until STOP_FILE exists, then flush and exit."""
    root = ExperimentRoot.open(root_url)
    rng = random.Random(seed)
    out = ShardWriter(root, "src", max_records=rng.randint(1, 8), max_age_s=0.005, clean_after_s=None)
    _ready()
    while not os.path.exists(stop_file):
        for _ in range(rng.randint(1, 5)):
            out.append({"id": uuid.uuid4().hex, "payload": "x" * rng.randint(0, 200)})
        out.maybe_flush()
        time.sleep(rng.random() * 0.002)
    out.close()
    return 0


def consumer(root_url: str, done_file: str, violations: str, seed: str) -> int:
    """Derive one output per input record, committing the input cursor in the output shards' headers."""
    _watch_reads(violations)
    root = ExperimentRoot.open(root_url)
    rng = random.Random(seed)
    out = ShardWriter(root, "out", max_records=rng.randint(1, 12), max_age_s=0.01, committing=True, clean_after_s=None)
    reader = StreamReader(root, ["src"], out.last_cursor())
    _ready()
    while True:
        batches = reader.poll(max_shards=rng.randint(1, 4))
        for batch in batches:
            for record in batch.records:
                out.append({"from": record["id"], "shard": batch.seq})
            out.set_commit(batch.cursor)
        if rng.random() < 0.2:
            out.flush(cursor=reader.cursor)
        else:
            out.maybe_flush()
        if not batches:
            if os.path.exists(done_file) and reader.cursor["src"] == stream_bounds(root, "src")[1]:
                out.flush(cursor=reader.cursor)
                return 0
            time.sleep(0.002)


if __name__ == "__main__":
    jobs = {"writer": writer, "producer": producer, "consumer": consumer}
    sys.exit(jobs[sys.argv[1]](*sys.argv[2:]))
