"""Every error advprover raises on purpose, in one hierarchy.

Validation never uses ``assert`` (it vanishes under ``python -O``): code raises one of these, with a
message that names the thing at fault (file, line, label, field, stream, ...) and what to do about it.
Entry points catch :class:`AdvproverError` and print its message instead of a traceback.
"""

from __future__ import annotations


class AdvproverError(Exception):
    """Base class of every deliberate advprover error."""


class UsageError(AdvproverError):
    """A command line was called wrongly (unknown flag, wrong type, missing argument)."""


class ConfigError(AdvproverError):
    """A configuration value is invalid; the message names the field."""


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
