"""A job's last heartbeat says how it ended: a periodic beat in flight when the job finishes never overwrites it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.storage.heartbeats import Heartbeat
from jobs import _role, launch
from jobs._role import Runtime


def test_a_periodic_beat_in_flight_never_overwrites_the_final_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = str(tmp_path / "exp")
    launch.prepare("local", "tiny", exp, [], 1.0)
    monkeypatch.setattr(_role, "HEARTBEAT_SECONDS", 0.05)
    in_flight = threading.Event()
    write = Heartbeat.beat

    def slow_periodic_beat(self: Heartbeat, **fields: Any) -> dict[str, Any]:
        if threading.current_thread().name == "heartbeat" and not in_flight.is_set():
            in_flight.set()  # its snapshot is taken: the job finishes while this write is slow
            time.sleep(0.5)
        return write(self, **fields)

    monkeypatch.setattr(Heartbeat, "beat", slow_periodic_beat)
    runtime = Runtime.start("evaluator", exp, 0, 1.0)
    assert in_flight.wait(10), "the heartbeat thread never beat"
    assert runtime.finish(evaluations=3) == "finished"
    assert runtime._heartbeat_thread is not None
    runtime._heartbeat_thread.join(5)
    time.sleep(0.6)  # a stale write, had it followed the final one, is on disk by now
    beat = json.loads((Path(exp) / "heartbeats" / "evaluator-0.json").read_text())
    assert beat["status"] == "finished" and beat["evaluations"] == 3
    runtime.update(evaluations=4)
    runtime._beat()  # a periodic beat after the final one writes nothing
    assert json.loads((Path(exp) / "heartbeats" / "evaluator-0.json").read_text())["evaluations"] == 3


def test_the_final_beat_is_written_after_the_last_periodic_one(tmp_path: Path) -> None:
    exp = str(tmp_path / "exp")
    launch.prepare("local", "tiny", exp, [], 1.0)
    runtime = Runtime.start("evaluator", exp, 0, 1.0)
    runtime.update(evaluations=1)
    runtime._beat()  # the twin: before the end, beats are written
    assert json.loads((Path(exp) / "heartbeats" / "evaluator-0.json").read_text())["evaluations"] == 1
    assert "status" not in json.loads((Path(exp) / "heartbeats" / "evaluator-0.json").read_text())
    assert runtime.finish() == "finished"
    assert json.loads((Path(exp) / "heartbeats" / "evaluator-0.json").read_text())["status"] == "finished"
