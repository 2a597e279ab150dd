"""The records of the experiment's streams, as typed, versioned, validated values (docs/PROTOCOL.md, "Records").

Each stream carries one record type, named with its version in every shard's header (``record_type``,
``record_version``; the storage layer stores both without knowing them):

* ``generation`` (:class:`GenerationRecord`), on ``generator-actor-GG-to-PP``: a theorem, its proof and the
  rollout that made it (or a database theorem of the source mix);
* ``result`` (:class:`ResultRecord`), on ``prover-actor-PP``: a prover actor's outcome on one generation
  record, its reward and where it is routed;
* ``evaluation`` (:class:`EvaluationRecord`), on ``evaluator-00``: one prover version (or the baseline)
  measured on the benchmark.

Records are built here too (from a generated theorem, a database theorem, a prover actor's attempts), so
one file says what each record holds and where its values come from. Writers build records with these
classes and publish :meth:`StreamRecord.to_json`; readers decode every
shard with :func:`decode_records` and read attributes. :meth:`StreamRecord.from_json` checks every field
(:class:`RecordError` names the stream, the record type and the field), ignores fields it does not know
(a newer writer of the same version may add optional fields), and refuses a newer version of the type with
:class:`NewerFormatError`. A shard written before headers named their record type is read as version 1 of
the type its reader expects.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, Union

from core.adversarial.generation import Generated, Step
from core.adversarial.rewards import DIFFICULTIES, difficulty_label
from core.adversarial.topology import EVALUATIONS, GENERATIONS, GIVEN_PROOFS, RESULTS, routed_to_prover_trainer
from core.adversarial.workspace import Workspace
from core.errors import MetamathError, NewerFormatError, RecordError
from core.metamath.database import Assertion
from core.metamath.environment import Tactic
from core.metamath.prooftree import ProofTree, make_theorem
from core.search.runner import SearchResult

JSON_OBJECT = dict[str, Any]
Record = TypeVar("Record", bound="StreamRecord")
Part = TypeVar("Part", bound="JsonPart")


class JsonPart:
    """A frozen dataclass read from and written to a JSON object, field by field, by its type hints.

    Supported field types: ``str``, ``int``, ``float`` (a JSON integer is accepted), ``bool``, ``Any``,
    ``X | None``, unions of those, ``tuple[X, ...]`` (a JSON array), ``dict[str, X]`` and nested parts.
    A field with a default may be missing (a field added after the type's first version).
    """

    def to_json(self) -> JSON_OBJECT:
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]  # subclasses are dataclasses

    @classmethod
    def from_json(cls: type[Part], data: Any, *, where: str = "record") -> Part:
        """Check and convert ``data``; :class:`RecordError` naming ``where`` and the field if anything is off."""
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: should be an object, got {_json_type(data)}")
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]  # subclasses are dataclasses
            if field.name not in data:
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    raise RecordError(f"{where}: field {field.name!r} is missing")
                continue
            values[field.name] = _from_json(data[field.name], _hints(cls)[field.name], f"{where}, field {field.name!r}")
        part = cls(**values)
        part.check(where)
        return part

    def check(self, where: str) -> None:
        """Checks beyond the fields' types (RecordError naming ``where`` and the field); none by default."""


class StreamRecord(JsonPart):
    """A record of one stream's type. ``RECORD_TYPE`` and ``VERSION`` go into the header of every shard."""

    RECORD_TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    @classmethod
    def header_fields(cls) -> dict[str, Any]:
        """The keyword arguments a :class:`core.storage.ShardWriter` of this record type is given."""
        return {"record_type": cls.RECORD_TYPE, "record_version": cls.VERSION}

    @classmethod
    def parse(cls: type[Record], data: Any, *, stream: str, version: int | None = None) -> Record:
        """One record of ``stream`` written as ``version`` of this type (None: the current one)."""
        where = f"stream {stream}: {cls.RECORD_TYPE} record"
        if isinstance(data, Mapping) and isinstance(data.get("id"), str):
            where += f" {data['id']}"
        check_version(cls, version, where)
        return cls.from_json(data, where=where)


def check_version(cls: type[StreamRecord], version: Any, where: str) -> None:
    """Refuse a version this reader cannot read: newer (NewerFormatError) or not a version at all."""
    if version is None:
        return
    if type(version) is not int or version < 1:
        raise RecordError(f"{where}: field 'record_version' should be an integer >= 1, got {version!r}")
    if version > cls.VERSION:
        raise NewerFormatError(
            f"{where}: field 'record_version' is {version}, this advprover reads {cls.RECORD_TYPE} records up to "
            f"version {cls.VERSION}: upgrade advprover to read this experiment"
        )


def decode_records(
    cls: type[Record], header: Mapping[str, Any], records: list[Any], *, stream: str
) -> list[Record | RecordError]:
    """A shard's records as ``cls`` values, in order; a record that fails its checks is its RecordError.

    The header is checked first: a shard naming another record type raises :class:`RecordError`, a newer
    version :class:`NewerFormatError` (the shard is sound; never skipped, never quarantined). A shard without
    ``record_type`` (written before headers named it) is read as version 1 of ``cls``.
    """
    where = f"stream {stream}: shard {header.get('seq')}"
    named = header.get("record_type")
    if named is not None and named != cls.RECORD_TYPE:
        raise RecordError(
            f"{where}: field 'record_type' is {named!r}, this reader reads {cls.RECORD_TYPE!r} "
            "records: is the stream wired to the right consumer?"
        )
    version = header.get("record_version", 1 if named is None else None)
    if named is not None and version is None:
        raise RecordError(f"{where}: field 'record_version' is missing beside 'record_type'")
    check_version(cls, version, where)
    decoded: list[Record | RecordError] = []
    for record in records:
        try:
            decoded.append(cls.parse(record, stream=stream, version=version))
        except RecordError as error:
            decoded.append(error)
    return decoded


def valid_records(cls: type[Record], header: Mapping[str, Any], records: list[Any], *, stream: str) -> list[Record]:
    """The records of a shard that pass their checks (for tallies that skip malformed records)."""
    return [r for r in decode_records(cls, header, records, stream=stream) if not isinstance(r, RecordError)]


# --- generation records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal(JsonPart):
    """A theorem to prove: label, statement, essential hypotheses (label, statement), ``$d`` pairs."""

    label: str
    statement: str
    hypotheses: tuple[tuple[str, ...], ...]
    disjoint: tuple[tuple[str, ...], ...] = ()
    database: bool = False  # a theorem of the database itself (the source mix), not a new one

    @classmethod
    def of(cls, theorem: Assertion, *, database: bool = False) -> Goal:
        """The goal of ``theorem`` (``database``: the goal is that database theorem itself)."""
        return cls(
            theorem.label,
            " ".join(theorem.statement),
            tuple((h.label, " ".join(h.statement)) for h in theorem.essential),
            tuple(tuple(pair) for pair in sorted(theorem.disjoint)),
            database,
        )

    def theorem(self, workspace: Workspace) -> Assertion:
        """The theorem this goal describes: the database's own, or a new one at the end of the database.

        Raises :class:`MetamathError` for a malformed goal or labels that clash with the database's.
        """
        if any(len(pair) != 2 for pair in (*self.hypotheses, *self.disjoint)):
            raise MetamathError(f"malformed goal record {self.label}: hypotheses and $d entries are pairs")
        if self.database:
            return workspace.db.assertion(self.label)
        hypotheses = [(name, tuple(text.split())) for name, text in self.hypotheses]
        clashing = [name for name in [self.label] + [h for h, _ in hypotheses] if name in workspace.db.labels]
        if clashing:
            raise MetamathError(f"goal record reuses database label(s) {', '.join(clashing)}")
        return make_theorem(
            workspace.db,
            self.label,
            tuple(self.statement.split()),
            [s for _, s in hypotheses],
            [(x, y) for x, y in self.disjoint],
            hypothesis_labels=[h for h, _ in hypotheses],
        )

    def check(self, where: str) -> None:
        for name, pairs in (("hypotheses", self.hypotheses), ("disjoint", self.disjoint)):
            for index, pair in enumerate(pairs):
                if len(pair) != 2:
                    raise RecordError(f"{where}, field {name!r}[{index}]: should be a pair, got {len(pair)} items")


@dataclass(frozen=True)
class GenerationStats(JsonPart):
    size: int
    depth: int
    statement_length: int
    hypotheses: int
    steps: int
    rollout_end: str | None = None  # stop, max_steps, no_valid_proposal (generated theorems only)
    started_from: str | None = None  # the train theorem whose hypotheses started the rollout


@dataclass(frozen=True)
class RolloutStep(JsonPart):
    """One rollout action: assertion label, full substitution, the statement added (None: STOP), log-prob."""

    label: str
    substitution: dict[str, str]
    added: str | None
    logprob: float

    @classmethod
    def of(cls, step: Step) -> RolloutStep:
        return cls(
            step.tactic.label,
            {v: " ".join(e) for v, e in step.tactic.substitution.items()},
            " ".join(step.added) if step.added is not None else None,
            step.logprob,
        )

    def to_step(self) -> Step:
        """The rollout step this records (what the generator trainer replays)."""
        substitution = {v: tuple(e.split()) for v, e in self.substitution.items()}
        return Step(Tactic(self.label, substitution), tuple(self.added.split()) if self.added else None, self.logprob)


@dataclass(frozen=True)
class RolloutRecord(JsonPart):
    hypotheses: tuple[str, ...]
    steps: tuple[RolloutStep, ...]


@dataclass(frozen=True)
class GenerationRecord(StreamRecord):
    """A theorem sent to the prover actors (``source``: ``generator`` or ``dataset``); ``requested_difficulty``:
    the level the generator was asked for (``generator_actor.difficulty_conditioning``), else None."""

    RECORD_TYPE: ClassVar[str] = "generation"

    id: str
    source: str
    generator_version: int | None
    goal: Goal
    proof: dict[str, Any]  # a ProofTree's JSON, checked by the kernel where it is used
    stats: GenerationStats
    heuristic: float
    duplicate: bool
    rollout: RolloutRecord | None
    requested_difficulty: str | None = None  # optional since version 1: older records lack it

    @property
    def generated(self) -> bool:
        return self.source == "generator"

    def check(self, where: str) -> None:
        if self.requested_difficulty is not None and self.requested_difficulty not in DIFFICULTIES:
            raise RecordError(
                f"{where}, field 'requested_difficulty': should be one of {', '.join(DIFFICULTIES)} or null, "
                f"got {self.requested_difficulty!r}"
            )

    @classmethod
    def of_generated(
        cls,
        generated: Generated,
        *,
        generator_version: int,
        source_stream: str,
        requested_difficulty: str | None = None,
    ) -> GenerationRecord:
        """The record of a theorem the generator made (its rollout included), sent on ``source_stream``, asked
        for at ``requested_difficulty`` (None: unconditioned)."""
        theorem, proof, rollout = generated.theorem, generated.proof, generated.rollout
        stats = GenerationStats(
            size=proof.size,
            depth=proof.depth,
            statement_length=len(theorem.statement),
            hypotheses=len(theorem.essential),
            steps=len(rollout.steps),
            rollout_end=rollout.end,
            started_from=rollout.source_label,
        )
        return cls(
            id=f"{source_stream}/{uuid.uuid4().hex}",
            source="generator",
            generator_version=generator_version,
            goal=Goal.of(theorem),
            proof=proof.to_json(),
            stats=stats,
            heuristic=generated.heuristic,
            duplicate=generated.duplicate,
            rollout=RolloutRecord(
                tuple(" ".join(h) for h in rollout.hypotheses), tuple(RolloutStep.of(step) for step in rollout.steps)
            ),
            requested_difficulty=requested_difficulty,
        )

    @classmethod
    def of_database(cls, theorem: Assertion, proof: ProofTree, *, source_stream: str) -> GenerationRecord:
        """The record of a train theorem of the database (the source mix), sent on ``source_stream``."""
        stats = GenerationStats(
            size=proof.size,
            depth=proof.depth,
            statement_length=len(theorem.statement),
            hypotheses=len(theorem.essential),
            steps=0,
        )
        return cls(
            id=f"{source_stream}/{uuid.uuid4().hex}",
            source="dataset",
            generator_version=None,
            goal=Goal.of(theorem, database=True),
            proof=proof.to_json(),
            stats=stats,
            heuristic=0.0,
            duplicate=False,
            rollout=None,
        )


# --- result records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolvedSubgoal(JsonPart):
    """A goal a failed search proved on the way: its statement and its proof tree (which may use the
    searched theorem's hypotheses), for the prover trainer to re-check and learn."""

    statement: str
    proof: dict[str, Any]


@dataclass(frozen=True)
class CriticTarget(JsonPart):
    """A training target of the goal critic from the prover actor's searches: ``statement`` was provable with
    probability ``target`` (1: solved, 0: failed, else HTPS's soft value) after ``visits`` visits."""

    statement: str
    target: float
    visits: int

    def check(self, where: str) -> None:
        if not 0.0 <= self.target <= 1.0:
            raise RecordError(f"{where}, field 'target': should be in [0, 1], got {self.target!r}")
        if self.visits < 0:
            raise RecordError(f"{where}, field 'visits': should be >= 0, got {self.visits!r}")


@dataclass(frozen=True)
class ResultRecord(StreamRecord):
    """A prover actor's outcome on one generation record, its reward, and the trainers it is routed to."""

    RECORD_TYPE: ClassVar[str] = "result"

    id: str
    generation: GenerationRecord
    prover_version: int
    proved: bool
    attempts: int
    successes: int
    proof: dict[str, Any] | None
    search: dict[str, Any]
    reward: float
    for_generator_trainer: bool
    for_prover_trainer: bool
    solved_subgoals: tuple[SolvedSubgoal, ...] = ()
    critic_examples: tuple[CriticTarget, ...] = ()  # optional since version 1: older records lack it

    @property
    def difficulty(self) -> str | None:
        """The difficulty the prover measured (:func:`core.adversarial.rewards.difficulty_label`)."""
        return difficulty_label(successes=self.successes, attempts=self.attempts)

    @classmethod
    def of_attempts(
        cls,
        generation: GenerationRecord,
        tries: Sequence[SearchResult],
        *,
        prover_version: int,
        reward: float,
        generator_send_only_failed: bool,
        prover_send_only_failed: bool,
        prover_learns: str = GIVEN_PROOFS,
    ) -> ResultRecord:
        """A prover actor's outcome on ``generation`` from its searches ``tries`` (at least one), and its routing:
        a failure goes to both trainers; a success to a trainer unless it is sent failures only; a database
        theorem never to the generator trainer. ``prover_learns`` (:func:`core.adversarial.topology.prover_learns_from`)
        ``own`` routes only the proved ones to the prover trainer (their ``proof`` is what it learns), ``both``
        the proved ones too. A failure's ``solved_subgoals`` are those its searches reported (distinct statements);
        in ``own`` they route it to the prover trainer too. ``critic_examples`` are the critic targets its
        searches reported (:func:`merged_critic_targets`); they never change the routing."""
        successes = sum(r.proved for r in tries)
        proved = successes > 0
        best = next((r for r in tries if r.proved), tries[0])
        subgoals = () if proved else distinct_subgoals(tries)
        return cls(
            id=generation.id,
            generation=generation,
            prover_version=prover_version,
            proved=proved,
            attempts=len(tries),
            successes=successes,
            proof=best.proof.to_json() if best.proof is not None else None,
            search=best.to_json(include_proof=False),
            reward=reward,
            for_generator_trainer=generation.generated and (not proved or not generator_send_only_failed),
            for_prover_trainer=routed_to_prover_trainer(
                prover_learns, proved=proved, send_only_failed=prover_send_only_failed, solved_subgoals=bool(subgoals)
            ),
            solved_subgoals=subgoals,
            critic_examples=merged_critic_targets(tries),
        )


def distinct_subgoals(tries: Sequence[SearchResult]) -> tuple[SolvedSubgoal, ...]:
    """The solved subgoals the searches ``tries`` reported, each statement once (the first proof found)."""
    found: dict[str, SolvedSubgoal] = {}
    for result in tries:
        for statement, tree in result.solved_subgoals:
            text = " ".join(statement)
            found.setdefault(text, SolvedSubgoal(text, tree.to_json()))
    return tuple(found.values())


def merged_critic_targets(tries: Sequence[SearchResult]) -> tuple[CriticTarget, ...]:
    """The critic targets the searches ``tries`` reported, each statement once: the mean of its targets
    weighted by visits (each counted at least once), its visits summed; in the order first reported."""
    sums: dict[str, list[float]] = {}
    for result in tries:
        for statement, target, visits in result.critic_examples:
            entry = sums.setdefault(" ".join(statement), [0.0, 0.0, 0])
            weight = max(visits, 1)
            entry[0] += target * weight
            entry[1] += weight
            entry[2] += visits
    return tuple(
        CriticTarget(text, min(1.0, max(0.0, total / weight)), int(visits))
        for text, (total, weight, visits) in sums.items()
    )


# --- evaluation records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationRecord(StreamRecord):
    """One prover version (or ``"baseline"``) measured on the benchmark; ``summary`` is the search summary."""

    RECORD_TYPE: ClassVar[str] = "evaluation"

    version: int | str
    step: int | None
    benchmark: str
    time: float
    seconds: float
    total: int
    proved: int
    success_rate: float
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> JSON_OBJECT:
        """The summary's other keys sit beside the record's own (the layout of the stream since its start)."""
        own = super().to_json()
        return {**own.pop("summary"), **own}

    @classmethod
    def from_json(cls, data: Any, *, where: str = "record") -> EvaluationRecord:
        record = super().from_json(data, where=where)
        own = {f.name for f in dataclasses.fields(cls)}
        return dataclasses.replace(record, summary={k: v for k, v in data.items() if k not in own})


RECORD_TYPES: dict[str, type[StreamRecord]] = {
    cls.RECORD_TYPE: cls for cls in (GenerationRecord, ResultRecord, EvaluationRecord)
}


# --- conversions ----------------------------------------------------------------------------------------


@functools.cache
def record_type_of(kind: str) -> type[StreamRecord]:
    """The record type a stream of this kind (:mod:`core.adversarial.topology`'s ``GENERATIONS``, ``RESULTS``,
    ``EVALUATIONS``) carries."""
    return {GENERATIONS: GenerationRecord, RESULTS: ResultRecord, EVALUATIONS: EvaluationRecord}[kind]


def _cached_hints(cls: Hashable) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's resolved field types (computed once per class)."""
    return _cached_hints(cls)


def _to_json(value: Any) -> Any:
    if isinstance(value, JsonPart):
        return value.to_json()
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    return value


def _from_json(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against ``hint`` (and converted: arrays to tuples, objects to parts)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        return _from_union(value, typing.get_args(hint), where)
    if origin is tuple:
        if type(value) is not list:
            raise RecordError(f"{where}: should be an array, got {_json_type(value)}")
        item = typing.get_args(hint)[0]
        return tuple(_from_json(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if type(value) is not dict:
            raise RecordError(f"{where}: should be an object, got {_json_type(value)}")
        item = typing.get_args(hint)[1]
        return {k: _from_json(v, item, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, JsonPart):
        return hint.from_json(value, where=where)
    return _from_scalar(value, hint, where)


def _from_union(value: Any, options: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is type(None):
            continue
        try:
            return _from_json(value, option, where)
        except RecordError:
            if len(options) == 2 and type(None) in options and not _is_scalar(option):
                raise  # an optional part or array: its own error names the inner field
    names = " or ".join("null" if o is type(None) else _type_name(o) for o in options)
    raise RecordError(f"{where}: should be {names}, got {_json_type(value)}")


def _is_scalar(hint: Any) -> bool:
    return hint in (str, int, float, bool)


def _from_scalar(value: Any, hint: type, where: str) -> Any:
    if hint is float and type(value) in (int, float):
        return float(value)
    if type(value) is hint:  # exact: a boolean is not an integer here
        return value
    raise RecordError(f"{where}: should be {_type_name(hint)}, got {_json_type(value)}")


def _type_name(hint: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}.get(hint, str(hint))


def _json_type(value: Any) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return f"{names.get(type(value), type(value).__name__)} ({str(value)[:40]!r})"


__all__ = [
    "RECORD_TYPES",
    "CriticTarget",
    "EvaluationRecord",
    "GenerationRecord",
    "GenerationStats",
    "Goal",
    "ResultRecord",
    "RolloutRecord",
    "RolloutStep",
    "StreamRecord",
    "decode_records",
    "valid_records",
]
