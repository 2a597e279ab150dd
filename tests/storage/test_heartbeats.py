"""P17: heartbeats are replaced atomically and hold identity, times and the job's fields."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from core.errors import StorageError
from core.storage import ExperimentRoot, Heartbeat, read_heartbeats


def test_beat_writes_identity_times_and_fields(root: ExperimentRoot) -> None:
    beat = Heartbeat(root, "prover-actor", 2)
    written = beat.beat(versions={"prover": 3}, records_in=10)
    [read] = read_heartbeats(root)
    assert 0 <= read.pop("file_age_s") < 60  # the storage's opinion of its age
    assert read == written
    assert read["role"] == "prover-actor" and read["rank"] == 2
    assert read["host"] == socket.gethostname() and read["pid"] == os.getpid()
    assert read["start"] <= read["updated"] and read["versions"] == {"prover": 3}


def test_fields_accumulate_and_the_file_is_replaced(root: ExperimentRoot) -> None:
    beat = Heartbeat(root, "gen", 0)
    beat.beat(records_out=1, rate=0.5)
    beat.beat(records_out=2)
    [read] = read_heartbeats(root)
    assert read["records_out"] == 2 and read["rate"] == 0.5
    assert root.backend.listdir("heartbeats") == ["gen-0.json"]  # one file, no temporary left


def test_heartbeats_of_many_jobs_are_sorted(root: ExperimentRoot) -> None:
    for role, rank in (("trainer", 0), ("actor", 1), ("actor", 0)):
        Heartbeat(root, role, rank).beat()
    assert [(b["role"], b["rank"]) for b in read_heartbeats(root)] == [("actor", 0), ("actor", 1), ("trainer", 0)]


def test_unreadable_heartbeats_are_skipped(root: ExperimentRoot, caplog: pytest.LogCaptureFixture) -> None:
    Heartbeat(root, "ok", 0).beat()
    root.backend.replace("heartbeats/broken-0.json", b"{not json")
    root.backend.replace("heartbeats/.tmp-0123456789ab-x-0.json", b"{}")
    assert [b["role"] for b in read_heartbeats(root)] == ["ok"]
    assert "broken-0.json" in caplog.text


@pytest.mark.parametrize(
    "field, value", [("updated", "soon"), ("updated", None), ("start", [1]), ("rank", "0"), ("pid", 1.5), ("role", 3)]
)
def test_heartbeats_with_mistyped_identity_or_times_are_skipped(
    root: ExperimentRoot, caplog: pytest.LogCaptureFixture, field: str, value: object
) -> None:
    import json

    good = Heartbeat(root, "ok", 0).beat()
    root.backend.replace("heartbeats/bad-0.json", json.dumps({**good, field: value}).encode())
    assert [b["role"] for b in read_heartbeats(root)] == ["ok"]  # the good twin is read
    assert "bad-0.json" in caplog.text and field in caplog.text


def test_reserved_and_bad_fields_are_rejected(root: ExperimentRoot) -> None:
    beat = Heartbeat(root, "gen", 0)
    with pytest.raises(StorageError, match="set by the heartbeat itself"):
        beat.beat(pid=1)
    with pytest.raises(StorageError, match="not JSON-serializable"):
        beat.beat(model=object())
    with pytest.raises(StorageError, match="rank must be an integer"):
        Heartbeat(root, "gen", -1)


def test_a_reader_never_sees_a_partial_heartbeat(root: ExperimentRoot) -> None:
    beat = Heartbeat(root, "gen", 0)
    beat.beat(n=0, blob="x" * 20_000)
    done = threading.Event()

    def keep_beating() -> None:
        for n in range(1, 60):
            beat.beat(n=n)
        done.set()

    thread = threading.Thread(target=keep_beating)
    thread.start()
    seen = []
    while not done.is_set():
        [read] = read_heartbeats(root)  # always one whole, parseable file
        seen.append(read["n"])
    thread.join()
    assert seen == sorted(seen) and read_heartbeats(root)[0]["n"] == 59
