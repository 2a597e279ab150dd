"""Speed of advprover's Metamath kernel (read + verify) against the pure-Python reference mmverify.py.

The baseline is mmverify.py as vendored by the PyPI package ``mmforge`` (``pip install -e '.[bench]'``); it
is loaded here only, never by project code. Both verifiers run in this process on the same machine, each
workload ``--repeat`` times, and the best CPU time (``time.process_time``) of each is kept, which makes the
ratio robust to other work on the machine. Workloads:

* ``prop.mm``: the shared propositional database (../shared/data/metamath/prop.mm);
* ``set.mm < ax-gen``: set.mm's propositional part, both verifiers stopping before the label ``ax-gen``
  (``read_database(stop_at=...)`` here, ``MM(begin_label=None, stop_label=...)`` there);
* ``set.mm``: all of set.mm, once for ours; mmverify runs in a subprocess with a time limit.

Run from the repository root::

    .venv/bin/python benchmarks/verify.py                 # the table (about a minute; set.mm included)
    .venv/bin/python benchmarks/verify.py --no-full       # prefix workloads only (seconds)
    .venv/bin/python benchmarks/verify.py --profile prop  # cProfile of our read + verify of a workload
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.metamath import read_database, verify_database  # noqa: E402

SHARED = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data"))
PROP_MM = SHARED / "metamath" / "prop.mm"
SET_MM = Path("/usr/share/metamath/databases/set.mm")
TARGET_RATIO = 2.0


@dataclass
class Workload:
    name: str
    path: Path
    stop_at: str | None = None


def ours(workload: Workload) -> tuple[float, float, str]:
    """CPU seconds to read and to verify with our kernel, and what it found."""
    start = time.process_time()
    db = read_database(workload.path, stop_at=workload.stop_at)
    read = time.process_time() - start
    report = verify_database(db)
    verify = time.process_time() - start - read
    if not report.ok:
        raise SystemExit(f"our kernel rejects {workload.name}: {report.failures[0]}")
    return read, verify, f"{report.verified} proofs"


def load_mmverify():
    """The vendored mmverify.py module of ``mmforge``, or None when it is not installed."""
    spec = importlib.util.find_spec("mmforge")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "_vendor" / "mmverify.py"
    module_spec = importlib.util.spec_from_file_location("mmverify_baseline", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.verbosity = 0  # set by its __main__ block, which is not run here
    module.logfile = sys.stderr
    return module


def baseline(mmverify, workload: Workload) -> float:
    """CPU seconds for mmverify.py to read and verify the workload (it raises on any error)."""
    start = time.process_time()
    database = mmverify.MM(None, workload.stop_at)
    with open(workload.path, encoding="ascii") as file:
        try:
            database.read(mmverify.Toks(file))
        except SystemExit:  # how mmverify.py stops at its stop label
            pass
    return time.process_time() - start


def best_of_interleaved(
    repeat: int, run_ours: Callable[[], tuple[float, float, str]], run_theirs: Callable[[], float]
) -> tuple[tuple[float, float, str], float]:
    """Best runs of both, alternating them so that both see the same load on the machine."""
    mine, theirs = [], []
    for _ in range(repeat):
        mine.append(run_ours())
        theirs.append(run_theirs())
    return min(mine, key=lambda r: r[0] + r[1]), min(theirs)


def baseline_full_set_mm(timeout: float) -> str:
    """Wall time of mmverify.py on all of set.mm in a subprocess, or why there is none."""
    spec = importlib.util.find_spec("mmforge")
    if spec is None or spec.origin is None:
        return "n/a (mmforge not installed)"
    script = Path(spec.origin).parent / "_vendor" / "mmverify.py"
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(script), str(SET_MM)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:.0f} s (stopped)"
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        return f"failed after {elapsed:.1f} s: {done.stderr.strip().splitlines()[-1:]}"
    return f"{elapsed:.1f} s wall"


def profile(workload: Workload, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    db = read_database(workload.path, stop_at=workload.stop_at)
    verify_database(db)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="runs per workload, best kept (default 7)")
    parser.add_argument("--no-full", action="store_true", help="skip the all-of-set.mm row")
    parser.add_argument("--baseline-timeout", type=float, default=240.0,
                        help="seconds mmverify.py may spend on all of set.mm (default 240)")
    parser.add_argument("--profile", choices=["prop", "prefix", "set"], help="profile ours on a workload")
    args = parser.parse_args()

    workloads = {
        "prop": Workload("prop.mm", PROP_MM),
        "prefix": Workload("set.mm < ax-gen", SET_MM, "ax-gen"),
        "set": Workload("set.mm", SET_MM),
    }
    missing = [str(w.path) for w in workloads.values() if not w.path.exists()]
    if missing:
        print(f"missing data: {', '.join(sorted(set(missing)))}", file=sys.stderr)
        return 2
    if args.profile:
        profile(workloads[args.profile], top=25)
        return 0
    mmverify = load_mmverify()
    if mmverify is None:
        print("mmverify.py not found: install the baseline with `.venv/bin/pip install -e '.[bench]'`",
              file=sys.stderr)
        return 2

    print(f"python {sys.version.split()[0]}, best CPU time of {args.repeat} runs each, in seconds")
    header = f"{'workload':<18}{'ours read':>10}{'verify':>9}{'total':>9}{'mmverify':>10}{'ratio':>8}  found"
    print(header)
    print("-" * len(header))
    ratios = []
    for key in ("prop", "prefix"):
        workload = workloads[key]
        (read, verify, found), theirs = best_of_interleaved(
            args.repeat, lambda: ours(workload), lambda: baseline(mmverify, workload)
        )
        ratio = theirs / (read + verify)
        ratios.append(ratio)
        print(f"{workload.name:<18}{read:>10.3f}{verify:>9.3f}{read + verify:>9.3f}{theirs:>10.3f}{ratio:>7.2f}x  {found}")
    if not args.no_full:
        read, verify, found = ours(workloads["set"])
        theirs_text = baseline_full_set_mm(args.baseline_timeout)
        print(f"{'set.mm (once)':<18}{read:>10.3f}{verify:>9.3f}{read + verify:>9.3f}  mmverify: {theirs_text}  {found}")
    verdict = "meets" if min(ratios) >= TARGET_RATIO else "misses"
    print(f"\nratio = mmverify time / our time; the worst ratio {min(ratios):.2f}x {verdict} the {TARGET_RATIO:.0f}x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
