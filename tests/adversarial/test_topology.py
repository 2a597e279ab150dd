"""The wiring table: every setup's roles and streams hang together, and an unknown setup is refused."""

from __future__ import annotations

import dataclasses

import pytest

from core.adversarial.topology import (
    BOTH_PROOFS,
    EVALUATION_STREAM,
    EVALUATIONS,
    GENERATIONS,
    GIVEN_PROOFS,
    IN_CHECKPOINT,
    IN_STREAM,
    OWN_PROOFS,
    RESULTS,
    ROLES,
    SETUP_TABLE,
    SETUPS,
    TRAIN_SPLIT,
    Setup,
    Wiring,
    _setup,
    check_role_counts,
    generator_learns_from_results,
    generator_trainer_reads_generations,
    prover_actor_reads_train_split,
    prover_learns_from,
    routed_to_prover_trainer,
    wiring,
)
from core.errors import ConfigError


def counts_for(setup: str, *, many: bool) -> dict[str, int]:
    """Counts ``setup`` accepts: the roles it needs and the optional ones run (several of each if ``many``)."""
    absent = SETUP_TABLE[setup].absent
    sizes = {"generator_actor": 2, "prover_actor": 3, "generator_trainer": 2, "prover_trainer": 2, "evaluator": 1}
    return {role: 0 if role in absent else (sizes[role] if many else 1) for role in ROLES}


def wiring_problems(table: Wiring) -> list[str]:
    """What is wrong with a wiring: a stream read but not written by a running job, one written but neither
    read nor explained, a consumer whose role does not run, a name used twice."""
    jobs = set(table.job_names())
    names = table.stream_names()
    problems = [f"{name} listed twice" for name in set(names) if names.count(name) > 1]
    for stream in table.streams:
        if stream.producer not in jobs:
            problems.append(f"{stream.name}: its producer {stream.producer} does not run")
        if not stream.consumers and not stream.unread:
            problems.append(f"{stream.name}: written, read by nobody, and no reason given")
        for consumer in stream.consumers:
            if table.count(consumer.role) == 0:
                problems.append(f"{stream.name}: its consumer {consumer.name} does not run")
            if consumer.cursor_in == IN_STREAM and consumer.cursor_name not in names:
                problems.append(
                    f"{stream.name}: {consumer.name} commits in {consumer.cursor_name}, which no job writes"
                )
    return problems


CASES = [(setup, many) for setup in SETUPS for many in (False, True)]


@pytest.mark.parametrize("setup, many", CASES)
def test_every_stream_of_every_setup_has_a_producer_and_a_consumer_or_a_reason(setup: str, many: bool) -> None:
    counts = counts_for(setup, many=many)
    check_role_counts(setup, counts)  # the counts are ones the configuration accepts
    table = wiring(setup, counts)
    assert wiring_problems(table) == []
    assert {run.role: run.count for run in table.runs} == {r: n for r, n in counts.items() if n}
    for run in table.runs:  # each job's inputs and outputs are streams of the table
        for rank in range(run.count):
            assert set(table.read_by(run.role, rank)) <= set(table.stream_names())
            assert set(table.written_by(run.role, rank)) <= set(table.stream_names())


def test_a_stream_nobody_reads_without_a_reason_is_found() -> None:
    """Twin: the check above fails on a table whose result streams lost their consumers."""
    table = wiring("adversarial", counts_for("adversarial", many=False))
    broken = dataclasses.replace(
        table, streams=tuple(dataclasses.replace(s, consumers=()) if s.kind == RESULTS else s for s in table.streams)
    )
    assert wiring_problems(broken) == ["prover-actor-00: written, read by nobody, and no reason given"]


def test_the_adversarial_wiring() -> None:
    table = wiring(
        "adversarial",
        {"generator_actor": 2, "prover_actor": 2, "generator_trainer": 1, "prover_trainer": 2, "evaluator": 1},
    )
    assert table.written_by("generator_actor", 1) == ["generator-actor-01-to-00", "generator-actor-01-to-01"]
    assert table.read_by("prover_actor", 1) == ["generator-actor-00-to-01", "generator-actor-01-to-01"]
    assert (
        table.read_by("prover_trainer", 1)
        == table.read_by("generator_trainer", 0)
        == ["prover-actor-00", "prover-actor-01"]
    )
    assert [(c.name, c.cursor_in, c.cursor_name) for c in table.consumers_of("prover-actor-01")] == [
        ("prover-trainer", IN_CHECKPOINT, "prover"),
        ("generator-trainer", IN_CHECKPOINT, "generator"),
    ]
    assert [c.name for c in table.consumers_of("generator-actor-00-to-01")] == ["prover-actor-01"]
    evaluations = table.stream(EVALUATION_STREAM)
    assert evaluations is not None and evaluations.unread and table.consumers_of(EVALUATION_STREAM) == ()
    assert table.group_size("prover_trainer") == 2 and table.group_size("generator_trainer") == 1
    assert table.group_size("prover_actor") == 1  # actors never form groups


def test_heuristic_setups_feed_the_generations_to_the_generator_trainer() -> None:
    reward = wiring("generator-reward", counts_for("generator-reward", many=False))
    assert [c.name for c in reward.consumers_of("generator-actor-00-to-00")] == ["prover-actor-00", "generator-trainer"]
    assert [c.name for c in reward.consumers_of("prover-actor-00")] == ["prover-trainer"]
    alone = wiring("generator-only", counts_for("generator-only", many=True))
    assert alone.stream_names(GENERATIONS) == ["generator-actor-00-to-00", "generator-actor-01-to-00"]
    assert alone.read_by("generator_trainer", 1) == alone.stream_names(GENERATIONS)


def test_an_unknown_setup_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown setup 'sideways': choose one of adversarial, fixed-prover"):
        wiring("sideways", counts_for("adversarial", many=False))
    with pytest.raises(ConfigError, match="unknown setup"):
        check_role_counts("", {})


def test_counts_a_setup_does_not_accept_are_refused() -> None:
    with pytest.raises(ConfigError, match="setup 'fixed-prover' runs no prover_trainer"):
        check_role_counts("fixed-prover", counts_for("adversarial", many=False))
    with pytest.raises(ConfigError, match="setup 'supervised-only' needs prover_trainer.count >= 1"):
        check_role_counts("supervised-only", {})


def test_prover_only_runs_no_generator_and_feeds_the_provers_results_to_its_trainer() -> None:
    table = wiring("prover-only", counts_for("prover-only", many=True))
    assert table.stream_names() == ["prover-actor-00", "prover-actor-01", "prover-actor-02", EVALUATION_STREAM]
    assert all(table.read_by("prover_actor", rank) == [] for rank in range(3))  # goals from the train split
    assert [c.name for c in table.consumers_of("prover-actor-02")] == ["prover-trainer"]
    assert prover_actor_reads_train_split("prover-only")
    assert not any(prover_actor_reads_train_split(setup) for setup in SETUPS if setup != "prover-only")
    with pytest.raises(ConfigError, match="setup 'prover-only' runs no generator_actor"):
        check_role_counts("prover-only", counts_for("adversarial", many=False))


@pytest.mark.parametrize(
    "setup, own_proofs, send_only_failed, routed",
    [  # routed: (failed, proved) -> whether the prover trainer gets the result
        ("adversarial", False, True, (True, False)),  # today's default: failures only
        ("adversarial", False, False, (True, True)),
        ("adversarial", True, True, (True, True)),  # learn_from_own_proofs: the proved ones too
        ("prover-only", False, True, (False, True)),  # expert iteration: the proved ones only
        ("prover-only", False, False, (False, True)),
    ],
)
def test_what_the_prover_trainer_is_sent(
    setup: str, own_proofs: bool, send_only_failed: bool, routed: tuple[bool, bool]
) -> None:
    learns = prover_learns_from(setup, own_proofs)
    assert learns == (OWN_PROOFS if setup == "prover-only" else BOTH_PROOFS if own_proofs else GIVEN_PROOFS)
    assert (
        tuple(routed_to_prover_trainer(learns, proved=p, send_only_failed=send_only_failed) for p in (False, True))
        == routed
    )


# --- the documented wiring of each setup, stream by stream (docs/ARCHITECTURE.md, "Stream assignment") -----------

TWO_BY_TWO = {"generator_actor": 2, "prover_actor": 2, "generator_trainer": 1, "prover_trainer": 1, "evaluator": 1}
PROVER_ACTOR = [("prover-actor-00", IN_STREAM, "prover-actor-00"), ("prover-actor-01", IN_STREAM, "prover-actor-01")]
PROVER_TRAINER = ("prover-trainer", IN_CHECKPOINT, "prover")
GENERATOR_TRAINER = ("generator-trainer", IN_CHECKPOINT, "generator")
Row = tuple[str, str, str, list[tuple[str, str, str]]]


def generation_rows(generator_trainer_reads_them: bool) -> list[Row]:
    """Generator actor g writes generator-actor-gg-to-pp for each prover actor p, read by prover actor p only
    (and by the generator trainer in the heuristic-reward setups)."""
    extra = [GENERATOR_TRAINER] if generator_trainer_reads_them else []
    return [
        (f"generator-actor-0{g}-to-0{p}", GENERATIONS, f"generator-actor-0{g}", [PROVER_ACTOR[p], *extra])
        for g in (0, 1)
        for p in (0, 1)
    ]


def result_rows(*readers: tuple[str, str, str]) -> list[Row]:
    return [(f"prover-actor-0{p}", RESULTS, f"prover-actor-0{p}", list(readers)) for p in (0, 1)]


EVALUATOR_ROW: Row = (EVALUATION_STREAM, EVALUATIONS, "evaluator-00", [])
DOCUMENTED = {
    "adversarial": generation_rows(False) + result_rows(PROVER_TRAINER, GENERATOR_TRAINER) + [EVALUATOR_ROW],
    "fixed-prover": generation_rows(False) + result_rows(GENERATOR_TRAINER) + [EVALUATOR_ROW],
    "fixed-generator": generation_rows(False) + result_rows(PROVER_TRAINER) + [EVALUATOR_ROW],
    "generator-only": [
        (f"generator-actor-0{g}-to-00", GENERATIONS, f"generator-actor-0{g}", [GENERATOR_TRAINER]) for g in (0, 1)
    ],
    "generator-reward": generation_rows(True) + result_rows(PROVER_TRAINER) + [EVALUATOR_ROW],
    "supervised-only": [EVALUATOR_ROW],
    "prover-only": [*result_rows(PROVER_TRAINER), EVALUATOR_ROW],
}


def accepted(setup: str, counts: dict[str, int]) -> dict[str, int]:
    """``counts`` less the roles ``setup`` forbids."""
    return {role: 0 if role in SETUP_TABLE[setup].absent else n for role, n in counts.items()}


def rows(table: Wiring) -> list[Row]:
    return [
        (s.name, s.kind, s.producer, [(c.name, c.cursor_in, c.cursor_name) for c in s.consumers]) for s in table.streams
    ]


@pytest.mark.parametrize("setup", SETUPS)
def test_each_setup_has_its_documented_streams_writers_readers_and_commit_places(setup: str) -> None:
    counts = accepted(setup, TWO_BY_TWO)
    check_role_counts(setup, counts)
    table = wiring(setup, counts)
    assert table.setup is SETUP_TABLE[setup]
    assert rows(table) == DOCUMENTED[setup]
    assert [table.count(role) for role in ROLES] == [counts[role] for role in ROLES]
    for kind in (GENERATIONS, RESULTS, EVALUATIONS):
        assert table.stream_names(kind) == [row[0] for row in DOCUMENTED[setup] if row[1] == kind]


def test_a_stream_not_in_the_table_is_absent_and_read_by_nobody() -> None:
    table = wiring("adversarial", TWO_BY_TWO)
    assert table.stream("generator-actor-02-to-00") is None
    assert table.consumers_of("generator-actor-02-to-00") == ()
    assert table.stream("prover-actor-01") is not None


def test_a_role_missing_from_the_counts_does_not_run() -> None:
    """``wiring`` with only the roles that run named equals ``wiring`` with the others at 0."""
    named = {"generator_actor": 2, "generator_trainer": 1}
    table = wiring("generator-only", named)
    assert table == wiring("generator-only", accepted("generator-only", {role: named.get(role, 0) for role in ROLES}))
    assert [run.role for run in table.runs] == ["generator_actor", "generator_trainer"]
    assert table.count("prover_actor") == table.count("evaluator") == 0
    assert table.job_names() == ["generator-actor-00", "generator-actor-01", "generator-trainer-00"]
    alone = wiring("supervised-only", {"prover_trainer": 1})
    assert alone.streams == () and alone.job_names() == ["prover-trainer-00"]


@pytest.mark.parametrize("setup", SETUPS)
def test_whatever_runs_no_stream_names_a_consumer_that_does_not(setup: str) -> None:
    """Even counts the configuration would refuse (the launcher reports those) give a table whose readers run."""
    for mask in range(1 << len(ROLES)):
        counts = {role: (mask >> i) & 1 for i, role in enumerate(ROLES)}
        readers = {c.role for s in wiring(setup, counts).streams for c in s.consumers}
        assert readers <= {role for role in ROLES if counts[role]}, (setup, counts)


@pytest.mark.parametrize(
    "setup, reads_generations, learns_from_results",
    [
        ("adversarial", False, True),
        ("fixed-prover", False, True),
        ("fixed-generator", False, False),  # no generator trainer runs
        ("generator-only", True, False),
        ("generator-reward", True, False),
        ("supervised-only", False, False),
        ("prover-only", False, False),
    ],
)
def test_what_the_generator_trainer_learns_from(setup: str, reads_generations: bool, learns_from_results: bool) -> None:
    assert generator_trainer_reads_generations(setup) is reads_generations
    assert generator_learns_from_results(setup) is learns_from_results
    table = wiring(setup, accepted(setup, TWO_BY_TWO))
    assert any(c.role == "generator_trainer" for s in table.streams if s.kind == RESULTS for c in s.consumers) is (
        learns_from_results
    )


def test_unknown_setups_are_refused_by_every_question() -> None:
    for question in (generator_trainer_reads_generations, generator_learns_from_results, prover_learns_from):
        with pytest.raises(ConfigError, match="unknown setup 'sideways'"):
            question("sideways")


def test_the_prover_trainer_learns_from_the_given_proofs_unless_told_otherwise() -> None:
    assert prover_learns_from("adversarial") == GIVEN_PROOFS
    assert prover_learns_from("adversarial", True) == BOTH_PROOFS
    assert prover_learns_from("prover-only") == prover_learns_from("prover-only", True) == OWN_PROOFS


def test_the_table_notation_reads_space_separated_roles_with_the_documented_defaults() -> None:
    """``_setup``: required and forbidden roles as words; by default none forbidden, the generator trainer
    learns from the results and the prover actors take their goals from the generations."""
    plain = _setup("plain", "generator_actor prover_actor")
    assert plain == Setup("plain", frozenset({"generator_actor", "prover_actor"}), frozenset(), RESULTS, GENERATIONS)
    told = _setup("told", "prover_trainer", "generator_actor evaluator", GENERATIONS, TRAIN_SPLIT)
    assert told == Setup(
        "told", frozenset({"prover_trainer"}), frozenset({"generator_actor", "evaluator"}), GENERATIONS, TRAIN_SPLIT
    )
