"""jobs.export on a short real experiment (tiny preset, embedded database, roles run in-process): the file
it writes verifies with our kernel and with the reference ``metamath``, holds each distinct generated
theorem once with its provenance, filters as asked, skips tampered proofs, and never writes to the run."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from configs.databases import resolve_database
from configs.presets import preset
from core.metamath.prooftree import ProofTree
from core.metamath.reader import read_database
from core.metamath.verifier import verify_database
from core.storage import ExperimentRoot, read_shard, stream_bounds
from core.storage.shards import ShardEncoder, shard_path
from tests import roles

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GENERATIONS = "generator-actor-00-to-00"
RESULTS = "prover-actor-00"
# Small and quick: version 0 of both models only, a mix of generated and database theorems.
OVERRIDES = [
    "generator_trainer.bootstrap_steps=10",
    "prover_trainer.bootstrap_steps=10",
    "generator_actor.mix=6,generator;1,dataset",
    "generator_actor.shard_records=4",
    "prover_actor.shard_records=4",
    "evaluator.max_theorems=3",
    "database.path=embedded",
    "prover_actor.search.expansions=8",
]
RECORDS = 20
THEOREM_LINE = re.compile(r"^  (\S+) \$p (.*) \$=$", re.M)


def run_role(role: str, exp: str, **bounds: Any) -> str:
    return roles.run_role(role, exp, minutes=2.0, **bounds)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: both trainers' version 0, RECORDS generation records, the prover actor's results."""
    path = tmp_path_factory.mktemp("export") / "exp"
    config = preset("tiny").with_overrides(OVERRIDES)
    config = dataclasses.replace(config, database=resolve_database(config.database))
    ExperimentRoot.create_or_open(str(path), config.to_dict())
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        for role in ("prover_trainer", "generator_trainer"):
            assert run_role(role, str(path), max_steps=0) == "finished"
        assert run_role("generator_actor", str(path), max_records=RECORDS) == "finished"
        assert run_role("prover_actor", str(path), max_records=RECORDS) == "finished"
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
    return path


def records(exp: Path, stream: str) -> list[dict[str, Any]]:
    root = ExperimentRoot.open(str(exp))
    low, end = stream_bounds(root, stream)
    return [r for seq in range(low, end) for r in read_shard(root, stream, seq)[1]]


def located(exp: Path) -> list[tuple[int, dict[str, Any]]]:
    """(shard, record) of every generator-made record, in stream order."""
    root = ExperimentRoot.open(str(exp))
    low, end = stream_bounds(root, GENERATIONS)
    return [
        (seq, r) for seq in range(low, end) for r in read_shard(root, GENERATIONS, seq)[1] if r["source"] == "generator"
    ]


def generated(exp: Path) -> list[dict[str, Any]]:
    return [record for _, record in located(exp)]


def rewrite_shard(exp: Path, stream: str, seq: int, change: Any) -> None:
    """Replace shard ``seq`` of ``stream`` by a valid shard of ``change(records)`` (a copy's, never the run's)."""
    root = ExperimentRoot.open(str(exp))
    header, shard = read_shard(root, stream, seq)
    changed = change(shard)
    header = {**header, "count": len(changed)}
    root.backend.replace(shard_path(stream, seq), ShardEncoder().encode(header, [json.dumps(r) for r in changed]))


def outcomes(exp: Path) -> dict[str, bool]:
    return {r["id"]: r["proved"] for r in records(exp, RESULTS)}


def statement_of(record: dict[str, Any]) -> str:
    return " ".join(record["goal"]["statement"].split())


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.export", *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )


def exported(path: Path) -> list[tuple[str, str]]:
    """(label, statement) of every theorem the export appended (after the database's own)."""
    text = path.read_text(encoding="latin-1")
    return [(label, statement) for label, statement in THEOREM_LINE.findall(text) if label.startswith("gen")]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def test_the_export_verifies_with_our_kernel_and_holds_each_generated_theorem_once(
    experiment: Path, tmp_path: Path
) -> None:
    before = snapshot(experiment)
    out = tmp_path / "generated.mm"
    run = export(str(experiment), "--out", str(out))
    assert run.returncode == 0, run.stderr
    distinct = list(dict.fromkeys(statement_of(r) for r in generated(experiment)))
    assert distinct, "the run generated no theorem"
    assert [statement for _, statement in exported(out)] == distinct
    assert [label for label, _ in exported(out)] == [f"gen.{n}" for n in range(1, len(distinct) + 1)]
    assert f"written {len(distinct)} theorems to {out}" in run.stdout.splitlines()[-1]
    db = read_database(out)
    report = verify_database(db)
    assert report.ok and not report.incomplete, report
    embedded = read_database(ExperimentRoot.open(str(experiment)).config["database"]["path"])
    assert len(db.theorems()) == len(embedded.theorems()) + len(distinct)
    assert snapshot(experiment) == before  # the experiment was only read
    assert [p.name for p in tmp_path.iterdir()] == ["generated.mm"]  # no temporary left behind


def test_each_theorem_says_where_it_came_from(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "generated.mm"
    assert export(str(experiment), "--out", str(out)).returncode == 0
    text = out.read_text(encoding="latin-1")
    results = outcomes(experiment)
    seq, first = located(experiment)[0]
    record_id = first["id"].rsplit("/", 1)[1]
    block = text[text.index("generated by advprover (python -m jobs.export)") : text.index("gen.1 $p")]
    assert f"generator v{first['generator_version']}, stream {GENERATIONS}, shard {seq}, record {record_id}" in block
    if first["id"] in results:
        assert ("prover v0: proved" if results[first["id"]] else "prover v0: not proved") in block
        assert "reward" in block
    else:
        assert "not tried by a prover actor" in block


def test_the_reference_verifier_accepts_the_export(experiment: Path, tmp_path: Path, metamath_exe: str) -> None:
    out = tmp_path / "generated.mm"
    assert export(str(experiment), "--out", str(out)).returncode == 0
    run = subprocess.run(
        [metamath_exe, f'read "{out}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=300
    )
    assert "All proofs in the database were verified" in run.stdout, run.stdout
    assert "?Error" not in run.stdout and "?Warning" not in run.stdout


def test_proved_and_failed_filter_by_the_prover_actors_results(experiment: Path, tmp_path: Path) -> None:
    """The tiny prover proves little: in a copy, the result of one generated theorem is made a success."""
    copy = tmp_path / "copy"
    shutil.copytree(experiment, copy)
    results = outcomes(experiment)
    tried = [r for r in generated(experiment) if r["id"] in results]
    assert len(tried) >= 2, "the prover actor tried fewer than two generated theorems"
    lucky = tried[0]["id"]

    def make_lucky(shard: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "proved": True, "successes": 1} if r["id"] == lucky else r for r in shard]

    root = ExperimentRoot.open(str(copy))
    for seq in range(*stream_bounds(root, RESULTS)):
        rewrite_shard(copy, RESULTS, seq, make_lucky)
    results = outcomes(copy)
    by_outcome: dict[bool, list[str]] = {True: [], False: []}
    for record in generated(copy):
        if record["id"] in results:
            by_outcome[results[record["id"]]].append(statement_of(record))
    assert by_outcome[True] and by_outcome[False]
    for flag, proved in (("--proved", True), ("--failed", False)):
        out = tmp_path / f"{flag[2:]}.mm"
        run = export(str(copy), "--out", str(out), flag)
        assert run.returncode == 0, run.stderr
        assert [s for _, s in exported(out)] == list(dict.fromkeys(by_outcome[proved]))
        assert verify_database(read_database(out)).ok
    assert "prover v0: proved (1 of 1 attempts)" in (tmp_path / "proved.mm").read_text(encoding="latin-1")


def test_min_size_keeps_proofs_of_at_least_n_essential_steps(experiment: Path, tmp_path: Path) -> None:
    sizes = {statement_of(r): ProofTree.from_json(r["proof"]).size for r in generated(experiment)}
    # the largest size keeps some and drops the rest; one more than the largest keeps none (this run's
    # generator is seeded by its start time, so all its proofs may have the same size)
    for threshold in sorted({max(sizes.values()), max(sizes.values()) + 1}):
        out = tmp_path / f"large-{threshold}.mm"
        run = export(str(experiment), "--out", str(out), "--min-size", str(threshold))
        assert run.returncode == 0, run.stderr
        kept = [s for _, s in exported(out)]
        assert sorted(kept) == sorted(s for s, size in sizes.items() if size >= threshold)
        if len(kept) < len(sizes):
            assert f"smaller than --min-size {threshold}" in run.stdout


def tamper(exp: Path, copy: Path) -> str:
    """Copy the experiment and change the proof of its first generated theorem; returns that theorem."""
    shutil.copytree(exp, copy)
    seq, victim = located(copy)[0]

    def change_proof(shard: list[dict[str, Any]]) -> list[dict[str, Any]]:
        record = next(r for r in shard if r["id"] == victim["id"])
        top = record["proof"]
        variable = next(iter(top["substitution"]), None)
        if variable is not None:  # the last step under another substitution: it proves something else
            expression = top["substitution"][variable]
            top["substitution"][variable] = f"( {expression} -> {expression} )"
        else:
            top["label"] = "ax-mp" if top["label"] != "ax-mp" else "ax-1"
        return shard

    rewrite_shard(copy, GENERATIONS, seq, change_proof)
    return statement_of(victim)


def test_a_tampered_proof_is_skipped_and_counted(experiment: Path, tmp_path: Path) -> None:
    victim = tamper(experiment, tmp_path / "tampered")
    out = tmp_path / "out.mm"
    run = export(str(tmp_path / "tampered"), "--out", str(out))
    assert run.returncode == 0, run.stderr
    statements = [s for _, s in exported(out)]
    twins = [statement_of(r) for r in generated(experiment)]
    expected = list(dict.fromkeys(s for i, s in enumerate(twins) if i > 0 or s != victim))
    assert statements == expected
    assert "1 skipped: the proof failed the kernel check" in run.stdout
    assert verify_database(read_database(out)).ok


def test_a_theorem_generated_twice_is_written_once(experiment: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(experiment, copy)
    seq, first = located(copy)[0]
    rewrite_shard(copy, GENERATIONS, seq, lambda shard: [*shard, {**first, "id": first["id"] + "-again"}])
    out = tmp_path / "out.mm"
    run = export(str(copy), "--out", str(out))
    assert run.returncode == 0, run.stderr
    statements = [s for _, s in exported(out)]
    assert statements.count(statement_of(first)) == 1
    assert statements == list(dict.fromkeys(statement_of(r) for r in generated(experiment)))
    assert "1 duplicates" in run.stdout


def test_a_damaged_shard_is_skipped_and_left_as_it_is(experiment: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(experiment, copy)
    seq, _ = located(copy)[0]
    (copy / shard_path(GENERATIONS, seq)).write_bytes(b"damaged")
    before = snapshot(copy)
    run = export(str(copy), "--out", str(tmp_path / "out.mm"))
    assert run.returncode == 0, run.stderr
    assert "1 damaged shards skipped" in run.stdout
    assert snapshot(copy) == before  # not quarantined: the export writes nothing into the experiment
    assert verify_database(read_database(tmp_path / "out.mm")).ok


def test_no_config_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notexp").mkdir()
    run = export(str(tmp_path / "notexp"), "--out", str(tmp_path / "out.mm"))
    assert run.returncode == 2
    assert "is not a readable experiment" in run.stderr and "config.json" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.mm").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--proved", "--failed"], "--proved and --failed exclude each other"),
        (["--min-size", "-1"], "--min-size must be >= 0"),
        (["--min-size", "two"], "--min-size"),
    ],
)
def test_bad_flags_are_refused(experiment: Path, tmp_path: Path, args: list[str], message: str) -> None:
    run = export(str(experiment), "--out", str(tmp_path / "out.mm"), *args)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out.mm").exists()


def test_an_existing_out_is_kept_unless_force(experiment: Path, tmp_path: Path) -> None:
    out = tmp_path / "generated.mm"
    out.write_text("keep me")
    run = export(str(experiment), "--out", str(out))
    assert run.returncode == 2 and "exists" in run.stderr and "--force" in run.stderr
    assert out.read_text() == "keep me"
    run = export(str(experiment), "--out", str(out), "--force")
    assert run.returncode == 0, run.stderr
    assert verify_database(read_database(out)).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated.mm"]
