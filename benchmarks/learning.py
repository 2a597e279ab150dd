"""The learning experiment: the prover after adversarial, supervised-only and prover-only training, over seeds.

Three arms (``--arms``), each a preset of the same prover and model settings: ``adversarial``
(``prop_adversarial``), ``supervised`` (``prop_supervised``, the baseline to beat) and ``prover-only``
(``prop_prover_only``: online training from the prover's own searches of the train split, Evariste's
PROVER_ONLY). Every arm runs once per experiment seed (``--seeds``, the configuration's ``seed``), each
run its own experiment folder ``OUT/prop-ARM-seedS``, all from the same start (a ``small`` prover trained
on the train split for ``--pretrain-cpu-minutes`` of CPU time), each for ``--minutes`` of wall-clock time
with one job per role on this machine. Every run keeps all its checkpoints and shards
(``prover_trainer.keep_checkpoints``, ``retention.keep_all``) so that it can be measured afterwards.

Two comparisons, both on the test split and on the valid split (``--splits``; choose settings on the
valid split, never on the test split), with the evaluator's search settings and theorems:

- **equal wall-clock**: each run's last prover version;
- **equal prover-trainer steps**: each run's version whose trainer step is nearest ``S``, the smallest
  final step over the runs (what the slowest run reached), or ``--steps S``.

A version the run's evaluator measured on that split is taken from its records (``evaluator-00``); any
other is evaluated here, in this process, and kept in ``OUT/evaluations/RUN/SPLIT-vN.json``. Per run the
table also gives the generated-theorem statistics read from its streams: the number of generated
theorems, the median essential proof size of their proofs (``stats.size``), and the fraction of the
generated theorems the prover actors tried that they proved. Per arm: the mean and the [min, max] over
seeds.

Steps, each skipped when its output exists (an interrupted experiment resumes: a run folder without its
``OUT/done/RUN.json`` was interrupted and is moved aside to ``RUN.interrupted-TIME`` and run again):

1. ``python -m core.models.supervised DATABASE --size small --cpu-minutes M`` -> ``OUT/prover-init.safetensors``;
2. per arm and seed: ``python -m jobs.launch local --preset PRESET --exp OUT/prop-ARM-seedS --minutes T
   --set seed=S ...``;
3. the evaluations the table needs and the runs' evaluators did not make;
4. the table, and ``OUT/learning.png`` (test-split success over trainer steps, one line per run).

Run from the repository root (the defaults take several hours on 2 CPU cores; a smoke run takes minutes)::

    .venv/bin/python benchmarks/learning.py --out experiments/learning
    .venv/bin/python benchmarks/learning.py --out /tmp/smoke --seeds 0 1 --minutes 2 --pretrain-cpu-minutes 1 \\
        --set evaluator.max_theorems=10
    .venv/bin/python benchmarks/learning.py --out experiments/learning --report-only   # the table again
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs.experiment import ExperimentConfig
from core.adversarial.records import EvaluationRecord, GenerationRecord, ResultRecord, valid_records
from core.adversarial.topology import EVALUATION_STREAM, GENERATIONS, PROVER_CHECKPOINTS, RESULTS, wiring_of
from core.errors import UsageError, run_guarded
from core.storage import CheckpointStore, ExperimentRoot, StreamReader

PROP_MM = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "metamath" / "prop.mm"
ARMS = {"adversarial": "prop_adversarial", "supervised": "prop_supervised", "prover-only": "prop_prover_only"}
SPLITS = ("test", "valid")
KEEP_EVERYTHING = ("retention.keep_all=true", "prover_trainer.keep_checkpoints=100000")
PYTHON = sys.executable


# --- running ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One arm at one experiment seed."""

    arm: str
    seed: int

    @property
    def name(self) -> str:
        return f"prop-{self.arm}-seed{self.seed}"


def execute(command: list[str], log: Path) -> None:
    """Run ``command`` from the repository root, its output into ``log``; stop on failure."""
    print(f"$ {' '.join(command)}   (log: {log})", flush=True)
    with open(log, "w") as handle:
        done = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"failed with exit status {done.returncode}; see {log}")


def pretrain(out: Path, database: Path, cpu_minutes: float) -> Path:
    """The common start: a ``small`` prover trained on the train split (skipped when it exists)."""
    init = out / "prover-init.safetensors"
    if not init.exists():
        command = [PYTHON, "-m", "core.models.supervised", str(database), "--out", str(init), "--size", "small"]
        command += ["--cpu-minutes", str(cpu_minutes), "--threads", "1", "--log-every", "100"]
        execute(command, out / "pretrain.log")
    return init


def done_marker(out: Path, run: Run) -> Path:
    return out / "done" / f"{run.name}.json"


def launch(out: Path, run: Run, database: Path, init: Path, minutes: float, extra: Sequence[str]) -> None:
    """Run ``run`` for ``minutes`` unless it finished before; an interrupted one is moved aside and rerun."""
    exp, marker = out / run.name, done_marker(out, run)
    if marker.exists():
        return
    if exp.exists():
        aside = exp.with_name(f"{exp.name}.interrupted-{int(time.time())}")
        print(f"{exp} was interrupted (no {marker}): moved to {aside}, run again", flush=True)
        exp.rename(aside)
    sets = [f"database.path={database}", f"prover_trainer.init_checkpoint={init}", f"seed={run.seed}"]
    sets += [*KEEP_EVERYTHING, *extra]
    command = [PYTHON, "-m", "jobs.launch", "local", "--preset", ARMS[run.arm], "--exp", str(exp)]
    command += ["--minutes", str(minutes), *[arg for s in sets for arg in ("--set", s)]]
    start = time.time()
    execute(command, out / f"launch-{run.name}.log")
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"minutes": minutes, "started": start, "finished": time.time()}) + "\n")


# --- what a run holds -----------------------------------------------------------------------------------


def stream_records(root: ExperimentRoot, streams: Iterable[str], cls: type[Any]) -> list[Any]:
    """Every valid record of ``cls`` in ``streams`` (the shards kept)."""
    reader = StreamReader(root, list(streams))
    records: list[Any] = []
    while batches := reader.poll():
        for batch in batches:
            records += valid_records(cls, batch.header, batch.records, stream=batch.stream)
    return records


def evaluations(root: ExperimentRoot) -> list[EvaluationRecord]:
    return stream_records(root, [EVALUATION_STREAM], EvaluationRecord) if EVALUATION_STREAM in root.streams() else []


def version_steps(root: ExperimentRoot) -> dict[int, int | None]:
    """Every prover version known to the run, with its trainer step: its checkpoints, and the versions its
    evaluator measured (a version whose checkpoint is gone)."""
    steps: dict[int, int | None] = {}
    for record in evaluations(root):
        if isinstance(record.version, int):
            steps[record.version] = record.step
    store = CheckpointStore(root, PROVER_CHECKPOINTS)
    for version in store.versions():
        steps[version] = store.info(version).meta.get("step", steps.get(version))
    return steps


@dataclass(frozen=True)
class GeneratedStats:
    """The generated theorems of a run: how many, their median essential proof size, how many the prover
    actors tried and proved."""

    generated: int
    median_size: float | None
    tried: int
    proved: int

    @property
    def proved_fraction(self) -> float | None:
        return self.proved / self.tried if self.tried else None


def generated_stats(root: ExperimentRoot) -> GeneratedStats:
    """Read from the run's generation and result streams (generated theorems only, not dataset goals)."""
    wiring = wiring_of(ExperimentConfig.from_dict(root.config))
    kinds = {name: wired.kind for name in root.streams() if (wired := wiring.stream(name)) is not None}
    generations = stream_records(root, [n for n, k in kinds.items() if k == GENERATIONS], GenerationRecord)
    results = stream_records(root, [n for n, k in kinds.items() if k == RESULTS], ResultRecord)
    sizes = [g.stats.size for g in generations if g.generated]
    tried = [r for r in results if r.generation.generated]
    return GeneratedStats(
        generated=len(sizes),
        median_size=statistics.median(sizes) if sizes else None,
        tried=len(tried),
        proved=sum(r.proved for r in tried),
    )


# --- scores -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    proved: int
    total: int


def recorded_score(root: ExperimentRoot, version: int, split: str) -> Score | None:
    """The run's evaluator's measurement of ``version`` on ``split``, if it made one."""
    for record in evaluations(root):
        if record.version == version and record.benchmark == f"{split} split":
            return Score(record.proved, record.total)
    return None


def cached_score(cache: Path) -> Score | None:
    if not cache.exists():
        return None
    data = json.loads(cache.read_text())
    return Score(int(data["proved"]), int(data["total"]))


def evaluate_version(root: ExperimentRoot, version: int, split: str, cache: Path) -> Score | None:
    """Evaluate ``version`` on ``split`` as the run's evaluator would (its search settings, its theorems,
    each in its own context); the summary is kept in ``cache``. None when the checkpoint is gone."""
    from core.adversarial.workspace import Workspace
    from core.models.checkpoint import load_version
    from core.models.devices import resolve_device
    from core.search.evaluation import evaluate
    from core.search.model_policy import policy_from_model

    store = CheckpointStore(root, PROVER_CHECKPOINTS)
    if version not in store.versions():
        return None
    config = ExperimentConfig.from_dict(root.config)
    database, section = config.database, config.evaluator
    ws = Workspace.load(database.path, stop_at=database.stop_at, splits=database.splits,
                        split_salt=database.split_salt, forbidden=database.forbidden)  # fmt: skip
    theorems = ws.split(split)[: section.max_theorems or None]
    device = resolve_device(section.device, "evaluator.device")
    loaded, info = load_version(store, version, fallback=False)
    policy = policy_from_model(loaded, device=device, precision=section.precision)
    print(f"evaluating {root.url} v{version} (step {info.meta.get('step')}) on the {split} split", flush=True)
    summary = evaluate(ws.db, theorems, policy, section.search, forbidden=ws.forbidden, grammar=ws.grammar,
                       kernel=ws.kernel, critic=loaded.critic)  # fmt: skip
    summary.pop("theorems")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({**summary, "version": version, "step": info.meta.get("step")}, indent=1) + "\n")
    return Score(summary["proved"], summary["total"])


def score(out: Path, run: Run, version: int | None, split: str, *, measure: bool) -> Score | None:
    """``version``'s score on ``split``: the evaluator's record, else this benchmark's earlier evaluation,
    else (``measure``) a new evaluation; None when unknown."""
    if version is None:
        return None
    root = ExperimentRoot.open(str(out / run.name))
    cache = out / "evaluations" / run.name / f"{split}-v{version}.json"
    found = recorded_score(root, version, split) or cached_score(cache)
    if found is None and measure:
        found = evaluate_version(root, version, split, cache)
    return found


# --- the report -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A prover version and its trainer step."""

    version: int
    step: int | None


@dataclass(frozen=True)
class RunReport:
    run: Run
    final: Point | None
    matched: Point | None  # the version nearest the common step count
    wall: dict[str, Score | None]
    steps: dict[str, Score | None]
    generated: GeneratedStats


def final_point(steps: dict[int, int | None]) -> Point | None:
    if not steps:
        return None
    version = max(steps)
    return Point(version, steps[version])


def nearest_point(steps: dict[int, int | None], target: int) -> Point | None:
    """The version whose step is nearest ``target`` (ties: the earlier one)."""
    known = sorted((step, version) for version, step in steps.items() if step is not None)
    if not known:
        return None
    step, version = min(known, key=lambda sv: (abs(sv[0] - target), sv[0]))
    return Point(version, step)


def version_of(point: Point | None) -> int | None:
    return None if point is None else point.version


def common_steps(finals: Iterable[Point | None]) -> int | None:
    """The smallest final step over the runs (what every run reached)."""
    steps = [p.step for p in finals if p is not None and p.step is not None]
    return min(steps) if steps else None


def run_report(
    out: Path, run: Run, steps: dict[int, int | None], target: int | None, measure: dict[str, bool]
) -> RunReport:
    final = final_point(steps)
    matched = nearest_point(steps, target) if target is not None else None
    root = ExperimentRoot.open(str(out / run.name))
    return RunReport(
        run=run,
        final=final,
        matched=matched,
        wall={s: score(out, run, version_of(final), s, measure=m) for s, m in measure.items()},
        steps={s: score(out, run, version_of(matched), s, measure=m) for s, m in measure.items()},
        generated=generated_stats(root),
    )


def collect(
    out: Path, runs: Sequence[Run], splits: Sequence[str], steps: int | None, measure: bool
) -> tuple[list[RunReport], int | None]:
    """Every existing run's report at the common step count (``steps``, else the smallest final step)."""
    runs = [r for r in runs if (out / r.name / "config.json").exists()]
    known = {run: version_steps(ExperimentRoot.open(str(out / run.name))) for run in runs}
    target = steps if steps is not None else common_steps(final_point(s) for s in known.values())
    wanted = {split: measure for split in splits}
    return [run_report(out, run, known[run], target, wanted) for run in runs], target


def baseline_score(out: Path, runs: Sequence[Run]) -> Score | None:
    """The model-free baseline on the test split, as the first run's evaluator measured it."""
    for run in runs:
        folder = out / run.name
        if (folder / "config.json").exists():
            for record in evaluations(ExperimentRoot.open(str(folder))):
                if record.version == "baseline":
                    return Score(record.proved, record.total)
    return None


def cell(value: Score | None) -> str:
    return "-" if value is None else f"{value.proved}/{value.total}"


def spread(values: Sequence[float]) -> str:
    """Mean and [min, max] of ``values`` ('-' when there are none)."""
    if not values:
        return "-"
    return f"{statistics.fmean(values):.1f} [{number(min(values))}, {number(max(values))}]"


def number(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def point_text(point: Point | None) -> str:
    return "-" if point is None else f"v{point.version}@{point.step if point.step is not None else '?'}"


def gen_text(stats: GeneratedStats) -> str:
    if not stats.generated and not stats.tried:
        return f"{'-':>9} {'-':>11} {'-':>7}"
    size = "-" if stats.median_size is None else f"{stats.median_size:g}"
    fraction = stats.proved_fraction
    proved = "-" if fraction is None else f"{100 * fraction:.1f}%"
    return f"{stats.generated:>9} {size:>11} {proved:>7}"


def table(reports: Sequence[RunReport], splits: Sequence[str], target: int | None, baseline: Score | None) -> str:
    """One table: a row per run, then per arm the mean [min, max] over seeds of the proved counts."""
    head = "".join(f"{s:>16}" for s in splits)
    wide = 16 * len(splits)
    lines = [
        f"equal wall-clock: each run's last version; equal trainer steps: the version nearest step {target}",
        f"{'':<24}{'equal wall-clock':>{14 + wide}} |{'equal trainer steps':>{12 + wide}} |"
        f"{'generated theorems':>{27}}",
        f"{'run':<24}{'last v@step':>14}{head} |{'v@step':>12}{head} |{'count':>10}{'median size':>12}{'proved':>8}",
    ]
    for arm in ARMS:
        mine = [r for r in reports if r.run.arm == arm]
        if not mine:
            continue
        for r in mine:
            wall = "".join(f"{cell(r.wall[s]):>16}" for s in splits)
            step = "".join(f"{cell(r.steps[s]):>16}" for s in splits)
            lines.append(
                f"{r.run.name:<24}{point_text(r.final):>14}{wall} |{point_text(r.matched):>12}{step} |"
                f" {gen_text(r.generated)}"
            )
        lines.append(arm_row(arm, mine, splits))
    if baseline is not None:
        lines.append(f"model-free baseline (test split): {cell(baseline)}")
    return "\n".join(lines)


def arm_row(arm: str, reports: Sequence[RunReport], splits: Sequence[str]) -> str:
    def counts(key: str, split: str) -> list[float]:
        return [float(v.proved) for r in reports if (v := getattr(r, key)[split]) is not None]

    wall = "".join(f"{spread(counts('wall', s)):>16}" for s in splits)
    step = "".join(f"{spread(counts('steps', s)):>16}" for s in splits)
    sizes = [float(r.generated.median_size) for r in reports if r.generated.median_size is not None]
    fractions = [100 * f for r in reports if (f := r.generated.proved_fraction) is not None]
    generated = f" size {spread(sizes)}, proved% {spread(fractions)}" if sizes or fractions else ""
    label = f"{arm} ({len(reports)} seeds)"
    return f"{label:<24}{'mean [min,max]':>14}{wall} |{'':>12}{step} |{generated}"


def plot(out: Path, reports: Sequence[RunReport]) -> None:
    """Test-split success over trainer steps, one line per run (from the evaluators' records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    colours = dict(zip(ARMS, ("tab:red", "tab:blue", "tab:green")))
    for report in reports:
        records = evaluations(ExperimentRoot.open(str(out / report.run.name)))
        points = sorted(
            (r.step, 100 * r.success_rate) for r in records if isinstance(r.version, int) and r.step is not None
        )
        if points:
            axis.plot(*zip(*points), marker="o", color=colours[report.run.arm], label=report.run.name, alpha=0.8)
    axis.set_xlabel("prover trainer step")
    axis.set_ylabel("test theorems proved (%)")
    axis.legend(fontsize=7)
    figure.suptitle("prover on the test split: adversarial, supervised-only and prover-only training")
    figure.tight_layout()
    figure.savefig(out / "learning.png", dpi=90)
    print(f"plot written to {out / 'learning.png'}")


# --- the command -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/learning.py",
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="folder of the experiment's files (created or resumed)")
    parser.add_argument("--database", default=str(PROP_MM), help="the .mm file (default: the shared prop.mm)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="the arms to run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="experiment seeds (default 0 1 2)")
    parser.add_argument("--minutes", type=float, default=25.0, help="wall-clock minutes of each run (default 25)")
    parser.add_argument(
        "--pretrain-cpu-minutes", type=float, default=20.0, help="CPU minutes of the common start (default 20)"
    )
    parser.add_argument(
        "--steps", type=int, help="the equal-steps comparison's step count (default: the smallest final step)"
    )
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, help="splits measured")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every run (repeatable)"
    )
    parser.add_argument("--report-only", action="store_true", help="run and evaluate nothing: the table of what exists")
    parser.add_argument("--no-plot", action="store_true", help="do not draw OUT/learning.png")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the evaluations made here (default 1: on a busy machine more threads wait on each other)",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.pretrain_cpu_minutes <= 0 or args.threads <= 0:
        parser.error("--minutes, --pretrain-cpu-minutes and --threads must be > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out, database = Path(args.out).resolve(), Path(args.database).resolve()
    runs = [Run(arm, seed) for arm in args.arms for seed in args.seeds]
    if not args.report_only:
        if not database.is_file():
            raise UsageError(f"no database at {database} (give --database FILE.mm)")
        out.mkdir(parents=True, exist_ok=True)
        init = pretrain(out, database, args.pretrain_cpu_minutes)
        for run in runs:
            launch(out, run, database, init, args.minutes, args.set)
    elif not out.is_dir():
        raise UsageError(f"--report-only: no experiment folder at {out}")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        reports, target = collect(out, runs, args.splits, args.steps, measure=not args.report_only)
    finally:
        torch.set_num_threads(threads)
    print("\n" + table(reports, args.splits, target, baseline_score(out, runs)), flush=True)
    if not args.no_plot and reports:
        plot(out, reports)
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
