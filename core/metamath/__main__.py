"""Command line of the Metamath kernel.

    python -m core.metamath verify FILE.mm [--stop-at LABEL] [--max-errors N]
        exit 0: well formed and every complete proof verifies; 1: it does not (stderr says where and
        why); 2: usage or I/O error. The last stdout line reads ``verified N proofs, M incomplete, in T s``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Callable, Sequence

from core.errors import AdvproverError, MetamathError
from core.metamath.reader import read_database
from core.metamath.verifier import verify_database

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand implementation (its parser is built in :func:`build_parser`)."""

    def register(function: Command) -> Command:
        _COMMANDS[name] = function
        return function

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.metamath", description="advprover's Metamath kernel")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check a database and every complete proof in it")
    verify.add_argument("database", help="path of the .mm file")
    verify.add_argument("--stop-at", metavar="LABEL", help="read only the statements before LABEL")
    verify.add_argument("--max-errors", type=int, default=20, help="failures to print (default 20)")
    return parser


def _readable_file(path: str) -> str | None:
    """An error message if ``path`` cannot be read as a file, else None."""
    if not os.path.exists(path):
        return f"{path}: no such file"
    if not os.path.isfile(path):
        return f"{path}: not a regular file"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    return None


@command("verify")
def verify(args: argparse.Namespace) -> int:
    problem = _readable_file(args.database)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    start = time.perf_counter()
    try:
        db = read_database(args.database, stop_at=args.stop_at)
    except MetamathError as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"verified 0 proofs, 0 incomplete, in {time.perf_counter() - start:.2f} s")
        return EXIT_INVALID
    report = verify_database(db)
    for error in report.failures[: args.max_errors]:
        print(f"error: {error}", file=sys.stderr)
    if len(report.failures) > args.max_errors:
        print(f"error: ... and {len(report.failures) - args.max_errors} more failures", file=sys.stderr)
    if report.failures:
        print(f"{len(report.failures)} proof(s) FAILED")
    elapsed = time.perf_counter() - start
    print(f"verified {report.verified} proofs, {len(report.incomplete)} incomplete, in {elapsed:.2f} s")
    return EXIT_INVALID if report.failures else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 on --help
        return int(exit_.code or 0)
    try:
        return _COMMANDS[args.command](args)
    except AdvproverError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID if isinstance(error, MetamathError) else EXIT_USAGE
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
