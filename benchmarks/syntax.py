"""Benchmark the syntax parser (coverage and speed), the ``reprove`` round trip and the environments.

For each database, every statement (each assertion's conclusion and essential hypotheses) is parsed
with the database's own syntax axioms, in the floating context of its assertion; the table gives how
many parse, how many do not (no parse or ambiguous) and the rate. Then ``reprove`` (proof trees out and
back, every proof re-checked by the kernel) is timed on prop.mm, set.mm's propositional part (the text
of set.mm up to ``ax-gen``) and, with ``--full-reprove``, on all of set.mm. Last, the prover's hot
loop: every proof of prop.mm is replayed backward through :meth:`BackwardEnv.apply` (one call per
essential step, free variables from the proof), with a fresh grammar ("cold") and again with the same
grammar ("warm": parses shared across environments); CPU time, best of 3.

    .venv/bin/python benchmarks/syntax.py                 # prop.mm, set.mm to ax-gen, set.mm, Debian dbs
    .venv/bin/python benchmarks/syntax.py --quick         # skip the full set.mm parse
    .venv/bin/python benchmarks/syntax.py --full-reprove  # also reprove all of set.mm (minutes)

Databases that are not installed are listed as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.errors import GrammarError, MetamathError, run_guarded
from core.metamath.__main__ import main as kernel_cli
from core.metamath.database import Assertion, Database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import BackwardEnv, EnvError, Tactic
from core.metamath.prooftree import ProofTree, tree_from_proof
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar, floating_context
from core.metamath.verifier import Kernel

ROOT = Path(__file__).resolve().parents[1]
PROP_MM = Path(os.environ.get("ADVPROVER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "metamath" / "prop.mm"
DEBIAN = Path("/usr/share/metamath/databases")
_TOKEN_RE = re.compile(r"\S+")


@dataclass
class Coverage:
    """Parse results for one database."""

    name: str
    statements: int = 0
    parsed: int = 0
    failures: list[str] = field(default_factory=list)
    read_s: float = 0.0
    parse_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.statements / self.parse_s if self.parse_s else 0.0


def parse_coverage(name: str, path: Path, stop_at: str | None = None) -> Coverage:
    """Parse every statement of ``path`` (read up to ``stop_at``) with its own grammar."""
    coverage = Coverage(name)
    start = time.perf_counter()
    db = read_database(path, stop_at=stop_at)
    grammar = Grammar(db)
    coverage.read_s = time.perf_counter() - start
    start = time.perf_counter()
    for assertion in db.assertions:
        floating = floating_context(assertion.context_floating or assertion.hypotheses)
        for statement in (assertion.statement, *(h.statement for h in assertion.essential)):
            coverage.statements += 1
            try:
                grammar.parse(statement[0], statement[1:], floating)
                coverage.parsed += 1
            except GrammarError as error:
                coverage.failures.append(f"{assertion.label}: {error.reason}")
    coverage.parse_s = time.perf_counter() - start
    return coverage


def text_before(path: Path, label: str, out: Path) -> Path:
    """Write the part of ``path`` before the outermost-scope statement block holding ``label``."""
    text = path.read_text(encoding="latin-1")
    depth, cut, previous, in_comment = 0, 0, "", False
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if in_comment:
            in_comment = token != "$)"
            continue
        if token == "$(":
            in_comment = True
        elif token == "${":
            depth += 1
            if depth == 1:
                cut = match.start()
        elif token == "$}":
            depth -= 1
        elif token in ("$a", "$p", "$e", "$f") and previous == label:
            end = cut if depth else text.rfind("\n", 0, match.start() - len(label)) + 1
            out.write_text(text[:end], encoding="latin-1")
            return out
        elif token == "$." and depth == 0:
            cut = match.end()
        previous = token
    raise MetamathError(f"label {label!r} not found", file=str(path))


def time_reprove(path: Path, compressed: bool) -> float:
    """Seconds for ``python -m core.metamath reprove`` on ``path`` (in-process); raises if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(path), "--out", str(Path(tmp) / "out.mm")] + (["--compressed"] if compressed else [])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = kernel_cli(["reprove", *args])
        seconds = time.perf_counter() - start
    if code != 0:
        raise MetamathError(f"reprove exited {code}", file=str(path))
    return seconds


def replay_backward(db: Database, grammar: Grammar, kernel: Kernel, theorem: Assertion, tree: ProofTree) -> int:
    """Solve ``theorem`` backward along its proof tree; the number of ``apply`` calls."""
    env = BackwardEnv(db, theorem, grammar=grammar, kernel=kernel)
    own = {h.label for h in theorem.essential}
    calls = 0

    def solve(goal: tuple[str, ...], step: ProofTree) -> None:
        nonlocal calls
        free = env.free_variables(db.assertion(step.label))
        result = env.apply(goal, Tactic(step.label, {v: step.substitution[v] for v in free}))
        calls += 1
        if isinstance(result, EnvError):
            raise MetamathError(f"replay failed: {result}", label=theorem.label)
        for subgoal, child in zip(result.subgoals, step.children):
            if subgoal.closed_by is None:
                solve(subgoal.statement, child)

    if tree.label not in own:
        solve(theorem.statement, tree)
    return calls


def environment_rates(path: Path, repeats: int = 3) -> tuple[int, float, float]:
    """(apply calls, cold calls/s, warm calls/s) for replaying every proof of ``path`` backward."""
    db = read_database(path)
    kernel = Kernel(db)
    work = [
        (t, tree_from_proof(db, t, kernel))
        for t in db.theorems()
        if t.typecode == db.provable_typecode and not t.is_incomplete
    ]
    cold = warm = float("inf")
    calls = 0
    for _ in range(repeats):
        grammar = Grammar(db)
        for attempt in ("cold", "warm"):
            start = time.process_time()
            calls = sum(replay_backward(db, grammar, kernel, theorem, tree) for theorem, tree in work)
            seconds = time.process_time() - start
            if attempt == "cold":
                cold = min(cold, seconds)
            else:
                warm = min(warm, seconds)
    return calls, calls / cold, calls / warm


def databases(quick: bool) -> list[tuple[str, Path, str | None]]:
    found = [
        ("hilbert.mm (embedded)", embedded_database_path(), None),
        ("prop.mm", PROP_MM, None),
        ("set.mm to ax-gen", DEBIAN / "set.mm", "ax-gen"),
    ]
    if not quick:
        found.append(("set.mm", DEBIAN / "set.mm", None))
    for other in sorted(DEBIAN.glob("*.mm")) if DEBIAN.is_dir() else []:
        if other.name != "set.mm":
            found.append((other.name, other, None))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/syntax.py", allow_abbrev=False, description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="skip parsing all of set.mm")
    parser.add_argument("--full-reprove", action="store_true", help="also reprove all of set.mm")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(
        f"{'database':24} {'statements':>10} {'parsed':>8} {'failed':>7} {'read+grammar s':>15} "
        f"{'parse s':>8} {'statements/s':>13}"
    )
    for name, path, stop_at in databases(args.quick):
        if not path.is_file():
            print(f"{name:24} skipped: {path} not found")
            continue
        c = parse_coverage(name, path, stop_at)
        print(
            f"{c.name:24} {c.statements:10d} {c.parsed:8d} {len(c.failures):7d} {c.read_s:15.2f} "
            f"{c.parse_s:8.2f} {c.rate:13.0f}",
            flush=True,
        )
        for failure in c.failures[:3]:
            print(f"    {failure[:150]}")

    print()
    print(f"{'reprove':34} {'normal s':>9} {'compressed s':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("prop.mm", PROP_MM)]
        if (DEBIAN / "set.mm").is_file():
            targets.append(("set.mm to ax-gen", text_before(DEBIAN / "set.mm", "ax-gen", Path(tmp) / "setprop.mm")))
            if args.full_reprove:
                targets.append(("set.mm", DEBIAN / "set.mm"))
        for name, path in targets:
            if not path.is_file():
                print(f"{name:34} skipped: {path} not found")
                continue
            normal, compressed = time_reprove(path, False), time_reprove(path, True)
            print(f"{name:34} {normal:9.2f} {compressed:13.2f}", flush=True)
    if not args.full_reprove:
        print("(all of set.mm: run with --full-reprove)")

    print()
    if PROP_MM.is_file():
        calls, cold, warm = environment_rates(PROP_MM)
        print(
            f"BackwardEnv.apply, replaying every prop.mm proof ({calls} calls): "
            f"cold {cold:.0f} calls/s, warm {warm:.0f} calls/s"
        )
    else:
        print(f"environment benchmark skipped: {PROP_MM} not found")
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main))
