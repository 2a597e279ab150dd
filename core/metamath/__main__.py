"""Command line of the Metamath kernel.

    python -m core.metamath verify FILE.mm [--only 'ax*,syl'] [--stop-at LABEL] [--max-errors N]
        exit 0: well formed and every complete proof verifies; 1: it does not (stderr says where and
        why); 2: a usage error or a missing input (:func:`core.errors.exit_status`). ``--only`` checks
        only the theorems whose labels match one of the comma-separated patterns (``*``: any characters,
        ``?``: one character, as metamath's ``verify proof``). Before the last line, stdout names the
        incomplete theorems (``incomplete: a, b``); the last stdout line reads ``verified N proofs, M
        incomplete, in T s``. On a long file, progress lines (done, rate, time left) go to stderr every
        ``--progress-every`` seconds (default 5).

    python -m core.metamath reprove FILE.mm --out OUT.mm [--compressed] [--in-place]
        rebuild every complete proof through the project's proof trees (syntax steps re-derived by the
        grammar), check each with the kernel, and write OUT.mm with every proof replaced by the re-export.

    python -m core.metamath holes FILE.mm --out OUT.mm (--split test | --only L1,L2) [--ratios 80/10/10]
        write OUT.mm with the proofs of the chosen theorems replaced by ``?``: a benchmark for
        ``python -m jobs.prove OUT.mm --out FILLED.mm`` (a split is the one ``jobs.prove --split`` uses).

    python -m core.metamath tautologies --database DB.mm --out T.mm [--count 30] [--seed 0] [--stop-at LABEL]
            [--min-depth 2] [--max-depth 4] [--variables 3] [--connectives imp,not,bi,and,or] [--prefix taut.]
        write DB.mm (up to ``--stop-at``) followed by a seeded set of random propositional tautologies, each
        ``$p ... $= ? $.``: an evaluation set for ``jobs.prove`` from outside the database
        (:mod:`core.metamath.tautologies`).

Proofs are written with set.mm's layout and the input's line endings (:mod:`core.metamath.writer`).
``--out`` is checked before any work (its folder must exist and be writable), and may not be the input
file, by any name or link, unless ``--in-place`` is given (which keeps the file's mode and links); see
:mod:`core.files`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from core.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, MetamathError, UsageError, run_guarded
from core.files import check_output_path, refuse_overwriting_input, write_text
from core.metamath.database import Assertion, Database
from core.metamath.excerpt import database_excerpt
from core.metamath.proof import compressed_proof, normal_proof
from core.metamath.prooftree import proof_tokens, syntax_proof, tree_from_proof
from core.metamath.reader import read_database
from core.metamath.splits import SPLITS, SplitRatios, split_theorems
from core.metamath.syntax import Grammar
from core.metamath.tautologies import PREFIX, TautologySettings, tautologies, theorem_block
from core.metamath.tautologies import labels as tautology_labels
from core.metamath.verifier import Kernel, verify_database
from core.metamath.writer import rewrite_proofs

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand implementation (its parser is built in :func:`build_parser`)."""

    def register(function: Command) -> Command:
        _COMMANDS[name] = function
        return function

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.metamath", description="advprover's Metamath kernel", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", allow_abbrev=False, help="check a database and every complete proof in it")
    verify.add_argument("database", help="path of the .mm file")
    verify.add_argument("--stop-at", metavar="LABEL", help="read only the statements before LABEL")
    verify.add_argument("--max-errors", type=int, default=20, help="failures to print (default 20)")
    verify.add_argument(
        "--only",
        metavar="PATTERNS",
        help="check only the theorems matching these comma-separated labels (* and ? wildcards)",
    )
    verify.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines on stderr (default 5; 0: none)",
    )
    reprove = sub.add_parser(
        "reprove", allow_abbrev=False, help="re-export every proof through the project's proof trees"
    )
    reprove.add_argument("database", help="path of the .mm file")
    reprove.add_argument("--out", required=True, help="where to write the re-exported database")
    reprove.add_argument("--compressed", action="store_true", help="write compressed proofs (default: normal)")
    _add_in_place(reprove)
    holes = sub.add_parser(
        "holes", allow_abbrev=False, help="replace the proofs of chosen theorems by `?` (a benchmark for jobs.prove)"
    )
    holes.add_argument("database", help="path of the .mm file")
    holes.add_argument("--out", required=True, help="where to write the database with `?` proofs")
    chosen = holes.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--split", choices=SPLITS, help="every theorem of this split (see core.metamath.splits)")
    chosen.add_argument("--only", metavar="LABELS", help="these theorems (comma-separated labels)")
    holes.add_argument("--ratios", default="80/10/10", help="train/valid/test ratios of --split (default 80/10/10)")
    holes.add_argument("--salt", default="", help="salt of the split hash (default none)")
    _add_in_place(holes)
    _add_tautologies(sub)
    return parser


def _add_tautologies(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tautologies", allow_abbrev=False, help="write a seeded set of random tautologies after a database"
    )
    parser.add_argument("--database", required=True, help="the .mm file they are appended to (e.g. prop.mm)")
    parser.add_argument("--out", required=True, help="where to write the database with the tautologies")
    parser.add_argument(
        "--stop-at",
        metavar="LABEL",
        default="",
        help="use the database only up to LABEL (e.g. set.mm's propositional part: ax-gen)",
    )
    parser.add_argument("--count", type=int, default=30, help="how many tautologies (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of the draw (default 0)")
    parser.add_argument("--min-depth", type=int, default=2, help="shallowest formula, in connectives (default 2)")
    parser.add_argument("--max-depth", type=int, default=4, help="deepest formula, in connectives (default 4)")
    parser.add_argument("--variables", type=int, default=3, help="wff variables used, from ph ps ch th ta (default 3)")
    parser.add_argument(
        "--connectives", default="", help="comma-separated, of imp,not,bi,and,or (default: all the database defines)"
    )
    parser.add_argument(
        "--prefix", default=PREFIX, help=f"label prefix (default {PREFIX!r}: {PREFIX}1, {PREFIX}2, ...)"
    )


def _add_in_place(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="allow --out to be the input file (it is replaced, keeping its mode and links)",
    )


def _check_out(args: argparse.Namespace) -> None:
    """Fail before any work if ``--out`` cannot be written or would overwrite the input by accident."""
    check_output_path(args.out, "--out")
    refuse_overwriting_input(args.database, args.out, "--out", in_place=args.in_place)


def _require_file(path: str) -> None:
    """Raise :class:`UsageError` (exit 2) unless ``path`` can be read as a file."""
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied")


@command("verify")
def verify(args: argparse.Namespace) -> int:
    if args.max_errors < 0:
        print("error: --max-errors must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    if not args.progress_every >= 0 or args.progress_every == float("inf"):
        print("error: --progress-every must be a finite number of seconds, 0 or more", file=sys.stderr)
        return EXIT_USAGE
    _require_file(args.database)
    start = time.perf_counter()
    try:
        db = read_database(args.database, stop_at=args.stop_at, progress=_reading_progress(args.progress_every))
    except MetamathError as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"verified 0 proofs, 0 incomplete, in {time.perf_counter() - start:.2f} s")
        return EXIT_FAILURE
    labels = None if args.only is None else matching_theorems(db, args.only)
    total = len(db.theorems()) if labels is None else len(labels)
    progress = Progress("verifying", total, "proofs", args.progress_every)
    report = verify_database(db, labels=labels, progress=lambda done, _: progress.update(done))
    for failure in report.failures[: args.max_errors]:
        print(f"error: {failure}", file=sys.stderr)
    if len(report.failures) > args.max_errors:
        print(f"error: ... and {len(report.failures) - args.max_errors} more failures", file=sys.stderr)
    if report.failures:
        print(f"{len(report.failures)} proof(s) FAILED")
    if report.incomplete:
        print(f"incomplete: {', '.join(report.incomplete)}")
    elapsed = time.perf_counter() - start
    print(f"verified {report.verified} proofs, {len(report.incomplete)} incomplete, in {elapsed:.2f} s")
    return EXIT_FAILURE if report.failures else EXIT_OK


def matching_theorems(db: Database, patterns: str) -> list[str]:
    """The ``$p`` labels of ``db`` (in order) matching one of the comma-separated ``patterns``.

    ``*`` matches any characters, ``?`` one character, as in metamath's ``verify proof``. Raises
    :class:`UsageError` naming each pattern that matches no theorem.
    """
    parts = [part.strip() for part in patterns.split(",") if part.strip()]
    if not parts:
        raise UsageError("--only: no label given")
    expressions = {
        part: re.compile(".*".join(".".join(map(re.escape, piece.split("?"))) for piece in part.split("*")))
        for part in parts
    }
    labels = [t.label for t in db.theorems()]
    unmatched = [part for part, expression in expressions.items() if not any(map(expression.fullmatch, labels))]
    if unmatched:
        raise UsageError(f"--only: {', '.join(unmatched)} matches no $p theorem of {db.path}")
    return [label for label in labels if any(e.fullmatch(label) for e in expressions.values())]


class Progress:
    """Progress lines on ``stream``, at most one every ``every_s`` seconds: done, share, rate, time left.

    Work shorter than ``every_s`` prints nothing; ``every_s == 0`` turns the lines off.
    """

    def __init__(
        self,
        what: str,
        total: float,
        unit: str,
        every_s: float,
        *,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.what, self.total, self.unit, self.every_s, self.scale = what, total, unit, every_s, scale
        self.clock, self.stream = clock, stream
        self.start = self.last = clock()

    def update(self, done: float) -> None:
        if self.every_s <= 0:
            return
        now = self.clock()
        if now - self.last < self.every_s:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        share = 100.0 * done / self.total if self.total else 100.0
        number = "{:.0f}" if self.scale == 1.0 else "{:.1f}"
        amount = f"{number.format(done * self.scale)}/{number.format(self.total * self.scale)} {self.unit}"
        print(
            f"{self.what}: {amount} ({share:.0f}%), {number.format(rate * self.scale)} {self.unit}/s, "
            f"about {left:.0f} s left",
            file=self.stream or sys.stderr,
            flush=True,
        )


def _reading_progress(every_s: float) -> Callable[[str, int], None]:
    """A ``read_database`` progress callback: one :class:`Progress` (in MB) per file read."""
    reporters: dict[str, Progress] = {}

    def update(path: str, read: int) -> None:
        if path not in reporters:
            reporters[path] = Progress(f"reading {path}", os.path.getsize(path), "MB", every_s, scale=1e-6)
        reporters[path].update(read)

    return update


@command("reprove")
def reprove(args: argparse.Namespace) -> int:
    _require_file(args.database)
    _check_out(args)
    start = time.perf_counter()
    db = read_database(args.database)
    if len(db.files) > 1:
        print(f"error: {args.database} includes other files; reprove needs a single-file database", file=sys.stderr)
        return EXIT_USAGE
    grammar, kernel = Grammar(db), Kernel(db)
    proofs: dict[str, list[str]] = {}
    theorems = [t for t in db.theorems() if not t.is_incomplete]
    for done, theorem in enumerate(theorems, 1):
        proofs[theorem.label] = reexport(db, grammar, kernel, theorem, compressed=args.compressed)
        if done % 2000 == 0:
            logging.getLogger("reprove").info("%d/%d proofs re-exported", done, len(theorems))
    rewrite_proofs(args.database, proofs, args.out, keep_links=args.in_place)
    form = "compressed" if args.compressed else "normal"
    print(f"reproved {len(proofs)} proofs ({form}) into {args.out} in {time.perf_counter() - start:.2f} s")
    return EXIT_OK


@command("holes")
def holes(args: argparse.Namespace) -> int:
    _require_file(args.database)
    _check_out(args)
    db = read_database(args.database)
    if args.split:
        labels = [t.label for t in split_theorems(db, SplitRatios.parse(args.ratios), args.salt)[args.split]]
    else:
        labels = [label for label in args.only.split(",") if label]
        theorems = {t.label for t in db.theorems()}
        not_theorems = [label for label in labels if label not in theorems]
        if not labels or not_theorems:
            raise UsageError(
                f"--only: {', '.join(not_theorems) or 'no label given'}: not a $p theorem of {args.database}"
            )
    rewrite_proofs(args.database, {label: ["?"] for label in labels}, args.out, keep_links=args.in_place)
    print(f"wrote {args.out}: {len(labels)} proofs replaced by `?`")
    return EXIT_OK


@command("tautologies")
def write_tautologies(args: argparse.Namespace) -> int:
    _require_file(args.database)
    check_output_path(args.out, "--out")
    refuse_overwriting_input(args.database, args.out, "--out", in_place=False)
    settings = TautologySettings(
        count=args.count,
        seed=args.seed,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        variables=args.variables,
        connectives=tuple(c for c in args.connectives.split(",") if c),
    )
    text = database_excerpt(args.database, args.stop_at or None)
    db = read_database(args.database, stop_at=args.stop_at or None)
    statements = tautologies(db, settings)
    names = tautology_labels(db, len(statements), args.prefix)
    write_text(args.out, text + theorem_block(names, statements, settings), encoding="latin-1")
    print(f"wrote {args.out}: {len(statements)} tautologies ({names[0]}..{names[-1]}) after {args.database}")
    return EXIT_OK


def reexport(db: Database, grammar: Grammar, kernel: Kernel, theorem: Assertion, *, compressed: bool) -> list[str]:
    """The proof of ``theorem`` rebuilt through a proof tree (or the grammar, for syntax theorems), checked."""
    if theorem.typecode != db.provable_typecode:
        root = syntax_proof(grammar, theorem)
        tokens = compressed_proof(theorem, root) if compressed else normal_proof(root)
    else:
        tree = tree_from_proof(db, theorem, kernel)
        tokens = proof_tokens(db, grammar, theorem, tree, compressed=compressed)
    kernel.verify(theorem.with_proof(tokens))
    return tokens


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 on --help
        return int(exit_.code or 0)
    return run_guarded(lambda: _COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
