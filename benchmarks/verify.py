"""Speed of advprover's Metamath kernel (read + verify) against the pure-Python reference mmverify.py.

The baseline is mmverify.py as vendored by the PyPI package ``mmforge`` (``pip install -e '.[bench]'``); it
is loaded by this script only, never by project code. Each measurement is one read + verify in a fresh
Python process (as a command-line check would run it), timed inside that process in CPU seconds
(``time.process_time``, interpreter start-up excluded). The two verifiers alternate, ``--repeat`` runs each
per workload, and the best run of each is kept: both see the same machine and the same load, which keeps
the ratio meaningful on a busy machine. Workloads:

* ``prop.mm``: the shared propositional database (../shared/data/metamath/prop.mm);
* ``set.mm < ax-gen``: set.mm's propositional part, both verifiers stopping before the label ``ax-gen``
  (``read_database(stop_at=...)`` here, ``MM(begin_label=None, stop_label=...)`` there);
* ``set.mm``: all of set.mm, once each; mmverify.py is stopped after ``--baseline-timeout`` seconds.

Run from the repository root::

    .venv/bin/python benchmarks/verify.py                 # the table (a few minutes: set.mm included)
    .venv/bin/python benchmarks/verify.py --no-full       # the two small workloads only (about a minute)
    .venv/bin/python benchmarks/verify.py --profile prop  # cProfile of our read + verify of a workload
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import json
import os
import pstats
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.errors import run_guarded
from core.metamath import read_database, verify_database

SHARED = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data"))
SET_MM = Path("/usr/share/metamath/databases/set.mm")
TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Workload:
    name: str
    path: Path
    stop_at: str | None = None


WORKLOADS = {
    "prop": Workload("prop.mm", SHARED / "metamath" / "prop.mm"),
    "prefix": Workload("set.mm < ax-gen", SET_MM, "ax-gen"),
    "set": Workload("set.mm", SET_MM),
}


# --- one measurement (run in a fresh process) -------------------------------------------------------


def measure_ours(workload: Workload) -> dict[str, object]:
    start = time.process_time()
    db = read_database(workload.path, stop_at=workload.stop_at)
    read = time.process_time() - start
    report = verify_database(db)
    total = time.process_time() - start
    if not report.ok:
        raise SystemExit(f"our kernel rejects {workload.name}: {report.failures[0]}")
    return {"read": read, "verify": total - read, "total": total, "found": f"{report.verified} proofs"}


def mmverify_path() -> Path | None:
    spec = importlib.util.find_spec("mmforge")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "_vendor" / "mmverify.py"


def measure_mmverify(workload: Workload) -> dict[str, object]:
    path = mmverify_path()
    if path is None:
        raise SystemExit("mmverify.py not found: install the baseline with `.venv/bin/pip install -e '.[bench]'`")
    module_spec = importlib.util.spec_from_file_location("mmverify_baseline", path)
    if module_spec is None or module_spec.loader is None:
        raise SystemExit(f"{path}: not a Python module that can be loaded")
    mmverify = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(mmverify)
    mmverify.verbosity = 0  # set by its __main__ block, which is not run here
    mmverify.logfile = sys.stderr
    start = time.process_time()
    database = mmverify.MM(None, workload.stop_at)
    # SystemExit is how mmverify.py stops at its stop label.
    with open(workload.path, encoding="ascii") as file, contextlib.suppress(SystemExit):
        database.read(mmverify.Toks(file))  # raises on any error
    return {"total": time.process_time() - start}


def run_worker(which: str, workload: str, timeout: float | None = None) -> dict[str, object] | None:
    """One measurement in a fresh process; None if it ran out of time."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", which, "--workload", workload]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"{which} on {workload} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the table ----------------------------------------------------------------------------------------


def profile(workload: Workload, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    db = read_database(workload.path, stop_at=workload.stop_at)
    verify_database(db)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def table(repeat: int, full: bool, baseline_timeout: float) -> int:
    print(
        f"python {sys.version.split()[0]}; CPU seconds of one read + verify in a fresh process, "
        f"best of {repeat} alternating runs each"
    )
    header = f"{'workload':<17}{'ours read':>10}{'verify':>9}{'total':>9}{'mmverify':>10}{'ratio':>8}  found"
    print(header)
    print("-" * len(header))
    ratios = []
    for key in ("prop", "prefix"):
        mine, theirs = [], []
        for _ in range(repeat):
            mine.append(run_worker("ours", key))
            theirs.append(run_worker("mmverify", key))
        # The workers' results are JSON objects of numbers (None only when a worker ran out of time, which the
        # small workloads, run without a time limit, never do): the type: ignores below stand for that.
        best = min(mine, key=lambda r: r["total"])  # type: ignore[arg-type,return-value]  # see above
        baseline = min(r["total"] for r in theirs)  # type: ignore[index,type-var]  # see above
        ratio = baseline / best["total"]  # type: ignore[operator]  # see above
        ratios.append(ratio)
        print(
            f"{WORKLOADS[key].name:<17}{best['read']:>10.3f}{best['verify']:>9.3f}{best['total']:>9.3f}"
            f"{baseline:>10.3f}{ratio:>7.2f}x  {best['found']}"
        )
    if full:
        mine = run_worker("ours", "set")
        theirs = run_worker("mmverify", "set", timeout=baseline_timeout)
        baseline = (
            f"{theirs['total']:>10.1f}{theirs['total'] / mine['total']:>7.2f}x"
            if theirs
            else f"  (mmverify.py stopped after {baseline_timeout:.0f} s)"
        )  # type: ignore[index,operator]  # see above
        print(
            f"{'set.mm (once)':<17}{mine['read']:>10.1f}{mine['verify']:>9.1f}{mine['total']:>9.1f}{baseline}"
            f"  {mine['found']}"
        )
    verdict = "meets" if min(ratios) >= TARGET_RATIO else "misses"
    print(
        f"\nratio = mmverify.py time / our time; on the two small workloads the worst is {min(ratios):.2f}x, "
        f"which {verdict} the {TARGET_RATIO:.0f}x target"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/verify.py",
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=9, help="runs per verifier and workload (default 9)")
    parser.add_argument("--no-full", action="store_true", help="skip the all-of-set.mm row")
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=300.0,
        help="seconds mmverify.py may spend on all of set.mm (default 300)",
    )
    parser.add_argument("--profile", choices=sorted(WORKLOADS), help="profile ours on a workload")
    parser.add_argument("--worker", choices=["ours", "mmverify"], help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    missing = sorted({str(w.path) for w in WORKLOADS.values() if not w.path.exists()})
    if missing:
        print(f"missing data: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.worker:
        measure = measure_ours if args.worker == "ours" else measure_mmverify
        print(json.dumps(measure(WORKLOADS[args.workload])))
        return 0
    if args.profile:
        profile(WORKLOADS[args.profile], top=25)
        return 0
    if mmverify_path() is None:
        print("mmverify.py not found: install the baseline with `.venv/bin/pip install -e '.[bench]'`", file=sys.stderr)
        return 2
    return table(args.repeat, not args.no_full, args.baseline_timeout)


if __name__ == "__main__":
    sys.exit(run_guarded(main))
