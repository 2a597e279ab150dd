"""The wiring table: every setup's roles and streams hang together, and an unknown setup is refused."""

from __future__ import annotations

import dataclasses

import pytest

from core.adversarial.topology import (
    BOTH_PROOFS,
    EVALUATION_STREAM,
    GENERATIONS,
    GIVEN_PROOFS,
    IN_CHECKPOINT,
    IN_STREAM,
    OWN_PROOFS,
    RESULTS,
    ROLES,
    SETUP_TABLE,
    SETUPS,
    Wiring,
    check_role_counts,
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
