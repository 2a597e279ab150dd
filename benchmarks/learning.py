"""The learning experiment: the prover after adversarial training versus after supervised-only training.

Both runs start from the same prover (a ``small`` model trained on the database's train split for
``--pretrain-cpu-minutes`` of CPU time), run for the same wall-clock time on the same machine, with one
job per role, and are evaluated by the evaluator on the test split with the same budget (the ``prop_*``
presets: backward best-first search, 64 expansions, 8 candidates), each against the model-free baseline.
Steps, each skipped when its output already exists (so an interrupted experiment resumes):

1. ``python -m core.models.supervised DATABASE --size small --cpu-minutes M`` -> ``OUT/prover-init.safetensors``;
2. ``./launch.sh local --preset prop_adversarial --exp OUT/prop-adversarial --minutes T``;
3. ``./launch.sh local --preset prop_supervised --exp OUT/prop-supervised --minutes T``;
4. ``python -m jobs.evaluator`` on each experiment whose last prover version was not evaluated in time;
5. a table of the evaluations, and ``OUT/learning.png``: benchmark success over training steps and over
   the wall-clock minute each version was published, with the baseline.

Run from the repository root (about an hour on 2 CPU cores with the defaults)::

    .venv/bin/python benchmarks/learning.py --out experiments/learning
    .venv/bin/python benchmarks/learning.py --out experiments/learning --report-only   # table and plot again
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.adversarial.records import EvaluationRecord, valid_records
from core.errors import run_guarded
from core.storage import CheckpointStore, ExperimentRoot, StreamReader

PROP_MM = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "metamath" / "prop.mm"
RUNS = ("adversarial", "supervised")
PYTHON = sys.executable


def run(command: list[str], log: Path) -> None:
    """Run ``command`` from the repository root, its output into ``log``; stop on failure."""
    print(f"$ {' '.join(command)}   (log: {log})", flush=True)
    with open(log, "w") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"failed with exit status {done.returncode}; see {log}")


def pretrain(out: Path, database: Path, cpu_minutes: float) -> Path:
    init = out / "prover-init.safetensors"
    if not init.exists():
        run(
            [
                PYTHON,
                "-m",
                "core.models.supervised",
                str(database),
                "--out",
                str(init),
                "--size",
                "small",
                "--cpu-minutes",
                str(cpu_minutes),
                "--threads",
                "1",
                "--log-every",
                "100",
            ],
            out / "pretrain.log",
        )
    return init


def launch(out: Path, kind: str, database: Path, init: Path, minutes: float, extra: list[str]) -> Path:
    exp = out / f"prop-{kind}"
    if not (exp / "config.json").exists():
        sets = [f"database.path={database}", f"prover_trainer.init_checkpoint={init}", *extra]
        run(
            [
                str(ROOT / "launch.sh"),
                "local",
                "--preset",
                f"prop_{kind}",
                "--exp",
                str(exp),
                "--minutes",
                str(minutes),
                *[arg for s in sets for arg in ("--set", s)],
            ],
            out / f"launch-{kind}.log",
        )
    return exp


def evaluations(exp: Path) -> list[EvaluationRecord]:
    reader = StreamReader(ExperimentRoot.open(str(exp)), ["evaluator-00"])
    records: list[EvaluationRecord] = []
    while batches := reader.poll():
        for batch in batches:
            records += valid_records(EvaluationRecord, batch.header, batch.records, stream=batch.stream)
    return records


def evaluate_last_version(exp: Path, kind: str, out: Path) -> None:
    latest = CheckpointStore(ExperimentRoot.open(str(exp)), "prover").latest()
    if latest is not None and all(e.version != latest.version for e in evaluations(exp)):
        run([PYTHON, "-m", "jobs.evaluator", "--exp", str(exp), "--max-records", "1"], out / f"evaluate-{kind}.log")


def started(exp: Path) -> float:
    """When the experiment's first launch started (its launch.json)."""
    return min(json.loads(p.read_text())["started"] for p in (exp / "runs").glob("*/launch.json"))


def timeline(exp: Path) -> list[dict[str, Any]]:
    """The experiment's evaluations, each with ``minutes``: when the evaluated version was published (its
    checkpoint's time while it is kept, else when its evaluation started), since the run started."""
    store, start = CheckpointStore(ExperimentRoot.open(str(exp)), "prover"), started(exp)
    kept = set(store.versions())
    records = []
    for record in evaluations(exp):
        when = record.time - record.seconds
        if isinstance(record.version, int) and record.version in kept:
            when = store.info(record.version).meta.get("time", when)
        records.append({**record.to_json(), "minutes": (when - start) / 60})
    return records


def report(out: Path) -> None:
    rows = {kind: timeline(out / f"prop-{kind}") for kind in RUNS}
    print(f"\n{'run':<13}{'version':>8}{'step':>7}{'minutes':>9}{'proved':>10}{'success':>9}")
    for kind, records in rows.items():
        for r in records:
            print(
                f"{kind:<13}{r['version']!s:>8}{r.get('step') or ''!s:>7}{r['minutes']:>9.1f}"
                f"{r['proved']:>6} / {r['total']:<3}{100 * r['success_rate']:>7.1f}%"
            )
    plot(out, rows)


def plot(out: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    baseline = None
    for kind, records in rows.items():
        versions = [r for r in records if r["version"] != "baseline"]
        baseline = next((r["success_rate"] for r in records if r["version"] == "baseline"), baseline)
        success = [100 * r["success_rate"] for r in versions]
        by_step.plot([r.get("step") or 0 for r in versions], success, marker="o", label=kind)
        by_time.plot([r["minutes"] for r in versions], success, marker="o", label=kind)
    for axis, label in (
        (by_step, "prover trainer step"),
        (by_time, "minutes since the run started (version published)"),
    ):
        if baseline is not None:
            axis.axhline(100 * baseline, color="grey", linestyle="--", label="model-free baseline")
        axis.set_xlabel(label)
        axis.set_ylabel("test theorems proved (%)")
        axis.legend()
    figure.suptitle("prover on the test split: adversarial vs supervised-only training, same start and wall clock")
    figure.tight_layout()
    figure.savefig(out / "learning.png", dpi=90)
    print(f"\nplot written to {out / 'learning.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/learning.py",
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder of the experiment's files (created or resumed)")
    parser.add_argument("--database", default=str(PROP_MM), help="the .mm file (default: the shared prop.mm)")
    parser.add_argument("--minutes", type=float, default=25.0, help="wall-clock minutes of each run (default 25)")
    parser.add_argument(
        "--pretrain-cpu-minutes",
        type=float,
        default=20.0,
        help="CPU minutes of supervised training of the common start (default 20)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for both runs (e.g. evaluator.max_theorems=20)",
    )
    parser.add_argument("--report-only", action="store_true", help="only print the table and draw the plot")
    args = parser.parse_args()
    out, database = Path(args.out).resolve(), Path(args.database).resolve()
    if not database.is_file():
        print(f"no database at {database} (give --database FILE.mm)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        init = pretrain(out, database, args.pretrain_cpu_minutes)
        for kind in RUNS:
            exp = launch(out, kind, database, init, args.minutes, args.set)
            evaluate_last_version(exp, kind, out)
    report(out)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
