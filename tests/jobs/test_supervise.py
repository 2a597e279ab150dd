"""The supervisor's process handling: only submitit's public API and psutil, no /proc."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import submitit

from jobs._supervise import (
    SUBMITIT_CHECKED,
    children_of,
    kill_local_job,
    local_controller_pid,
    local_task_pids,
    outcome_of,
)


class FakeJob:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id


def wait_for(condition, limit_s: float = 60.0) -> None:
    end = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail("condition not reached")
        time.sleep(0.1)


def test_children_of_finds_a_process_children_and_nothing_for_a_gone_one() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'])",
        ]
    )
    try:
        wait_for(lambda: len(children_of(parent.pid)) == 1)
        child = children_of(parent.pid)[0]
        assert psutil.Process(child).ppid() == parent.pid
    finally:
        for process in psutil.Process(parent.pid).children():
            process.kill()
        parent.kill()
        parent.wait()
    assert children_of(parent.pid) == []


def test_a_local_job_id_is_its_controller_pid() -> None:
    assert local_controller_pid(FakeJob("12345")) == 12345


@pytest.mark.parametrize("job_id", ["", "12345_0", "local-12"])
def test_a_job_id_that_is_not_a_pid_is_refused_naming_the_checked_version(job_id: str) -> None:
    with pytest.raises(RuntimeError, match=f"submitit {SUBMITIT_CHECKED}"):
        local_controller_pid(FakeJob(job_id))


def test_killing_a_local_job_kills_its_task_and_ends_it_as_failed(tmp_path: Path) -> None:
    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=5)
    job = executor.submit(time.sleep, 120)
    wait_for(lambda: bool(local_task_pids(job)))
    task = local_task_pids(job)[0]
    kill_local_job(job, signal.SIGKILL)
    assert job.done()
    assert not psutil.pid_exists(task) or psutil.Process(task).status() == psutil.STATUS_ZOMBIE
    assert local_task_pids(job) == []
    state, why = outcome_of(job)
    assert state == "failed" and "without a result" in why


def test_a_local_job_that_returned_is_ok(tmp_path: Path) -> None:
    executor = submitit.LocalExecutor(folder=tmp_path)
    job = executor.submit(str, "finished")
    wait_for(job.done)
    assert outcome_of(job) == ("ok", "finished")
