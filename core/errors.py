"""Every error advprover raises on purpose, in one hierarchy.

Validation never uses ``assert`` (it vanishes under ``python -O``): code raises one of these, with a
message that names the thing at fault (file, line, label, field, stream, ...) and what to do about it.
Every entry point (``python -m jobs.<role>``, ``jobs.launch``, ``core.metamath``, ``core.models.supervised``,
the benchmarks) turns an error into ONE line and an exit status through :func:`exit_status` and
:func:`error_line` at the end of this module (or :func:`run_guarded`, which applies both), so the mapping
from error classes to statuses exists once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TextIO


class AdvproverError(Exception):
    """Base class of every deliberate advprover error."""


class UsageError(AdvproverError):
    """A command line was called wrongly (unknown flag, wrong type, missing argument)."""


class ConfigError(AdvproverError):
    """A configuration value is invalid; the message names the field (and ``field`` holds it, where set, so
    that a command line can name its own flag for it)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- Metamath ---------------------------------------------------------------------------------


class MetamathError(AdvproverError):
    """A problem with a Metamath database or proof, located as precisely as known.

    ``file``, ``line`` and ``label`` are ``None`` where not known; ``reason`` is the bare explanation.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        label: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.label = label
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [p for p in (where, f"label {self.label}" if self.label else "") if p]
        return f"{', '.join(parts)}: {self.reason}" if parts else self.reason


class MMSyntaxError(MetamathError):
    """The text of a ``.mm`` file is malformed (bad token, unterminated statement, bad scope, ...)."""


class MMVerificationError(MetamathError):
    """A proof does not prove its statement."""


class GrammarError(MetamathError):
    """An expression cannot be parsed with the database's syntax axioms, or the grammar is unusable."""


# --- Storage ----------------------------------------------------------------------------------


class StorageError(AdvproverError):
    """A problem with the experiment's shared storage."""


class ExperimentConfigMismatch(StorageError):
    """A job was started on an existing experiment root with a different frozen configuration."""


class StreamConflictError(StorageError):
    """Two writers on one stream: the shard a writer tried to publish already exists."""


class StreamGapError(StorageError):
    """A stream has a hole too large to be a lost shard (a stray file with a far-off number?)."""


class CorruptShardError(StorageError):
    """A published shard is truncated, corrupted or unparseable (it is quarantined by readers)."""


class NewerFormatError(StorageError):
    """A file was written by a newer advprover (a schema version this reader does not know): it is refused,
    never quarantined; upgrade advprover to read it."""


class RecordError(AdvproverError):
    """A stream's record, or its shard's record type, does not match the declared record type; the message
    names the stream, the record type and the field (core/adversarial/records.py)."""


class StreamPrunedError(StorageError):
    """A reader's position lies below a stream's low-water mark: the shards it needs were pruned."""


class CheckpointError(StorageError):
    """A checkpoint is missing, incomplete or unreadable."""


class CheckpointConflictError(CheckpointError):
    """Two publishers of one checkpoint name: the version a publisher tried to commit already exists."""


# --- Models and search ------------------------------------------------------------------------


class ModelError(AdvproverError):
    """A model, vocabulary or checkpoint does not fit what is asked of it."""


# --- exit statuses ------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILURE = 1  # the job ran and failed: invalid data, storage trouble, a bug
EXIT_USAGE = 2  # the command line or the configuration is wrong: fix it and run again
EXIT_INTERRUPTED = 3  # a role ended early by a signal or a stop request, its work committed
EXIT_KEYBOARD_INTERRUPT = 130  # Ctrl-C, as shells report it

_USAGE_ERRORS = (UsageError, ConfigError, ExperimentConfigMismatch)
_MISNAMED_PATHS = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


def exit_status(error: BaseException) -> int:
    """The exit status of a command that ended with ``error``.

    2 for a wrong command line or configuration (:class:`UsageError`, :class:`ConfigError`,
    :class:`ExperimentConfigMismatch`) and for a path named on it that is missing or of the wrong kind;
    130 for Ctrl-C; 1 for everything else: other advprover errors, other OS errors, unexpected exceptions.
    """
    if isinstance(error, (_USAGE_ERRORS, _MISNAMED_PATHS)):
        return EXIT_USAGE
    if isinstance(error, KeyboardInterrupt):
        return EXIT_KEYBOARD_INTERRUPT
    return EXIT_FAILURE


def error_line(error: BaseException) -> str:
    """The one line a command prints for ``error`` (never a traceback)."""
    if isinstance(error, AdvproverError):
        return f"error: {error}"
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"error: {where}{error.strerror or error}"
    return (
        f"error: unexpected {type(error).__name__}: {error} (a bug in advprover; run again with "
        "--log-level DEBUG, where the command has it, or see the log for the traceback, and report it)"
    )


def report(error: BaseException, stream: TextIO | None = None) -> int:
    """Print ``error``'s line on ``stream`` (stderr), log its traceback at DEBUG, return its exit status."""
    print(error_line(error), file=stream or sys.stderr, flush=True)
    logging.getLogger("core.errors").debug("the error's traceback", exc_info=error)
    return exit_status(error)


def run_guarded(entry: Callable[[], int | None]) -> int:
    """Run a command's ``entry`` and return its exit status: its result (``None`` is 0), or the status of
    the error it raised, reported by :func:`report`. ``SystemExit`` (argparse's usage errors) passes through."""
    try:
        status = entry()
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure becomes one line and a status
        return report(error)
    return EXIT_OK if status is None else int(status)
