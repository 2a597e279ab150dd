"""The streams' typed records: round trips, refused twins (missing field, wrong type, newer version), forward
compatibility, and shard headers naming the record type (shards written before they did are still read)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from core.adversarial.records import (
    EvaluationRecord,
    GenerationRecord,
    GenerationStats,
    Goal,
    ResultRecord,
    RolloutRecord,
    RolloutStep,
    StreamRecord,
    decode_records,
    valid_records,
)
from core.errors import NewerFormatError, RecordError, StorageError
from core.storage import ExperimentRoot, ShardWriter, StreamReader, read_shard

GEN = "generator-actor-00-to-00"


def generation() -> GenerationRecord:
    return GenerationRecord(
        id=f"{GEN}/1",
        source="generator",
        generator_version=3,
        goal=Goal("advgen.1", "|- ( ph -> ph )", (("advgen.h1", "|- ph"),), (("ph", "ps"),)),
        proof={"label": "a1i", "children": []},
        stats=GenerationStats(
            size=3, depth=2, statement_length=6, hypotheses=1, steps=1, rollout_end="stop", started_from="mp"
        ),
        heuristic=0.5,
        duplicate=False,
        rollout=RolloutRecord(
            ("|- ph",),
            (RolloutStep("a1i", {"ph": "ph"}, "|- ( ph -> ph )", -0.25), RolloutStep("STOP", {}, None, -0.5)),
        ),
    )


def result() -> ResultRecord:
    return ResultRecord(
        id=f"{GEN}/1",
        generation=generation(),
        prover_version=2,
        proved=False,
        attempts=1,
        successes=0,
        proof=None,
        search={"expansions": 4},
        reward=1.0,
        for_generator_trainer=True,
        for_prover_trainer=True,
    )


def evaluation() -> EvaluationRecord:
    return EvaluationRecord(
        version=4,
        step=100,
        benchmark="test split",
        time=1732.5,
        seconds=2.0,
        total=8,
        proved=2,
        success_rate=0.25,
        summary={"kernel_rejections": 0, "proof_size": None},
    )


RECORDS = [generation, result, evaluation]


@pytest.mark.parametrize("make", RECORDS)
def test_each_record_type_round_trips_through_json(make) -> None:
    record = make()
    assert type(record).parse(record.to_json(), stream="s") == record


def test_an_evaluation_keeps_its_summary_beside_its_own_fields_on_the_wire() -> None:
    wire = evaluation().to_json()
    assert wire["kernel_rejections"] == 0 and wire["success_rate"] == 0.25 and "summary" not in wire
    assert EvaluationRecord.parse(dict(wire, version="baseline"), stream="s").version == "baseline"


def test_a_json_integer_is_accepted_where_a_number_is_declared_and_a_boolean_is_not_an_integer() -> None:
    wire = result().to_json()
    assert ResultRecord.parse(dict(wire, reward=1), stream="s").reward == 1.0
    with pytest.raises(RecordError, match="field 'attempts': should be an integer, got a boolean"):
        ResultRecord.parse(dict(wire, attempts=True), stream="s")


def wire_with(make, path: list[Any], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """``make()``'s JSON with the value at ``path`` replaced (or deleted)."""
    wire = copy.deepcopy(make().to_json())
    place = wire
    for key in path[:-1]:
        place = place[key]
    if delete:
        del place[path[-1]]
    else:
        place[path[-1]] = value
    return wire


@pytest.mark.parametrize(
    "make, path",
    [
        (generation, ["goal"]),
        (generation, ["goal", "statement"]),
        (generation, ["stats", "size"]),
        (generation, ["rollout", "steps", 0, "logprob"]),
        (result, ["proved"]),
        (result, ["generation", "id"]),
        (evaluation, ["benchmark"]),
        (evaluation, ["success_rate"]),
    ],
)
def test_a_record_missing_a_field_is_refused_naming_the_stream_and_the_field(make, path: list[Any]) -> None:
    cls = type(make())
    with pytest.raises(RecordError, match=rf"stream {GEN}: {cls.RECORD_TYPE} record.*'{path[-1]}' is missing"):
        cls.parse(wire_with(make, path, delete=True), stream=GEN)


@pytest.mark.parametrize(
    "make, path, value, expected",
    [
        (generation, ["id"], 7, "a string"),
        (generation, ["generator_version"], "3", "an integer or null"),
        (generation, ["goal", "hypotheses"], "|- ph", "an array"),
        (generation, ["duplicate"], 0, "a boolean"),
        (generation, ["rollout"], [], "an object"),
        (generation, ["rollout", "steps", 1, "substitution", "ph"], 1, "a string"),
        (result, ["reward"], "1.0", "a number"),
        (result, ["generation", "heuristic"], None, "a number"),
        (evaluation, ["version"], 1.5, "an integer or a string"),
        (evaluation, ["total"], None, "an integer"),
    ],
)
def test_a_record_with_a_field_of_the_wrong_type_is_refused_naming_the_field(
    make, path: list[Any], value: Any, expected: str
) -> None:
    cls = type(make())
    with pytest.raises(RecordError, match=rf"'{path[-1]}'.*: should be {expected}, got"):
        cls.parse(wire_with(make, path, value), stream=GEN)


@pytest.mark.parametrize("make", RECORDS)
def test_unknown_fields_of_a_newer_writer_of_the_same_version_are_ignored(make) -> None:
    record = make()
    wire = dict(record.to_json(), added_later={"anything": [1, 2]})
    if isinstance(record, EvaluationRecord):  # its unknown fields are the search summary's
        assert EvaluationRecord.parse(wire, stream="s").summary["added_later"] == {"anything": [1, 2]}
    else:
        assert type(record).parse(wire, stream="s") == record
    nested = wire_with(generation, ["stats", "added_later"], 1)
    assert GenerationRecord.parse(nested, stream="s") == generation()


def test_a_field_added_after_version_1_may_be_missing_from_older_records() -> None:
    older = wire_with(generation, ["stats", "rollout_end"], delete=True)
    del older["goal"]["database"]
    record = GenerationRecord.parse(older, stream="s")
    assert record.stats.rollout_end is None and record.goal.database is False


@pytest.mark.parametrize("make", RECORDS)
def test_a_newer_version_of_a_record_type_is_refused_and_the_current_one_read(make) -> None:
    cls = type(make())
    assert cls.parse(make().to_json(), stream=GEN, version=cls.VERSION) == make()
    with pytest.raises(NewerFormatError, match=rf"stream {GEN}.*field 'record_version' is {cls.VERSION + 1}.*upgrade"):
        cls.parse(make().to_json(), stream=GEN, version=cls.VERSION + 1)
    with pytest.raises(RecordError, match="field 'record_version' should be an integer >= 1"):
        cls.parse(make().to_json(), stream=GEN, version=0)


# --- shard headers --------------------------------------------------------------------------------------------


def header(**fields: Any) -> dict[str, Any]:
    return {"seq": 0, **fields}


def test_a_shard_of_the_declared_type_decodes_and_a_bad_record_is_its_error() -> None:
    wire = [generation().to_json(), {"id": "x"}]
    decoded = decode_records(GenerationRecord, header(record_type="generation", record_version=1), wire, stream=GEN)
    assert decoded[0] == generation() and isinstance(decoded[1], RecordError)
    assert "'source' is missing" in str(decoded[1])
    assert valid_records(GenerationRecord, header(record_type="generation", record_version=1), wire, stream=GEN) == [
        generation()
    ]


def test_a_shard_header_naming_another_type_or_a_newer_version_is_refused() -> None:
    wire = [generation().to_json()]
    with pytest.raises(RecordError, match="field 'record_type' is 'result'.*'generation'"):
        decode_records(GenerationRecord, header(record_type="result", record_version=1), wire, stream=GEN)
    with pytest.raises(NewerFormatError, match="field 'record_version' is 2.*upgrade advprover"):
        decode_records(GenerationRecord, header(record_type="generation", record_version=2), wire, stream=GEN)
    with pytest.raises(RecordError, match="'record_version' is missing"):
        decode_records(GenerationRecord, header(record_type="generation"), wire, stream=GEN)


def test_a_writer_names_its_record_type_in_every_shard_header(tmp_path: Path) -> None:
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"name": "t"})
    with ShardWriter(root, GEN, max_records=1, max_age_s=60, **GenerationRecord.header_fields()) as writer:
        writer.append(generation().to_json())
    head, records = read_shard(root, GEN, 0)
    assert (head["record_type"], head["record_version"]) == ("generation", 1)
    assert decode_records(GenerationRecord, head, records, stream=GEN) == [generation()]
    with pytest.raises(RecordError, match="field 'record_type' is 'generation'"):
        decode_records(ResultRecord, head, records, stream=GEN)


def test_a_shard_written_before_headers_named_their_record_type_is_still_read(tmp_path: Path) -> None:
    """An experiment written before this change resumes: its shards' records read as version 1."""
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"name": "t"})
    with ShardWriter(root, "prover-actor-00", max_records=1, max_age_s=60) as writer:  # no record type: legacy
        writer.append(result().to_json())
    batch = StreamReader(root, ["prover-actor-00"]).poll()[0]
    assert "record_type" not in batch.header
    assert decode_records(ResultRecord, batch.header, batch.records, stream=batch.stream) == [result()]


def test_a_writer_refuses_half_a_record_kind(tmp_path: Path) -> None:
    root = ExperimentRoot.create_or_open(str(tmp_path / "exp"), {"name": "t"})
    with pytest.raises(StorageError, match="record_type must be a non-empty string and record_version"):
        ShardWriter(root, GEN, max_records=1, max_age_s=60, record_type="generation")
    ShardWriter(root, GEN, max_records=1, max_age_s=60, record_type="generation", record_version=1).close()


def test_every_stream_record_type_is_registered_once() -> None:
    from core.adversarial.records import RECORD_TYPES

    assert set(RECORD_TYPES) == {"generation", "result", "evaluation"}
    assert all(issubclass(cls, StreamRecord) and cls.VERSION == 1 for cls in RECORD_TYPES.values())


def test_each_kind_of_stream_in_the_wiring_table_names_its_record_type() -> None:
    from core.adversarial.records import record_type_of
    from core.adversarial.topology import EVALUATIONS, GENERATIONS, RESULTS

    assert record_type_of(GENERATIONS) is GenerationRecord
    assert record_type_of(RESULTS) is ResultRecord
    assert record_type_of(EVALUATIONS) is EvaluationRecord
    with pytest.raises(KeyError):
        record_type_of("checkpoints")
