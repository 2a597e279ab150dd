"""P3, P7, P9 across processes (local folders only: ``memory://`` lives inside one process).

* two writer processes on one stream: one is stopped with StreamConflictError, nothing is overwritten or lost;
* the crash test: a producer and a consumer killed with SIGKILL at random moments, hundreds of times, and
  restarted: every record produced is consumed exactly once by the committed outputs, no published shard is
  partial, no temporary file is ever read.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from core.storage import ExperimentRoot, StreamReader, clean_temporaries, stream_bounds

WORKER = Path(__file__).with_name("process_worker.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _spawn(ready: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "READY_FILE": str(ready)},
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a worker process"
        time.sleep(0.003)


def _acks(path: Path) -> dict[int, list[str]]:
    if not path.exists():
        return {}
    return {ack["seq"]: ack["ids"] for ack in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("start", ["together", "staggered"])
def test_two_writer_processes_on_one_stream(tmp_path: Path, start: str) -> None:
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"test": "two writers"})
    go, stop = tmp_path / "go", tmp_path / "stop"
    procs, acks_at = {}, {}
    for tag in ("A", "B"):
        acks_at[tag] = tmp_path / f"acks-{tag}.jsonl"
        procs[tag] = _spawn(
            tmp_path / f"ready-{tag}", "writer", root.url, "shared", tag, str(go), str(stop), str(acks_at[tag])
        )
        if start == "staggered":  # B starts while A publishes: both find the stream's end, one then loses
            go.touch()
            _wait_for(lambda: len(_acks(acks_at["A"])) >= 5 or procs["A"].poll() is not None)
    _wait_for(lambda: all((tmp_path / f"ready-{tag}").exists() for tag in procs))
    go.touch()  # both write until one is stopped by the conflict; then the other is told to finish
    _wait_for(lambda: any(p.poll() is not None for p in procs.values()))
    stop.touch()
    results = {tag: (p.wait(timeout=60), p.stderr.read()) for tag, p in procs.items()}
    assert sorted(code for code, _ in results.values()) == [0, 3], results
    loser = next(tag for tag, (code, _) in results.items() if code == 3)
    assert "stream shared: shard" in results[loser][1] and "another writer" in results[loser][1]
    acks = {tag: _acks(path) for tag, path in acks_at.items()}
    assert not set(acks["A"]) & set(acks["B"])  # no seq acknowledged to both writers
    acknowledged = {**acks["A"], **acks["B"]}
    batches = StreamReader(root, ["shared"]).poll()
    assert [b.seq for b in batches] == sorted(acknowledged) == list(range(len(acknowledged)))
    for batch in batches:  # each shard holds exactly what its acknowledged writer published: none overwritten
        assert [r["id"] for r in batch.records] == acknowledged[batch.seq]
    published = Counter(r["id"] for b in batches for r in b.records)
    assert max(published.values()) == 1 and sum(published.values()) == sum(map(len, acknowledged.values()))


class _Supervised:
    """A worker process restarted whenever it dies, and killed with SIGKILL at a random moment of its life."""

    def __init__(self, command: Callable[[Path], subprocess.Popen], folder: Path, rng: random.Random) -> None:
        self.command, self.folder, self.rng = command, folder, rng
        self.kills = Counter[str]()
        self.lives = 0
        self._start()

    def _start(self) -> None:
        self.lives += 1
        self.ready = self.folder / f"ready-{self.lives}"
        self.proc = self.command(self.ready)
        self.born = time.monotonic()
        self.early = self.rng.random() < 0.15  # some kills land during start-up, most while working
        self.delay = self.rng.uniform(0.0, 0.12)
        self.ready_at: float | None = None

    def step(self, may_kill: bool) -> None:
        """Restart after a clean exit is the caller's choice; a failure is an error."""
        code = self.proc.poll()
        if code is not None:
            assert code == 0, f"{self.folder.name} failed by itself:\n{self.proc.stderr.read()}"
            return
        if self.ready_at is None and self.ready.exists():
            self.ready_at = time.monotonic()
        due = self.born + self.delay if self.early else (self.ready_at or float("inf")) + self.delay
        if may_kill and time.monotonic() >= due:
            self.proc.kill()
            self.proc.wait()
            self.kills["during start-up" if self.ready_at is None else "while working"] += 1
            self.proc.stderr.close()
            self._start()

    def restart_if_exited(self) -> None:
        if self.proc.poll() == 0:
            self.proc.stderr.close()
            self._start()


KILLS = int(os.environ.get("ADVPROVER_CRASH_KILLS", "200"))  # SIGKILLs in the crash test


@pytest.mark.slow
def test_crash_test_exactly_once_under_sigkill(tmp_path: Path) -> None:
    rng = random.Random(2024)
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"test": "crash"})
    stop, done, violations = tmp_path / "stop", tmp_path / "done", tmp_path / "violations"
    for role in ("producer", "consumer"):
        (tmp_path / role).mkdir()
    producer = _Supervised(
        lambda ready: _spawn(ready, "producer", root.url, str(stop), str(rng.random())), tmp_path / "producer", rng
    )
    consumer = _Supervised(
        lambda ready: _spawn(ready, "consumer", root.url, str(done), str(violations), str(rng.random())),
        tmp_path / "consumer",
        rng,
    )
    started = time.monotonic()
    while sum(producer.kills.values()) + sum(consumer.kills.values()) < KILLS:
        for job in (producer, consumer):
            job.step(may_kill=True)
        time.sleep(0.002)
    chaos_s = time.monotonic() - started
    stop.touch()  # the producer now flushes and exits (restarted until it does); the consumer is still killed
    while producer.proc.poll() is None or sum(consumer.kills.values()) < KILLS // 2:
        producer.step(may_kill=False)
        consumer.step(may_kill=True)
        consumer.restart_if_exited()
        time.sleep(0.002)
    assert producer.proc.wait() == 0
    done.touch()  # the consumer exits once it has committed everything
    consumer.restart_if_exited()
    assert consumer.proc.wait(timeout=60) == 0, consumer.proc.stderr.read()
    elapsed = time.monotonic() - started

    assert not violations.exists(), violations.read_text()  # no temporary file was ever read
    reader = StreamReader(root, ["src", "out"])
    batches = reader.poll()
    assert reader.quarantined == 0  # every published shard is complete and intact
    produced = [r["id"] for b in batches if b.stream == "src" for r in b.records]
    outputs = [b for b in batches if b.stream == "out"]
    consumed = Counter(r["from"] for b in outputs for r in b.records)
    assert len(set(produced)) == len(produced) > KILLS  # records really flowed between the kills
    assert consumed == Counter(produced), "some record was lost or consumed twice"
    commits = [b.header["cursor"]["src"] for b in outputs]
    assert commits == sorted(commits) and commits[-1] == stream_bounds(root, "src")[1]
    leftovers = clean_temporaries(root, grace_s=0)
    kills = producer.kills + consumer.kills
    print(
        f"\ncrash test: {sum(kills.values())} SIGKILLs ({sum(producer.kills.values())} producer, "
        f"{sum(consumer.kills.values())} consumer; {kills['while working']} while working, "
        f"{kills['during start-up']} during start-up); {len(produced)} records in "
        f"{stream_bounds(root, 'src')[1]} shards, each consumed exactly once, via {len(outputs)} committed "
        f"output shards; {leftovers} temporaries left by killed writers, never read, removed; "
        f"{elapsed:.1f} s ({chaos_s:.1f} s with both killed, {producer.lives + consumer.lives} process starts)"
    )
