"""Chaos: a local run whose role processes are killed with SIGKILL at random moments and restarted by the
launcher's supervisor, a data-parallel prover-trainer group (2 ranks, gloo) among them. Afterwards every
generation below the prover actor's committed cursor has exactly one result (none lost, none twice), every
published checkpoint loads, no temporary file was ever read (those killed writers left, and copies of real
shards planted under temporary names beside the shard each reader looks for next), and the counts of
``jobs.status --json`` reconcile. The figures are printed (``-rA`` shows them).

``ADVPROVER_CHAOS_MINUTES`` (default 2) sets the run's length; kills stop 45 s before its end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core.storage import CheckpointStore, ExperimentRoot, read_shard, stream_bounds
from tests.roles import launch_command

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MINUTES = float(os.environ.get("ADVPROVER_CHAOS_MINUTES", "2"))
SETTINGS = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_trainer.checkpoint_every_steps=10",
    "prover_trainer.checkpoint_every_steps=10",
    "generator_trainer.checkpoint_every_minutes=0.1",
    "prover_trainer.checkpoint_every_minutes=0.1",
    "evaluator.max_theorems=3",
    "generator_actor.mix=1,generator;1,dataset",
    "generator_actor.shard_seconds=2",
    "prover_actor.shard_seconds=2",
    "prover_trainer.count=2",
]

pytestmark = pytest.mark.slow


def role_processes(log: Path) -> dict[str, int]:
    """Live role processes, by job name: the launcher logs each job's submitit id (its controller's pid),
    the role process is the controller's child. Found from the start of the process, not from a heartbeat."""
    from jobs._supervise import children_of

    jobs: dict[str, str] = {}
    for name, ids in re.findall(r"(\S+): (?:submitted|restarted) \(job ([\d, ]+)\)", log.read_text()):
        first = int(name.split("..")[0].rsplit("-", 1)[1])
        for offset, job_id in enumerate(ids.split(", ")):
            jobs[f"{name.split('..')[0].rsplit('-', 1)[0]}-{first + offset:02d}"] = job_id
    found = {}
    for name, job_id in jobs.items():
        children = children_of(int(job_id))
        if children:
            found[name] = children[0]
    return found


def plant_temporary(exp: Path, rng: random.Random) -> Path | None:
    """A temporary as a writer killed mid-publish leaves it, beside the shard a reader will look for next,
    holding that stream's real bytes: a reader that opened it would read plausible records."""
    streams = [d for d in (exp / "streams").glob("*") if d.is_dir() and any(d.glob("*.zst"))]
    if not streams:
        return None
    stream = rng.choice(sorted(streams))
    shards = sorted(p for p in stream.glob("*.zst") if not p.name.startswith("."))
    target = f"{int(shards[-1].stem) + 1:012d}.zst"
    planted = stream / f".tmp-{rng.getrandbits(48):012x}-{target}"
    planted.write_bytes(shards[-1].read_bytes())
    return planted


def temporaries(exp: Path) -> list[Path]:
    return [p for p in exp.rglob(".tmp-*") if p.is_file()]


def test_random_sigkills_lose_and_duplicate_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp"
    command = launch_command(exp, MINUTES, "--max-failures", "50", progress=15)
    for setting in SETTINGS:
        command += ["--set", setting]
    log_path = tmp_path / "launch.log"
    rng = random.Random(1234)
    start = time.time()
    kills: Counter[str] = Counter()
    temporaries_seen: dict[Path, int] = {}
    with open(log_path, "w") as log:
        launcher = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=dict(os.environ, ADVPROVER_THREADS="1")
        )
        try:
            next_kill = start + 20
            next_plant, plants, planted_paths = start + 15, 0, []
            while launcher.poll() is None and time.time() - start < 60 * MINUTES + 240:
                for temporary in temporaries(exp):  # remember when each temporary was last written
                    with contextlib.suppress(FileNotFoundError):
                        temporaries_seen[temporary] = temporary.stat().st_mtime_ns
                if time.time() >= next_plant:
                    planted = plant_temporary(exp, rng)
                    if planted is not None:
                        temporaries_seen[planted] = planted.stat().st_mtime_ns
                        planted_paths.append(planted)
                        plants += 1
                    next_plant = time.time() + rng.uniform(3, 8)
                if time.time() >= next_kill and time.time() - start < 60 * MINUTES - 45:
                    victims = role_processes(log_path)
                    if victims:
                        # the trainer group first (a group restart), then anyone but it (so it can publish)
                        group_killed = any(k.startswith("prover-trainer") for k in kills)
                        wanted = [n for n in victims if n.startswith("prover-trainer") != group_killed]
                        name = rng.choice(sorted(wanted or victims))
                        try:
                            os.kill(victims[name], signal.SIGKILL)
                            kills[name] += 1
                        except ProcessLookupError:
                            pass
                    next_kill = time.time() + rng.uniform(3, 8)
                time.sleep(0.5)
        finally:
            if launcher.poll() is None:
                launcher.send_signal(signal.SIGINT)
                launcher.wait(timeout=90)
    output = log_path.read_text()
    assert launcher.returncode == 0, output[-5000:]
    assert sum(kills.values()) >= 5 and any(k.startswith("prover-trainer") for k in kills), kills
    restarts = len(re.findall(r"died after", output))
    assert restarts >= sum(kills.values()) * 0.8, (kills, restarts)  # kills of ending jobs may not count
    assert "prover-trainer-00..01 died after" in output  # the group was restarted as one

    root = ExperimentRoot.open(str(exp))
    # exactly once: every generation below the prover actor's committed cursor has one result, nothing else
    generations: dict[str, list[str]] = {}
    for stream in root.streams("generator-actor-"):
        low, end = stream_bounds(root, stream)
        generations[stream] = [r["id"] for seq in range(low, end) for r in read_shard(root, stream, seq)[1]]
    low, end = stream_bounds(root, "prover-actor-00")
    shards = [read_shard(root, "prover-actor-00", seq) for seq in range(low, end)]
    result_ids = [r["id"] for _, records in shards for r in records]
    cursor = next(h["cursor"] for h, _ in reversed(shards) if h["cursor"] is not None)
    consumed = []
    for stream, position in cursor.items():
        per_shard = [read_shard(root, stream, seq)[1] for seq in range(stream_bounds(root, stream)[0], position)]
        consumed += [r["id"] for records in per_shard for r in records]
    all_generations = [i for ids in generations.values() for i in ids]
    assert len(all_generations) == len(set(all_generations))
    assert len(result_ids) == len(set(result_ids)), "a generation was consumed twice"
    assert sorted(result_ids) == sorted(consumed), "a consumed generation has no result, or a result no generation"
    assert len(result_ids) >= 10

    # every published checkpoint loads
    loaded = 0
    for name in ("prover", "generator"):
        store = CheckpointStore(root, name)
        for version in store.versions():
            store.load(version)
            loaded += 1
    prover = CheckpointStore(root, "prover").latest()
    assert prover is not None and set(prover.meta["cursors"]) == {"0", "1"}  # both ranks' cursors committed

    # no temporary was read after it was last written (relatime: a read after a write moves atime past mtime)
    checked = 0
    for temporary, mtime in temporaries_seen.items():
        try:
            status = temporary.stat()
        except FileNotFoundError:
            continue  # published (renamed) or cleaned up
        checked += 1
        assert status.st_atime_ns <= max(status.st_mtime_ns, mtime), f"{temporary} was read"
    assert plants >= 5 and checked >= plants
    # the rejection twin: reading a planted temporary now does move its atime (else this filesystem hides reads)
    probe = next(p for p in planted_paths if p.exists())
    time.sleep(0.01)
    probe.read_bytes()
    detectable = probe.stat().st_atime_ns > probe.stat().st_mtime_ns

    status = subprocess.run(
        [sys.executable, "-m", "jobs.status", str(exp), "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    report = json.loads(status.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert status.returncode == 0 and not failed, failed
    with capsys.disabled():  # the figures show whatever pytest's output options
        print(
            f"\nchaos test: {sum(kills.values())} SIGKILLs ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}), "
            f"{restarts} supervised restarts; {len(all_generations)} generations, {len(consumed)} consumed exactly "
            f"once ({len(result_ids)} results); {loaded} checkpoints load; {checked} temporaries ({plants} planted beside the next shards) never read"
            f"{'' if detectable else ' (UNCHECKED: this filesystem does not update atime)'}; "
            f"{len(report['checks'])} status checks reconcile; {time.time() - start:.0f} s"
        )
