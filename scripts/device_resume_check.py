"""A prover trainer trained on one device type and resumed on another, and back (step 4 of scripts/gpu_check.sh).

    .venv/bin/python scripts/device_resume_check.py --device cuda --out DIR   # legs on cuda, cpu, cuda
    .venv/bin/python scripts/device_resume_check.py --device cpu --out DIR    # cpu, cpu, cpu: the script's logic

Each leg is the real job, ``python -m jobs.prover_trainer EXP --max-steps 3``, on one tiny experiment whose
``prover_trainer.device`` is ``auto``: a CPU leg hides the GPUs from its process (``CUDA_VISIBLE_DEVICES=``),
as on a node without one, so the same frozen configuration trains on whatever the node has. Checked:

* each leg's log names the device its models ran on, and from the second leg on, that it resumed the
  previous leg's version at that version's step; each leg publishes a version 3 steps further;
* before each later leg, the previous version is loaded here the way a resumed trainer loads it, onto that
  leg's device: its step, its weights bit for bit, and its AdamW moments bit for bit, all on that device.

Prints one line per check; exits 0 when all pass, 1 otherwise. Its experiment stays in DIR for inspection.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from configs.databases import resolve_database
from configs.presets import preset
from core.models.checkpoint import load_trainer_version
from core.models.training import Seq2SeqTrainer
from core.storage import CheckpointInfo, CheckpointStore, ExperimentRoot

ROOT = Path(__file__).resolve().parents[1]
LEG_STEPS = 3
OVERRIDES = [
    "database.path=embedded",
    "prover_trainer.device=auto",
    "prover_trainer.bootstrap_steps=2",
    "prover_trainer.checkpoint_every_steps=2",
    "prover_trainer.batch_size=4",
]
MOMENTS = ("exp_avg", "exp_avg_sq")


class Checks:
    """Named checks, printed as they are made."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def expect(self, ok: bool, what: str) -> bool:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failed.append(what)
        return ok


def legs_for(device: str) -> list[str]:
    """The device of each leg: there and back through the CPU, or the CPU three times."""
    return ["cpu"] * 3 if device == "cpu" else [device, "cpu", device]


def leg_environment(device: str) -> dict[str, str]:
    """The job's environment on ``device``: no GPU visible for the CPU; only GPU N for ``cuda:N``."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    if device == "cpu":
        environment["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        environment["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    return environment


def job_device(device: str) -> str:
    """The device the job names in its log (a GPU chosen by CUDA_VISIBLE_DEVICES is its cuda:0)."""
    return "cpu" if device == "cpu" else "cuda:0"


def here(device: str) -> torch.device:
    """The same device as seen by this process (every GPU visible)."""
    return torch.device("cuda", 0) if device == "cuda" else torch.device(device)


def run_leg(exp: str, device: str, log: Path) -> tuple[int, str]:
    command = [sys.executable, "-m", "jobs.prover_trainer", exp, "--max-steps", str(LEG_STEPS)]
    done = subprocess.run(command, cwd=ROOT, env=leg_environment(device), capture_output=True, text=True, timeout=600)
    log.write_text(done.stdout + done.stderr)
    return done.returncode, done.stderr


def check_loads_onto(store: CheckpointStore, info: CheckpointInfo, device: str, checks: Checks) -> None:
    """The version loaded as a resumed trainer loads it (read on the CPU, then moved), onto ``device``."""
    loaded, state, _ = load_trainer_version(store, info.version)
    checks.expect(state is not None, f"version {info.version} holds a trainer state")
    if state is None:
        return
    stored_weights = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    trainer = Seq2SeqTrainer(loaded.model.train(), device=here(device))
    trainer.load_state_dict(state)
    checks.expect(
        trainer.steps == info.meta["step"], f"step {trainer.steps} on {device} (published at {info.meta['step']})"
    )
    weights = trainer.model.state_dict()
    checks.expect(
        all(w.device == here(device) for w in weights.values())
        and all(torch.equal(weights[k].cpu(), v) for k, v in stored_weights.items()),
        f"its {len(weights)} weight tensors on {device}, equal bit for bit",
    )
    stored_moments = {(i, k): v for i, s in state["optimizer"]["state"].items() for k, v in s.items() if k in MOMENTS}
    moments = {
        (i, k): v for i, s in trainer.optimizer.state_dict()["state"].items() for k, v in s.items() if k in MOMENTS
    }
    checks.expect(
        bool(moments)
        and moments.keys() == stored_moments.keys()
        and all(m.device == here(device) and torch.equal(m.cpu(), stored_moments[key]) for key, m in moments.items()),
        f"its {len(moments)} AdamW moments on {device}, equal bit for bit",
    )


def check_leg(
    store: CheckpointStore, device: str, stderr: str, previous: CheckpointInfo | None, checks: Checks
) -> CheckpointInfo | None:
    info = store.latest()
    checks.expect(f"models run on {job_device(device)}" in stderr, f"the job's models ran on {job_device(device)}")
    start = 0 if previous is None else int(previous.meta["step"])
    if previous is not None:
        line = f"resumed from prover version {previous.version} (step {start})"
        checks.expect(line in stderr, f"the job {line}")
    if not checks.expect(
        info is not None and info.meta["step"] == start + LEG_STEPS, f"it published step {start + LEG_STEPS}"
    ):
        return None
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cpu, cuda or cuda:N (default cuda)")
    parser.add_argument(
        "--out", default="", help="folder for the experiment and the logs (default: a new temporary one)"
    )
    args = parser.parse_args()
    if args.device != "cpu" and not torch.cuda.is_available():
        print(f"device_resume_check: --device {args.device} but torch sees no CUDA GPU here", file=sys.stderr)
        return 2
    out = Path(tempfile.mkdtemp(prefix="resume-", dir=args.out or None))
    config = preset("tiny").with_overrides(OVERRIDES)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    root = ExperimentRoot.create_or_open(str(out / "exp"), config.to_dict())
    store = CheckpointStore(root, "prover")
    checks, previous = Checks(), None
    for index, device in enumerate(legs_for(args.device)):
        if previous is not None:
            print(f"version {previous.version} loaded onto {device}:", flush=True)
            check_loads_onto(store, previous, device, checks)
        started = time.time()
        status, stderr = run_leg(root.url, device, out / f"leg{index}-{device}.log")
        print(
            f"leg {index}: the prover trainer on {device}, {LEG_STEPS} steps ({time.time() - started:.0f} s):",
            flush=True,
        )
        if not checks.expect(status == 0, f"the job ended well (exit {status}; log {out}/leg{index}-{device}.log)"):
            break
        previous = check_leg(store, device, stderr, previous, checks)
        if previous is None:
            break
    print(f"device_resume_check: {'passed' if not checks.failed else f'{len(checks.failed)} check(s) FAILED'} ({out})")
    return 0 if not checks.failed else 1


if __name__ == "__main__":
    sys.exit(main())
