"""The wiring table: for each setup, which roles run, which streams exist, who writes and who reads each.

This module is the one place that says how an experiment's jobs are connected; the configuration (which
setups exist and which roles each needs), the launcher (which jobs to start), the roles (which streams to
write and read), retention (whose cursors bound pruning) and ``jobs.status`` (which flows to reconcile)
all read it through :func:`wiring`.

Generator actor ``g`` writes one stream per prover actor ``p`` (``generator-actor-gg-to-pp``); prover actor
``p`` reads all streams ending in ``-to-pp`` and writes its results to ``prover-actor-pp``, committing its
input cursor in that stream's shard headers. So every generation stream has one writer and one prover
reader, for any numbers of generator and prover actors. When no prover actor runs, generator actors write
one stream each (``...-to-00``). Trainers read as a group: every rank reads all of the group's input
streams and keeps the records it owns (``jobs._group``), committing every rank's cursor in the metadata of
its checkpoints (:func:`core.storage.group_cursor` is what the group has committed). The generator trainer
reads the generation streams in the heuristic-reward setups, the prover actors' results otherwise. The
evaluator writes ``evaluator-00``, which no job consumes: it is the benchmark's record, read by
``jobs.status`` and the launcher's progress report, and kept whole.

In ``prover-only`` (Evariste's PROVER_ONLY: expert iteration) no generator runs: each prover actor takes its
goals from the database's train split itself (:data:`TRAIN_SPLIT`; it reads no stream), and the prover
trainer learns from the proofs the prover found (:func:`prover_learns_from`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core.errors import ConfigError

ROLES = ("generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator")
ROLE_JOB_NAMES = {
    "generator_actor": "generator-actor",
    "prover_actor": "prover-actor",
    "generator_trainer": "generator-trainer",
    "prover_trainer": "prover-trainer",
    "evaluator": "evaluator",
}
TRAINER_ROLES = ("generator_trainer", "prover_trainer")

PROVER_CHECKPOINTS = "prover"
GENERATOR_CHECKPOINTS = "generator"
EVALUATION_STREAM = "evaluator-00"

GENERATIONS, RESULTS, EVALUATIONS = "generations", "results", "evaluations"  # the kinds of stream
TRAIN_SPLIT = "train-split"  # where the prover actors of prover-only take their goals (no stream)
GIVEN_PROOFS, OWN_PROOFS, BOTH_PROOFS = "given", "own", "both"  # what the prover trainer learns from
IN_STREAM, IN_CHECKPOINT = "stream", "checkpoint"  # where a consumer commits its cursor

EVALUATIONS_UNREAD = (
    "the benchmark's record: read by jobs.status and the launcher's progress report, "
    "consumed by no job, so it is never pruned"
)


def job_name(role: str, rank: int) -> str:
    """``prover_actor``, 3 -> ``prover-actor-03`` (also the name of the job's output stream, if any)."""
    return f"{ROLE_JOB_NAMES[role]}-{rank:02d}"


def generation_stream(generator_rank: int, prover_rank: int) -> str:
    return f"generator-actor-{generator_rank:02d}-to-{prover_rank:02d}"


# --- the setups ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One setup: the roles it needs (count >= 1), those it must not run (count == 0; the others are
    optional), what the generator trainer learns from (``generations``: their heuristic score is the
    reward; ``results``: the prover's reward), and where the prover actors take their goals
    (``generations``: the generation streams; ``train-split``: the database's train split)."""

    name: str
    required: frozenset[str]
    absent: frozenset[str]
    generator_trainer_reads: str
    prover_goals: str = GENERATIONS


def _setup(
    name: str, required: str, absent: str = "", generator_trainer_reads: str = RESULTS, prover_goals: str = GENERATIONS
) -> Setup:
    return Setup(name, frozenset(required.split()), frozenset(absent.split()), generator_trainer_reads, prover_goals)


SETUP_TABLE: dict[str, Setup] = {
    setup.name: setup
    for setup in (
        _setup("adversarial", "generator_actor prover_actor generator_trainer prover_trainer"),
        _setup("fixed-prover", "generator_actor prover_actor generator_trainer", "prover_trainer"),
        _setup("fixed-generator", "generator_actor prover_actor prover_trainer", "generator_trainer"),
        _setup(
            "generator-only",
            "generator_actor generator_trainer",
            "prover_actor prover_trainer evaluator",
            generator_trainer_reads=GENERATIONS,
        ),
        _setup(
            "generator-reward",
            "generator_actor prover_actor generator_trainer prover_trainer",
            generator_trainer_reads=GENERATIONS,
        ),
        _setup("supervised-only", "prover_trainer", "generator_actor prover_actor"),
        _setup(
            "prover-only",
            "prover_actor prover_trainer",
            "generator_actor generator_trainer",
            prover_goals=TRAIN_SPLIT,
        ),
    )
}
SETUPS = tuple(SETUP_TABLE)


def setup_named(name: str) -> Setup:
    """The setup called ``name``; :class:`ConfigError` naming the known ones if there is none."""
    if name not in SETUP_TABLE:
        raise ConfigError(f"unknown setup {name!r}: choose one of {', '.join(SETUPS)}")
    return SETUP_TABLE[name]


def check_role_counts(setup: str, counts: Mapping[str, int]) -> None:
    """:class:`ConfigError` unless every role ``setup`` needs runs and none it forbids does."""
    wants = setup_named(setup)
    for role in ROLES:
        count = counts.get(role, 0)
        if role in wants.required and count == 0:
            raise ConfigError(f"setup {setup!r} needs {role}.count >= 1")
        if role in wants.absent and count != 0:
            raise ConfigError(f"setup {setup!r} runs no {role}: set {role}.count=0")


def generator_trainer_reads_generations(setup: str) -> bool:
    """In the heuristic-reward setups the generator trainer reads the generation streams (else the results)."""
    return setup_named(setup).generator_trainer_reads == GENERATIONS


def generator_learns_from_results(setup: str) -> bool:
    """Whether a generator trainer runs and learns from the prover actors' results (their outcomes)."""
    wants = setup_named(setup)
    return "generator_trainer" in wants.required and wants.generator_trainer_reads == RESULTS


def prover_actor_reads_train_split(setup: str) -> bool:
    """In ``prover-only`` the prover actors take their goals from the train split (they read no stream)."""
    return setup_named(setup).prover_goals == TRAIN_SPLIT


def prover_learns_from(setup: str, own_proofs: bool = False) -> str:
    """What the prover trainer learns from: the proofs that came with the goals (``given``: the generator's
    proofs of the theorems routed to it), the proofs the prover found itself (``own``: prover-only, where the
    given proofs are the database's), or ``both`` (``prover_trainer.learn_from_own_proofs`` elsewhere)."""
    if prover_actor_reads_train_split(setup):
        return OWN_PROOFS
    return BOTH_PROOFS if own_proofs else GIVEN_PROOFS


def routed_to_prover_trainer(
    learns: str, *, proved: bool, send_only_failed: bool, solved_subgoals: bool = False
) -> bool:
    """Whether a result goes to the prover trainer: a found proof when it learns from its own proofs (or a
    failure whose search solved subgoals), and (unless it learns from its own proofs only) a failure, or a
    success unless it is sent failures only."""
    given = not proved or not send_only_failed
    if learns == OWN_PROOFS:
        return proved or solved_subgoals
    return given or (proved and learns == BOTH_PROOFS)


# --- the table ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """A reader of a stream and where it commits its cursor: in the shard headers of its own output stream
    (``stream``: a prover actor), or in the metadata of its checkpoints (``checkpoint``: a trainer group)."""

    role: str
    rank: int | None  # None: every rank of a trainer group reads the stream
    cursor_in: str  # IN_STREAM or IN_CHECKPOINT
    cursor_name: str  # the name of that stream or checkpoint

    @property
    def name(self) -> str:
        """As reports show it: the job (``prover-actor-01``) or the trainer group (``generator-trainer``)."""
        return ROLE_JOB_NAMES[self.role] if self.rank is None else job_name(self.role, self.rank)


@dataclass(frozen=True)
class StreamWiring:
    """One stream: its kind, the job that writes it, and its consumers. The first consumer is the one whose
    pace the producer follows (a generator actor pauses while it lags); ``unread`` says why a stream no job
    consumes exists."""

    name: str
    kind: str
    producer: str
    consumers: tuple[Consumer, ...]
    unread: str = ""


@dataclass(frozen=True)
class RoleRun:
    """A role that runs: how many jobs, and whether they form one data-parallel group (restarted together)."""

    role: str
    count: int

    @property
    def grouped(self) -> bool:
        return self.role in TRAINER_ROLES and self.count > 1

    @property
    def job_names(self) -> list[str]:
        return [job_name(self.role, rank) for rank in range(self.count)]


@dataclass(frozen=True)
class Wiring:
    """The roles and streams of one experiment (see the module docstring)."""

    setup: Setup
    runs: tuple[RoleRun, ...]
    streams: tuple[StreamWiring, ...]

    def count(self, role: str) -> int:
        return next((run.count for run in self.runs if run.role == role), 0)

    def group_size(self, role: str) -> int:
        """How many jobs of ``role`` form one data-parallel group, started and restarted together (1: each
        job stands alone, as every job of a role that does not run in groups does)."""
        return next((run.count for run in self.runs if run.role == role and run.grouped), 1)

    def job_names(self) -> list[str]:
        """Every job that runs, in :data:`ROLES` order."""
        return [name for run in self.runs for name in run.job_names]

    def stream_names(self, kind: str | None = None) -> list[str]:
        return [stream.name for stream in self.streams if kind is None or stream.kind == kind]

    def stream(self, name: str) -> StreamWiring | None:
        return next((stream for stream in self.streams if stream.name == name), None)

    def consumers_of(self, stream: str) -> tuple[Consumer, ...]:
        """Who reads ``stream`` (nobody, for a stream the table does not list)."""
        found = self.stream(stream)
        return found.consumers if found is not None else ()

    def written_by(self, role: str, rank: int) -> list[str]:
        """The streams job ``rank`` of ``role`` writes."""
        return [stream.name for stream in self.streams if stream.producer == job_name(role, rank)]

    def read_by(self, role: str, rank: int) -> list[str]:
        """The streams job ``rank`` of ``role`` reads (a trainer rank: all of its group's)."""
        return [
            stream.name
            for stream in self.streams
            if any(c.role == role and c.rank in (None, rank) for c in stream.consumers)
        ]


class RoleCounts(Protocol):
    """What :func:`wiring_of` needs of a configuration (``configs.experiment.ExperimentConfig`` has it)."""

    @property
    def setup(self) -> str: ...

    def role_count(self, role: str) -> int: ...


def wiring_of(config: RoleCounts) -> Wiring:
    """The wiring of an experiment's configuration."""
    return wiring(config.setup, {role: config.role_count(role) for role in ROLES})


def wiring(setup: str, counts: Mapping[str, int]) -> Wiring:
    """The wiring of ``setup`` with ``counts`` jobs per role (a role missing from ``counts`` does not run)."""
    chosen = setup_named(setup)
    runs = tuple(RoleRun(role, counts.get(role, 0)) for role in ROLES if counts.get(role, 0) > 0)
    by_role = {run.role: run.count for run in runs}
    return Wiring(
        chosen,
        runs,
        tuple(_generation_streams(chosen, by_role) + _result_streams(chosen, by_role) + _evaluation_streams(by_role)),
    )


def _trainer(role: str, checkpoint: str) -> Consumer:
    return Consumer(role, None, IN_CHECKPOINT, checkpoint)


def _generation_streams(setup: Setup, counts: Mapping[str, int]) -> list[StreamWiring]:
    provers = counts.get("prover_actor", 0)
    trainer = (
        [_trainer("generator_trainer", GENERATOR_CHECKPOINTS)]
        if setup.generator_trainer_reads == GENERATIONS and counts.get("generator_trainer", 0)
        else []
    )
    streams = []
    for generator in range(counts.get("generator_actor", 0)):
        for prover in range(max(provers, 1)):
            actor = [Consumer("prover_actor", prover, IN_STREAM, job_name("prover_actor", prover))] if provers else []
            streams.append(
                StreamWiring(
                    generation_stream(generator, prover),
                    GENERATIONS,
                    job_name("generator_actor", generator),
                    tuple(actor + trainer),
                )
            )
    return streams


def _result_streams(setup: Setup, counts: Mapping[str, int]) -> list[StreamWiring]:
    trainers = []
    if counts.get("prover_trainer", 0):
        trainers.append(_trainer("prover_trainer", PROVER_CHECKPOINTS))
    if counts.get("generator_trainer", 0) and setup.generator_trainer_reads == RESULTS:
        trainers.append(_trainer("generator_trainer", GENERATOR_CHECKPOINTS))
    return [
        StreamWiring(job_name("prover_actor", prover), RESULTS, job_name("prover_actor", prover), tuple(trainers))
        for prover in range(counts.get("prover_actor", 0))
    ]


def _evaluation_streams(counts: Mapping[str, int]) -> list[StreamWiring]:
    """The evaluator (at most one: ``evaluator.count`` is 0 or 1) writes :data:`EVALUATION_STREAM`."""
    if not counts.get("evaluator", 0):
        return []
    return [StreamWiring(EVALUATION_STREAM, EVALUATIONS, job_name("evaluator", 0), (), EVALUATIONS_UNREAD)]
