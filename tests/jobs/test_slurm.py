"""On a real SLURM cluster: ``./launch.sh slurm`` runs the tiny preset; one job is requeued by hand in the middle
(``scontrol requeue``), another reaches its time limit and submitit requeues it; the experiment still ends
with every generation consumed exactly once and the counts reconciled.

Needs a cluster that answers ``sinfo`` and ``sacct`` (``.ci/slurm-up.sh`` brings one up as root; ``.ci/run``
does it in CI). Skipped otherwise, saying so. Run it alone with ``./test.sh -- -m slurm -rA``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RUN_MINUTES = 3.0
# signalled up to 90 s early, so requeued within the run, often several times
TIMEOUT_ROLE, TIMEOUT_MINUTES = "prover_trainer", 2
REQUEUED_ROLE, REQUEUE_AFTER_S = "generator_actor", 100


def cluster_answers() -> str | None:
    """None if a SLURM cluster with accounting answers, else why not."""
    for tool in ("sinfo", "sbatch", "sacct", "scontrol"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (bring a cluster up with .ci/slurm-up.sh, as root)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10).stdout
        accounting = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the SLURM cluster does not answer: {error}"
    if not re.search(r"^(idle|mix|alloc)", states, re.M):
        return f"no usable SLURM node (sinfo says {states.strip() or 'nothing'}); start one with .ci/slurm-up.sh"
    if accounting.returncode != 0:
        return f"SLURM accounting does not answer (sacct: {accounting.stderr.strip()}); submitit needs it"
    return None


def squeue_job(role: str) -> str | None:
    out = subprocess.run(
        ["squeue", "-h", "-n", f"advprover-{role}", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True
    ).stdout.split()
    return out[0] if out else None


def controller_restarts(job_id: str) -> int:
    """How many times the controller has restarted a job (``Restarts=`` of ``scontrol show job``; 0 once forgotten)."""
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    found = re.search(r"Restarts=(\d+)", shown)
    return int(found.group(1)) if found else 0


def wait_for_restart(job_id: str, timeout_s: float = 60) -> int:
    """The job's restart count once the controller shows the requeue (it may take a moment), else 0."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        restarts = controller_restarts(job_id)
        if restarts:
            return restarts
        time.sleep(1)
    return 0


def requeues(job_ids: set[str]) -> dict[str, int]:
    """How many times each job was requeued: one REQUEUED row per requeue in the accounting records, or the
    controller's own restart count where accounting has not caught up (slurmdbd receives records
    asynchronously, so a requeue can be missing from sacct for a while)."""
    return {job_id: max(_accounted_requeues(job_id), controller_restarts(job_id)) for job_id in job_ids}


def _accounted_requeues(job_id: str) -> int:
    rows = subprocess.run(
        ["sacct", "-n", "-X", "-D", "-j", job_id, "-o", "JobID,State%20"], capture_output=True, text=True
    ).stdout.splitlines()
    return sum("REQUEUED" in row or "PREEMPTED" in row for row in rows)


def test_slurm_run_survives_a_requeue_and_a_time_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reason = cluster_answers()
    if reason:
        pytest.skip(reason)
    exp = tmp_path / "exp"
    overrides = [
        "generator_trainer.bootstrap_steps=20",
        "prover_trainer.bootstrap_steps=20",
        "evaluator.max_theorems=4",
    ]
    for role in ("generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator"):
        minutes = TIMEOUT_MINUTES if role == TIMEOUT_ROLE else 30
        overrides += [f"slurm.{role}.cpus=1", f"slurm.{role}.mem_gb=1", f"slurm.{role}.time_minutes={minutes}"]
    command = [
        str(PROJECT_ROOT / "launch.sh"),
        "slurm",
        "--preset",
        "tiny",
        "--exp",
        str(exp),
        "--minutes",
        str(RUN_MINUTES),
        "--progress",
        "30",
    ]
    for override in overrides:
        command += ["--set", override]
    log = open(tmp_path / "launch.log", "w")  # noqa: SIM115 - the launcher writes it until it ends
    start = time.time()
    launcher = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    requeued_by_hand = None
    restarts_seen = 0
    try:
        while launcher.poll() is None and time.time() - start < 60 * RUN_MINUTES + 420:
            if requeued_by_hand is None and time.time() - start > REQUEUE_AFTER_S:
                requeued_by_hand = squeue_job(REQUEUED_ROLE)
                if requeued_by_hand:
                    subprocess.run(["scontrol", "requeue", requeued_by_hand], check=True)
                    restarts_seen = wait_for_restart(requeued_by_hand)
            time.sleep(2)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            subprocess.run(["scancel", "-n", "advprover-generator_actor", "-n", "advprover-prover_actor"], check=False)
    output = (tmp_path / "launch.log").read_text()
    assert launcher.returncode == 0, output[-4000:]
    assert requeued_by_hand, f"no running {REQUEUED_ROLE} job to requeue after {REQUEUE_AFTER_S} s:\n{output[-3000:]}"

    job_ids = set(re.findall(r"\(job (\d+)(?:_\d+)?\)", output))
    counts = requeues(job_ids | {requeued_by_hand})
    counts[requeued_by_hand] = max(counts[requeued_by_hand], restarts_seen)
    timed_out = {
        p.name.split("_")[0]
        for p in exp.glob("runs/*/*_log.err")
        if "this job is timed-out" in p.read_text(errors="replace")
    }
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "jobs.status", str(exp), "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT
        ).stdout
    )
    failed = [c for c in status["checks"] if not c["ok"]]
    assert not failed, failed
    flows = status["flows"]["generator-actor-00-to-00"]
    results = status["flows"]["prover-actor-00"]["produced"]
    consumed = flows["consumers"][0]["consumed"]
    assert flows["produced"] > 0 and consumed == results, flows
    mentions = [line for line in output.splitlines() if requeued_by_hand in line]
    assert counts.get(requeued_by_hand, 0) >= 1, (counts, mentions[-20:])
    assert timed_out, "no job reached its time limit and was requeued by submitit"
    assert status["checkpoints"]["prover"]["latest"] >= 1
    with capsys.disabled():  # the figures show whatever pytest's output options
        print(
            f"\nSLURM test: {sum(counts.values())} requeues ({counts.get(requeued_by_hand, 0)} by scontrol requeue of "
            f"{REQUEUED_ROLE} job {requeued_by_hand}, {sum(counts.get(j, 0) for j in timed_out)} at "
            f"the time limit by submitit, of {TIMEOUT_ROLE} job {', '.join(sorted(timed_out))}); {flows['produced']} generations, {consumed} consumed exactly once with "
            f"{results} results; prover v{status['checkpoints']['prover']['latest']}, "
            f"{len(status['checks'])} checks reconcile; {time.time() - start:.0f} s"
        )
