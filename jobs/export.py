"""Export a run's generated theorems as a Metamath file: ``python -m jobs.export EXP --out generated.mm``.

    python -m jobs.export EXPERIMENT_DIR --out generated.mm [--proved | --failed] [--min-size N] [--force]

The file is the experiment's database (from its frozen ``config.json``, cut where the run cut it, e.g.
before ``ax-gen``) followed by every distinct theorem the generator produced (from the generation records
of the ``generator-actor-*`` streams; the database theorems of a source mix are left out), each as a
``$p`` with its compressed proof in a ``${ ... $}`` block with its ``$d`` conditions and essential
hypotheses, under a fresh label (``gen.N``, hypotheses ``gen.N.1``...; another prefix if the database
uses ``gen.``) and a comment saying where it came from: generator version, stream, shard, record, the
generator's heuristic and the prover actors' outcome and reward. ``--proved`` / ``--failed`` keep the
theorems a prover actor proved / tried and failed to prove (from the ``prover-actor-*`` result records);
``--min-size N`` keeps proofs of at least N essential steps (hypothesis leaves included).

Every proof is checked again by the kernel (as written, compressed) before it is written; one that fails
(a damaged or tampered record) is skipped and counted, as are malformed records and damaged shards. The
experiment is only read (a damaged shard is not quarantined). OUT is written through a temporary created
in its folder, then renamed; an existing OUT is refused unless ``--force``. The last line printed is the
summary, ``written K theorems to OUT (...)``. Exit status 0 when written, 2 for bad input, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from configs.experiment import ExperimentConfig
from core.adversarial.records import GenerationRecord, Goal, ResultRecord, StreamRecord, decode_records
from core.errors import MetamathError, RecordError, StorageError, UsageError
from core.metamath.database import Assertion, Database
from core.metamath.excerpt import database_excerpt
from core.metamath.prooftree import ProofTree, check_tree, make_theorem, proof_tokens, theorem_text
from core.metamath.reader import read_database
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.metamath.writer import rewrite_proofs
from core.storage import ExperimentRoot, read_shard, stream_bounds
from core.storage.shards import is_tombstone
from jobs._cli import run_cli

logger = logging.getLogger("jobs.export")

GENERATION_STREAMS = "generator-actor-"
RESULT_STREAMS = "prover-actor-"
LABEL_PREFIX = "gen"
PROGRESS_EVERY = 500  # theorems checked between progress lines
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9 .,:;/_+=()%-]")


@dataclass(frozen=True)
class Outcome:
    """What the prover actors made of one generation record (its result records merged)."""

    proved: bool
    prover_versions: tuple[int, ...]
    attempts: int
    successes: int
    reward: float | None


@dataclass(frozen=True)
class Located:
    """A generation record with where it was read."""

    record: GenerationRecord
    stream: str
    seq: int


@dataclass(frozen=True)
class Exported:
    """A checked theorem, ready to write: the assertion, its compressed proof tokens and its comment."""

    theorem: Assertion
    proof: list[str]
    comment: str


@dataclass
class Tally:
    """Counts for the summary: records read, and why each one not written was left out."""

    records: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    damaged_shards: int = 0
    pruned_shards: int = 0

    def text(self) -> str:
        parts = [f"{self.records} generation records read"]
        parts += [f"{count} {reason}" for reason, count in sorted(self.left_out.items())]
        if self.damaged_shards:
            parts.append(f"{self.damaged_shards} damaged shards skipped")
        if self.pruned_shards:
            parts.append(f"{self.pruned_shards} shards pruned before this export (not read)")
        return "; ".join(parts)


def export(
    exp: str, *, out: str, proved: bool = False, failed: bool = False, min_size: int = 0, force: bool = False
) -> int:
    """Write the generated theorems of the experiment at ``exp`` to ``out`` (see the module's docstring).

    Args:
        exp: the experiment root (a folder or URL).
        out: the .mm file to write.
        proved: keep only the theorems a prover actor proved.
        failed: keep only the theorems a prover actor tried and failed to prove.
        min_size: keep only proofs of at least this many essential steps.
        force: replace an existing OUT.
    """
    if proved and failed:
        raise UsageError("--proved and --failed exclude each other: give one of them, or neither for all")
    if min_size < 0:
        raise UsageError(f"--min-size must be >= 0, got {min_size}")
    check_out(out, force)
    root = open_experiment(exp)
    config = ExperimentConfig.from_dict(root.config, where=f"{exp}/config.json")
    db = load_database(config)
    excerpt = database_excerpt(config.database.path, config.database.stop_at or None)
    tally = Tally()
    outcomes = read_outcomes(root, tally)
    chosen = choose(read_generations(root, tally), outcomes, tally, proved=proved, failed=failed, min_size=min_size)
    exported = check_all(db, chosen, outcomes, tally)
    write_file(db, excerpt, exported, out, force)
    print(f"written {len(exported)} theorems to {out} ({tally.text()})", flush=True)
    return 0


# --- input ----------------------------------------------------------------------------------------------


def check_out(out: str, force: bool) -> None:
    """Refuse an ``out`` that is a folder, that exists (without ``force``), or whose folder does not exist."""
    if not out:
        raise UsageError("--out must name the .mm file to write")
    if os.path.isdir(out):
        raise UsageError(f"--out {out!r} is a folder: give a file name, e.g. {os.path.join(out, 'generated.mm')}")
    if os.path.exists(out) and not force:
        raise UsageError(f"--out {out!r} exists: choose another file, or pass --force to replace it")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise UsageError(f"--out {out!r}: its folder {folder} does not exist")


def open_experiment(exp: str) -> ExperimentRoot:
    try:
        return ExperimentRoot.open(exp)
    except StorageError as error:
        raise UsageError(
            f"{exp} is not a readable experiment ({error}); give the folder or URL of an experiment a launch created"
        ) from None


def load_database(config: ExperimentConfig) -> Database:
    database = config.database
    if not os.path.isfile(database.path):
        raise UsageError(f"the experiment's database {database.path} (database.path in config.json) is missing")
    return read_database(database.path, stop_at=database.stop_at or None)


def read_stream(
    root: ExperimentRoot, stream: str, tally: Tally, kind: type[StreamRecord]
) -> Iterator[tuple[int, StreamRecord]]:
    """(shard, record) for every record of ``stream``, read without writing, as a ``kind`` record; damaged
    shards and malformed records are counted."""
    low, end = stream_bounds(root, stream)
    tally.pruned_shards += low
    for seq in range(low, end):
        try:
            header, records = read_shard(root, stream, seq, quarantine=False)
        except StorageError as error:  # damaged (CorruptShardError), or pruned while we read
            logger.warning("skipping shard %d of %s: %s", seq, stream, error)
            tally.damaged_shards += 1
            continue
        if is_tombstone(header):
            continue
        for record in decode_records(kind, header, records, stream=stream):
            if isinstance(record, RecordError):
                logger.warning("skipping a record: %s", record)
                tally.left_out["malformed records"] += 1
                continue
            yield seq, record


def read_outcomes(root: ExperimentRoot, tally: Tally) -> dict[str, Outcome]:
    """Generation id -> the prover actors' outcome, from every result stream."""
    merged: dict[str, list[ResultRecord]] = {}
    for stream in root.streams(RESULT_STREAMS):
        for _, result in read_stream(root, stream, tally, ResultRecord):
            if isinstance(result, ResultRecord):
                merged.setdefault(result.id, []).append(result)
    return {key: merge_results(results) for key, results in merged.items()}


def merge_results(results: list[ResultRecord]) -> Outcome:
    return Outcome(
        proved=any(r.proved for r in results),
        prover_versions=tuple(sorted({r.prover_version for r in results})),
        attempts=sum(r.attempts for r in results),
        successes=sum(r.successes for r in results),
        reward=results[-1].reward if results else None,
    )


def read_generations(root: ExperimentRoot, tally: Tally) -> Iterator[Located]:
    """Every generator-made record of the generation streams, in stream order."""
    for stream in root.streams(GENERATION_STREAMS):
        before = tally.records
        for seq, record in read_stream(root, stream, tally, GenerationRecord):
            tally.records += 1
            if not isinstance(record, GenerationRecord) or not record.generated:
                tally.left_out["database theorems of the source mix"] += 1
                continue
            yield Located(record, stream, seq)
        logger.info("read %s: %d records", stream, tally.records - before)


# --- choosing and checking -----------------------------------------------------------------------------


def choose(
    generations: Iterator[Located],
    outcomes: dict[str, Outcome],
    tally: Tally,
    *,
    proved: bool,
    failed: bool,
    min_size: int,
) -> Iterator[tuple[Located, ProofTree]]:
    """The records the filters keep, with their proof trees; malformed ones are counted."""
    for located in generations:
        try:
            tree = ProofTree.from_json(located.record.proof)
        except (MetamathError, KeyError, TypeError) as error:
            logger.warning("skipping generation record %s: %s", located.record.id, error)
            tally.left_out["malformed records"] += 1
            continue
        outcome = outcomes.get(located.record.id)
        if proved and not (outcome is not None and outcome.proved):
            tally.left_out["not proved by a prover actor (--proved)"] += 1
        elif failed and not (outcome is not None and not outcome.proved):
            tally.left_out["not failed by a prover actor (--failed)"] += 1
        elif tree.size < min_size:
            tally.left_out[f"smaller than --min-size {min_size}"] += 1
        else:
            yield located, tree


def check_all(
    db: Database, chosen: Iterator[tuple[Located, ProofTree]], outcomes: dict[str, Outcome], tally: Tally
) -> list[Exported]:
    """Each distinct theorem once, relabelled and checked by the kernel; failures are skipped and counted."""
    grammar, kernel = Grammar(db), Kernel(db)
    prefix = fresh_prefix(db)
    seen: set[tuple[Any, ...] | None] = set()
    exported: list[Exported] = []
    for located, tree in chosen:
        goal = located.record.goal
        key = goal_key(goal)
        if key in seen:
            tally.left_out["duplicates"] += 1
            continue
        label = f"{prefix}.{len(exported) + 1}"
        try:
            theorem, relabelled = relabel(db, goal, tree, label)
            check_tree(db, grammar, theorem, relabelled, kernel)
            proof = proof_tokens(db, grammar, theorem, relabelled, compressed=True)
            kernel.verify(theorem.with_proof(tuple(proof)))
        except (MetamathError, KeyError, TypeError, ValueError) as error:
            logger.warning("skipping generation record %s: its proof does not check: %s", located.record.id, error)
            tally.left_out["skipped: the proof failed the kernel check"] += 1
            continue
        seen.add(key)
        if len(exported) % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            logger.info("checked %d theorems", len(exported) + 1)
        exported.append(Exported(theorem, proof, provenance(located, tree, outcomes.get(located.record.id))))
    return exported


def goal_key(goal: Goal) -> tuple[Any, ...]:
    """What makes two generated theorems the same: statement, hypotheses (in order) and ``$d`` pairs."""
    return (
        " ".join(goal.statement.split()),
        tuple(" ".join(pair[-1].split()) for pair in goal.hypotheses),
        tuple(sorted(tuple(sorted(pair)) for pair in goal.disjoint)),
    )


def relabel(db: Database, goal: Goal, tree: ProofTree, label: str) -> tuple[Assertion, ProofTree]:
    """The goal as a theorem labelled ``label`` (hypotheses ``label.1``...) and its tree with the new labels."""
    statement = tuple(goal.statement.split())
    old_labels = [name for name, _ in goal.hypotheses]
    hypotheses = [tuple(text.split()) for _, text in goal.hypotheses]
    disjoint = [(x, y) for x, y in goal.disjoint]
    theorem = make_theorem(db, label, statement, hypotheses, disjoint)
    if any(h not in db.global_floating for h in theorem.context_floating):
        raise MetamathError("a variable is typed only inside a block of the database", label=label)
    renamed = {old: new.label for old, new in zip(old_labels, theorem.essential)}
    return theorem, rename_leaves(tree, renamed)


def rename_leaves(tree: ProofTree, renamed: dict[str, str]) -> ProofTree:
    if not tree.children:
        return ProofTree(renamed.get(tree.label, tree.label), tree.substitution, (), tree.statement)
    return ProofTree(
        tree.label, tree.substitution, tuple(rename_leaves(c, renamed) for c in tree.children), tree.statement
    )


def fresh_prefix(db: Database) -> str:
    """``gen``, or ``gen1``, ``gen2``...: the first prefix no label or math symbol of ``db`` starts with (+ ``.``)."""
    names = list(db.labels) + list(db.constants) + list(db.variables)
    candidate, number = LABEL_PREFIX, 0
    while any(name.startswith(f"{candidate}.") or name == candidate for name in names):
        number += 1
        candidate = f"{LABEL_PREFIX}{number}"
    return candidate


def provenance(located: Located, tree: ProofTree, outcome: Outcome | None) -> str:
    """The comment written before a theorem: where it came from and what the prover made of it."""
    record = located.record
    record_id = record.id.rsplit("/", 1)[-1]
    parts = [
        f"Generated by the advprover generator v{record.generator_version}, stream {located.stream}, "
        f"shard {located.seq}, record {record_id}; proof of {tree.size} essential steps",
        f"heuristic {record.heuristic:.3g}",
    ]
    if outcome is None:
        parts.append("not tried by a prover actor")
    else:
        versions = ",".join(f"v{v}" for v in outcome.prover_versions) or "v?"
        verdict = "proved" if outcome.proved else "not proved"
        parts.append(
            f"prover {versions}: {verdict} ({outcome.successes} of {outcome.attempts} attempts)"
            + (f", reward {outcome.reward:.3g}" if outcome.reward is not None else "")
        )
    return _COMMENT_UNSAFE.sub("_", "; ".join(parts)) + "."


# --- output ---------------------------------------------------------------------------------------------


def write_file(db: Database, excerpt: str, exported: list[Exported], out: str, force: bool) -> None:
    """The database excerpt, then the theorems; written to a temporary renamed to ``out``."""
    folder = os.path.dirname(os.path.abspath(out))
    name = os.path.basename(out)
    draft = exclusive_temporary(folder, name, ".draft")
    final = exclusive_temporary(folder, name, ".tmp")
    try:
        with open(draft, "w", encoding="latin-1", newline="") as handle:
            handle.write(excerpt if excerpt.endswith("\n") else excerpt + "\n")
            handle.write(f"\n$( {len(exported)} theorems generated by advprover (python -m jobs.export) $)\n\n")
            for item in exported:
                handle.write(theorem_text(db, item.theorem, ["?"], item.comment) + "\n")
        rewrite_proofs(draft, {item.theorem.label: item.proof for item in exported}, final)
        publish(final, out, force)
    finally:
        for path in (draft, final):
            if os.path.exists(path):
                os.unlink(path)


def exclusive_temporary(folder: str, name: str, suffix: str) -> str:
    """A new empty file in ``folder``, created exclusively (never an existing file), closed."""
    handle, path = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
    os.close(handle)
    return path


def publish(temporary: str, out: str, force: bool) -> None:
    """Rename ``temporary`` to ``out``; without ``force``, never over a file that appeared meanwhile."""
    if force:
        os.replace(temporary, out)
        return
    try:
        os.link(temporary, out)
    except FileExistsError:
        raise UsageError(f"--out {out!r} appeared while exporting: choose another file, or pass --force") from None
    except OSError:  # no hard links on this file system
        if os.path.exists(out):
            raise UsageError(f"--out {out!r} appeared while exporting: choose another file, or pass --force") from None
        os.replace(temporary, out)
        return
    os.unlink(temporary)


if __name__ == "__main__":
    run_cli(export)
