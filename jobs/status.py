"""What an experiment is doing and has done, read from its root alone: ``python -m jobs.status DIR``.

    python -m jobs.status DIR [--json] [--plot PATH.png]
    python -m jobs.status DIR --tensorboard
    python -m jobs.status DIR --restore-quarantined NAME|all

For each job: alive or not (heartbeat age), model versions, counters. For each stream: records produced,
and per consumer the records consumed (below its committed cursor: prover actors commit in their shard
headers, trainers in their checkpoint metadata) and pending, with rates. Quarantined shards, disk use,
the prover's benchmark success over versions (stream ``evaluator-00``), the generator's reward and the
generated theorems' size and depth over time (one point per shard). ``checks`` says whether the counts
reconcile: every consumed generation has exactly one result, no id appears twice, every consumer's
consumed + pending equals what was produced. ``--plot`` draws the curves (matplotlib). The jobs write their
live scalars as TensorBoard event files themselves (:mod:`core.metrics`): the report names that folder, and
``--tensorboard`` prints only the command that opens it (an error when no job wrote any). The plot's path is
checked before anything is read: its folder must exist and its extension name a format matplotlib
writes without extra packages (``PLOT_FORMATS``).

It reads every shard once (the streams' headers and records) and writes nothing: a damaged shard it meets is
reported (``damaged``, and a failed check) and left in place for the jobs' readers to quarantine (docs/PROTOCOL.md,
P10), so it also works on a read-only copy of an experiment. A shard written by a newer advprover stops it with
an error asking for an upgrade. ``--restore-quarantined`` puts quarantined shards back when their quarantine
was wrong (see :func:`core.storage.restore_quarantined`; ``all`` for every one) and does nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from configs.experiment import ExperimentConfig
from core.adversarial.records import (
    EvaluationRecord,
    GenerationRecord,
    ResultRecord,
    StreamRecord,
    decode_records,
    record_type_of,
    valid_records,
)
from core.adversarial.topology import (
    EVALUATION_STREAM,
    EVALUATIONS,
    GENERATIONS,
    IN_STREAM,
    RESULTS,
    ROLES,
    Consumer,
    job_name,
    prover_actor_reads_train_split,
    wiring_of,
)
from core.adversarial.workspace import Workspace
from core.errors import AdvproverError, CorruptShardError, NewerFormatError, RecordError, StorageError, UsageError
from core.metrics import metrics_root, remote_runs, runs_in
from core.storage import (
    CheckpointStore,
    ExperimentRoot,
    StreamReader,
    group_cursor,
    list_quarantined,
    newest_commit,
    pruned_prefix,
    read_heartbeats,
    read_shard,
    restore_quarantined,
    stream_bounds,
    stream_gaps,
)
from core.storage.backend import LocalBackend
from jobs._cli import run_cli

logger = logging.getLogger("jobs.status")

STALE_AFTER_S = 30.0  # a heartbeat older than this: the job is not alive (they beat every 5 s)
CLOCK_TOLERANCE_S = 10.0  # a heartbeat's time and its file's age may differ this much before a skew is reported
MAX_POINTS = 400  # curves are binned down to this many points
BASELINE = "baseline"
PLOT_FORMATS = ("png", "pdf", "svg", "eps", "ps")  # what matplotlib's Agg backend writes with no extra package


# --- reading the root -------------------------------------------------------------------------------


class StreamScan:
    """Every shard of one stream: record counts, header times and cursors, and the records themselves (typed;
    a record that fails its type's checks is counted and described in ``malformed``)."""

    def __init__(self, root: ExperimentRoot, name: str, kind: type[StreamRecord] | None) -> None:
        self.name = name
        self.low, self.end, self.pruned = _bounds(root, name)
        self.gaps, self.gap_error = _gaps(root, name)
        self.counts: dict[int, int] = {}
        self.created: dict[int, float] = {}
        self.cursor: dict[str, int] | None = None  # the newest committed cursor (consumer streams)
        headers: list[dict[str, Any]] = []
        self.records: dict[int, list[StreamRecord]] = {}
        self.malformed: list[str] = []
        self.damaged: dict[int, str] = {}  # seq -> why the shard cannot be read (left in place)
        self.bytes = 0
        for seq in range(self.low, self.end):
            try:
                header, records = read_shard(root, name, seq, quarantine=False)
            except CorruptShardError as error:
                self.damaged[seq] = str(getattr(error, "reason", error))
                continue
            except NewerFormatError:
                raise
            except StorageError as error:  # pruned or removed meanwhile
                logger.warning("%s", error)
                continue
            self.counts[seq] = len(records)
            self.created[seq] = float(header.get("created") or 0.0)
            self.records[seq] = self._typed(kind, header, records)
            headers.append(header)
            self.bytes += root.backend.size(f"streams/{name}/{seq:012d}.zst") or 0
        committed = newest_commit(reversed(headers))  # the rule committed_cursor applies, on what was read
        self.cursor = committed.to_json() if committed is not None else None

    def _typed(self, kind: type[StreamRecord] | None, header: dict[str, Any], records: list[Any]) -> list[StreamRecord]:
        if kind is None:
            return []
        try:
            decoded = decode_records(kind, header, records, stream=self.name)
        except RecordError as error:  # the header names another record type
            self.malformed.append(str(error))
            return []
        self.malformed += [str(r) for r in decoded if isinstance(r, RecordError)]
        return [r for r in decoded if not isinstance(r, RecordError)]

    @property
    def produced(self) -> int:
        """Records published, the pruned ones included."""
        return self.pruned + sum(self.counts.values())

    def consumed_below(self, position: int) -> int:
        """Records below ``position``: the pruned prefix (if at or past it) and the shards present below it."""
        return (self.pruned if position >= self.low else 0) + sum(n for seq, n in self.counts.items() if seq < position)

    def ids_below(self, position: int) -> list[str]:
        return [_record_id(r) for seq, records in self.records.items() if seq < position for r in records]

    def all_records(self) -> Iterable[tuple[float, StreamRecord]]:
        for seq in sorted(self.records):
            for record in self.records[seq]:
                yield self.created[seq], record

    def rate(self, now: float, window_s: float = 60.0) -> dict[str, float]:
        """Records per second over the stream's life and over the last ``window_s``."""
        if not self.created:
            return {"overall": 0.0, "recent": 0.0}
        first = min(self.created.values())
        span = max(max(self.created.values()) - first, 1e-9)
        recent = sum(n for seq, n in self.counts.items() if now - self.created[seq] <= window_s)
        return {
            "overall": round(self.produced / span, 3) if self.produced > 1 else 0.0,
            "recent": round(recent / window_s, 3),
        }


def _bounds(root: ExperimentRoot, name: str) -> tuple[int, int, int]:
    """(low-water mark, end, records pruned below the mark), consistent with each other under a prune."""
    while True:
        low, pruned = pruned_prefix(root, name)
        bounded_low, end = stream_bounds(root, name)
        if bounded_low == low:
            return low, end, pruned


def _gaps(root: ExperimentRoot, name: str) -> tuple[list[int], str]:
    """The stream's gaps (shards missing below a later one), or an error text if one is too wide to list."""
    try:
        return stream_gaps(root, name), ""
    except StorageError as error:
        return [], str(error)


def merged_trainer_cursor(meta: dict[str, Any]) -> dict[str, int]:
    """What a trainer group has committed in each stream (:func:`core.storage.group_cursor`)."""
    return group_cursor(meta).to_json()


def checkpoint_summary(root: ExperimentRoot, name: str) -> dict[str, Any]:
    store = CheckpointStore(root, name)
    damaged = {str(v): reason for v, reason in store.damaged_versions().items()}
    latest = store.latest()
    if latest is None:
        return {"versions": [], "latest": None, "damaged": damaged}
    meta = latest.meta
    return {
        "versions": store.versions(),
        "latest": latest.version,
        "step": meta.get("step"),
        "time": latest.time,
        "trainer": meta.get("trainer"),
        "origin": meta.get("origin"),
        "counters": meta.get("counters"),
        "cursor": merged_trainer_cursor(meta),
        "size": latest.size,
        "damaged": damaged,
    }


def disk_use(root: ExperimentRoot) -> dict[str, int] | None:
    """Bytes per top-level folder of a local root (None for other storage)."""
    if not isinstance(root.backend, LocalBackend):
        return None
    use: dict[str, int] = {}
    base = root.backend.base
    for top in sorted(os.listdir(base)):
        total = 0
        for folder, _, files in os.walk(os.path.join(base, top)):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.path.getsize(os.path.join(folder, name))
        if os.path.isfile(os.path.join(base, top)):
            total = os.path.getsize(os.path.join(base, top))
        use[top] = total
    use["total"] = sum(use.values())
    return use


# --- the status -------------------------------------------------------------------------------------


def collect(root: ExperimentRoot, now: float | None = None) -> dict[str, Any]:
    """The experiment's status as one JSON-able dict (see the module docstring)."""
    now = time.time() if now is None else now
    config = ExperimentConfig.from_dict(root.config)
    # Consumers before what they consume: a cursor read first never points past what is scanned after it.
    checkpoints = {name: checkpoint_summary(root, name) for name in root.checkpoint_names()}
    names = root.streams()
    wiring = wiring_of(config)
    kinds = {name: wired.kind if (wired := wiring.stream(name)) is not None else None for name in names}
    order = sorted(names, key=lambda n: (kinds[n] != RESULTS, n))
    scans = {name: StreamScan(root, name, record_type_of(kind) if (kind := kinds[name]) else None) for name in order}
    flows, checks = stream_flows(config, scans, checkpoints)
    evaluations = (
        [record for _, record in scans[EVALUATION_STREAM].all_records() if isinstance(record, EvaluationRecord)]
        if EVALUATION_STREAM in scans
        else []
    )
    evaluations.sort(key=_version_order)
    return {
        "experiment": root.url,
        "time": now,
        "preset": config.preset,
        "setup": config.setup,
        "database": {"path": config.database.path, "stop_at": config.database.stop_at},
        "stop_request": root.stop_request(),
        "jobs": job_states(root, config, now),
        "checkpoints": checkpoints,
        "streams": {
            name: {
                "shards": len(s.counts),
                "low_water": s.low,
                "end": s.end,
                "records": s.produced,
                "pruned_shards": s.low,
                "pruned_records": s.pruned,
                "bytes": s.bytes,
                "records_per_s": s.rate(now),
                "gaps": s.gaps,
            }
            for name, s in scans.items()
        },
        "flows": flows,
        "checks": checks,
        "totals": totals(scans, evaluations),
        "evaluations": [
            {
                "version": e.version,
                "step": e.step,
                "success_rate": e.success_rate,
                "proved": e.proved,
                "total": e.total,
                "time": e.time,
                "seconds": e.seconds,
                "benchmark": e.benchmark,
            }
            for e in evaluations
        ],
        "curves": curves(scans),
        "proof_sizes": proof_sizes(config, scans),
        "quarantined": list_quarantined(root),
        "damaged": [
            {"stream": name, "seq": seq, "reason": reason}
            for name, scan in scans.items()
            for seq, reason in sorted(scan.damaged.items())
        ],
        "disk_bytes": disk_use(root),
        "tensorboard": tensorboard_runs(root, config),
    }


def tensorboard_runs(root: ExperimentRoot, config: ExperimentConfig) -> dict[str, Any]:
    """Where the jobs write their live TensorBoard scalars (a local folder, or the experiment's
    ``tensorboard/`` URL on a remote store; None when metrics are off), and the runs found there."""
    if not config.metrics.enabled:
        return {"logdir": None, "runs": []}
    logdir = metrics_root(root.local_folder, config.metrics.folder)
    if logdir is None:
        return {"logdir": root.metrics_url, "runs": remote_runs(root)}
    return {"logdir": logdir, "runs": runs_in(logdir)}


def heartbeat_age(beat: dict[str, Any], now: float) -> tuple[float, float | None]:
    """(age of a heartbeat in seconds, clock skew or None). By the writer's clock (``updated``) while it
    agrees with the storage's (the file's age) within :data:`CLOCK_TOLERANCE_S`; otherwise the writer's clock
    is off (a host without NTP), the file's age is used and the skew reported."""
    by_writer = now - float(beat["updated"])
    file_age = beat.get("file_age_s")  # measured when read: its age at ``now`` is later by now - time.time()
    if not isinstance(file_age, (int, float)):
        return by_writer, None
    by_storage = file_age + (now - time.time())
    if abs(by_writer - by_storage) <= CLOCK_TOLERANCE_S:
        return by_writer, None
    return max(float(by_storage), 0.0), by_writer - by_storage


def job_states(root: ExperimentRoot, config: ExperimentConfig, now: float) -> list[dict[str, Any]]:
    beats = {
        job_name(b["role"], b["rank"]): b
        for b in read_heartbeats(root)
        if b.get("role") in ROLES and isinstance(b.get("rank"), int)
    }
    expected = wiring_of(config).job_names()
    out = []
    for name in expected + sorted(set(beats) - set(expected)):
        beat = beats.get(name)
        if beat is None:
            out.append({"job": name, "alive": False, "state": "never started"})
            continue
        age, skew = heartbeat_age(beat, now)
        ended = beat.get("status") in ("finished", "interrupted")
        fields = {
            k: v for k, v in beat.items() if k not in ("role", "rank", "file_age_s") and not isinstance(v, (dict, list))
        }
        if skew is not None:
            fields["clock_skew_s"] = round(skew, 1)
        out.append(
            {
                **fields,
                "job": name,
                "alive": age < STALE_AFTER_S and not ended,
                "heartbeat_age_s": round(age, 1),
                "activity": beat.get("state"),
                "state": beat.get("status") if ended else ("stale" if age >= STALE_AFTER_S else beat.get("state")),
            }
        )
    return out


def stream_flows(
    config: ExperimentConfig, scans: dict[str, StreamScan], checkpoints: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Produced / consumed / pending per stream and consumer, and the checks that they reconcile."""
    flows: dict[str, Any] = {}
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    def consumer(stream: StreamScan, who: str, cursor: dict[str, int]) -> dict[str, Any]:
        position = int(cursor.get(stream.name, stream.low))
        consumed = stream.consumed_below(position)
        entry = {"consumer": who, "cursor": position, "consumed": consumed, "pending": stream.produced - consumed}
        check(
            f"{stream.name} -> {who}: cursor within the stream",
            stream.low <= position <= stream.end or (position < stream.low and stream.pruned == 0),
            f"cursor {position}, shards {stream.low}..{stream.end}"
            + (f" ({stream.pruned} records pruned below {stream.low})" if stream.pruned else ""),
        )
        return entry

    def committed(reader: Consumer) -> dict[str, int]:
        """The reader's committed cursor as this report read it (a consumer's stream before what it reads)."""
        if reader.cursor_in == IN_STREAM:
            scan = scans.get(reader.cursor_name)
            return scan.cursor or {} if scan is not None else {}
        return (checkpoints.get(reader.cursor_name) or {}).get("cursor") or {}

    wiring = wiring_of(config)
    for name, scan in sorted(scans.items()):
        entry: dict[str, Any] = {"produced": scan.produced, "consumers": []}
        if scan.gaps or scan.gap_error:  # (listed only when failed, as below)
            check(
                f"{name}: no gap",
                False,
                scan.gap_error
                or (
                    f"shards {', '.join(map(str, scan.gaps[:10]))} missing while later shards exist: consumers stop "
                    "there until a reader or the restarted writer replaces them by lost-shard tombstones (P23)"
                ),
            )
        if scan.malformed:  # (listed only when failed, as below)
            check(
                f"{name}: every record well-formed",
                False,
                f"{len(scan.malformed)} malformed: " + "; ".join(scan.malformed[:3]),
            )
        if scan.damaged:  # (listed only when failed: a healthy report keeps its count of checks)
            check(
                f"{name}: every shard readable",
                False,
                "; ".join(f"shard {seq}: {reason}" for seq, reason in sorted(scan.damaged.items())),
            )
        wired = wiring.stream(name)  # None: a stream the wiring table does not know, listed with no consumer
        kind = wired.kind if wired is not None else None
        if kind is not None:
            entry["kind"] = kind
        if kind == GENERATIONS:
            ids = [_record_id(r) for _, r in scan.all_records()]
            check(f"{name}: ids unique", len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} repeated")
        if wired is not None:
            entry["consumers"] = [consumer(scan, reader.name, committed(reader)) for reader in wired.consumers]
        if kind == RESULTS and prover_actor_reads_train_split(config.setup):  # no generation to match
            ids = [_record_id(r) for _, r in scan.all_records()]
            check(f"{name}: ids unique", len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} repeated")
        elif kind == RESULTS:
            results_match_generations(name, scan, scans, check)
        elif kind == EVALUATIONS:
            versions = [r.version for _, r in scan.all_records() if isinstance(r, EvaluationRecord)]
            check(
                f"{name}: each version evaluated once",
                len(versions) == len(set(map(str, versions))),
                f"{len(versions)} evaluations",
            )
        for item in entry["consumers"]:
            check(
                f"{name} -> {item['consumer']}: produced = consumed + pending",
                item["consumed"] + item["pending"] == scan.produced and item["pending"] >= 0,
                f"{scan.produced} = {item['consumed']} + {item['pending']}",
            )
        flows[name] = entry
    return flows, checks


def results_match_generations(name: str, results: StreamScan, scans: dict[str, StreamScan], check: Any) -> None:
    """Every generation below the prover actor's committed cursor has exactly one result, and nothing else.

    Pruned records are counted, not seen: as many results as generations consumed, pruned ones included; a
    generation without a result only if results were pruned, a result without its generation only if
    generations were pruned (each at most as many as were pruned).
    """
    cursor = results.cursor or {}
    consumed: list[str] = []
    consumed_count = generations_pruned = 0
    for stream, position in cursor.items():
        if stream in scans:
            consumed += scans[stream].ids_below(int(position))
            consumed_count += scans[stream].consumed_below(int(position))
            generations_pruned += scans[stream].pruned
    result_ids = [_record_id(r) for _, r in results.all_records()]
    repeated = len(result_ids) - len(set(result_ids))
    missing = set(consumed) - set(result_ids)
    foreign = set(result_ids) - set(consumed)
    ok = (
        not repeated
        and consumed_count == results.produced
        and len(missing) <= results.pruned
        and len(foreign) <= generations_pruned
    )
    check(
        f"{name}: one result per consumed generation",
        ok,
        f"{consumed_count} generations consumed, {results.produced} results, {repeated} repeated, "
        f"{len(missing)} without a result, {len(foreign)} not from a consumed generation"
        + (
            f" ({generations_pruned} generations and {results.pruned} results pruned)"
            if generations_pruned or results.pruned
            else ""
        ),
    )


def _record_id(record: StreamRecord) -> str:
    return str(getattr(record, "id", None))


def _version_order(evaluation: EvaluationRecord) -> int:
    """The baseline first, then the prover versions in order."""
    return evaluation.version if isinstance(evaluation.version, int) else -1


def totals(scans: dict[str, StreamScan], evaluations: list[EvaluationRecord]) -> dict[str, Any]:
    sources: Counter[str] = Counter()
    results = proved = proved_generated = tried_generated = 0
    for _, scan in scans.items():
        for _, record in scan.all_records():
            if isinstance(record, GenerationRecord):
                sources[record.source] += 1
            elif isinstance(record, ResultRecord):
                results += 1
                proved += record.proved
                if record.generation.generated:
                    tried_generated += 1
                    proved_generated += record.proved
    versions = [e for e in evaluations if e.version != BASELINE]
    baseline = next((e for e in evaluations if e.version == BASELINE), None)
    by_version = sorted(versions, key=_version_order)
    return {
        "generations": sum(sources.values()),
        "generations_by_source": dict(sources),
        "results": results,
        "proved": proved,
        "generated_tried": tried_generated,
        "generated_proved": proved_generated,
        "generated_success_rate": round(proved_generated / tried_generated, 4) if tried_generated else None,
        "baseline_success_rate": baseline.success_rate if baseline else None,
        "first_evaluation": _eval_point(by_version[0]) if by_version else None,
        "last_evaluation": _eval_point(by_version[-1]) if by_version else None,
    }


def size_summary(sizes: list[int]) -> dict[str, Any]:
    """Count, quartiles and histogram (size -> theorems) of essential proof sizes."""
    if not sizes:
        return {"count": 0}
    ordered = sorted(sizes)
    quartile = [ordered[min(len(ordered) - 1, (len(ordered) - 1) * k // 4)] for k in (1, 2, 3)]
    return {
        "count": len(ordered),
        "q1": quartile[0],
        "median": statistics.median(ordered),
        "q3": quartile[2],
        "histogram": {str(size): n for size, n in sorted(Counter(ordered).items())},
    }


def proof_sizes(config: ExperimentConfig, scans: dict[str, StreamScan]) -> dict[str, Any]:
    """The generated theorems' essential proof sizes beside those of the database's human proofs (train split)."""
    generated = [
        record.stats.size
        for scan in scans.values()
        for _, record in scan.all_records()
        if isinstance(record, GenerationRecord) and record.generated
    ]
    database = config.database
    try:
        workspace = Workspace.load(database.path, stop_at=database.stop_at, splits=database.splits,
                                   split_salt=database.split_salt)  # fmt: skip
        human: dict[str, Any] = size_summary(workspace.proof_sizes("train"))
    except (OSError, AdvproverError) as error:  # status still reports the rest when the database is gone
        human = {"count": 0, "unavailable": f"{database.path}: {error}"}
    return {"generated": size_summary(generated), "human": human}


def _eval_point(record: EvaluationRecord) -> dict[str, Any]:
    return {
        "version": record.version,
        "success_rate": record.success_rate,
        "proved": record.proved,
        "total": record.total,
    }


def curves(scans: dict[str, StreamScan]) -> dict[str, list[list[float]]]:
    """Per-shard points [time, value] (binned to at most MAX_POINTS): rewards, proved rate, sizes, counts."""
    reward, proved, size, depth, length, generated, resulted = [], [], [], [], [], [], []
    proved_generated: list[list[float]] = []
    for scan in scans.values():
        for seq in sorted(scan.records):
            records, when = scan.records[seq], scan.created[seq]
            if not records:
                continue
            results = [r for r in records if isinstance(r, ResultRecord)]
            generations = [r for r in records if isinstance(r, GenerationRecord)]
            if results:
                reward.append([when, _mean(r.reward for r in results)])
                proved.append([when, _mean(float(r.proved) for r in results)])
                resulted.append([when, len(results)])
                tried = [r for r in results if r.generation.generated]
                if tried:
                    proved_generated.append([when, _mean(float(r.proved) for r in tried)])
            if generations:
                stats = [r.stats for r in generations if r.generated]
                if stats:
                    size.append([when, _mean(s.size for s in stats)])
                    depth.append([when, _mean(s.depth for s in stats)])
                    length.append([when, _mean(s.statement_length for s in stats)])
                generated.append([when, len(generations)])
    return {
        "reward": _binned(reward),
        "proved_rate": _binned(proved),
        "generated_proved_rate": _binned(proved_generated),
        "theorem_size": _binned(size),
        "theorem_depth": _binned(depth),
        "statement_length": _binned(length),
        "generations_cumulative": _cumulative(generated),
        "results_cumulative": _cumulative(resulted),
    }


def _mean(values: Iterable[Any]) -> float:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]
    return round(sum(numbers) / len(numbers), 4) if numbers else 0.0


def _binned(points: list[list[float]]) -> list[list[float]]:
    points = sorted(points)
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / MAX_POINTS)
    return [
        [points[i + size // 2 if i + size // 2 < len(points) else i][0], _mean(p[1] for p in points[i : i + size])]
        for i in range(0, len(points), size)
    ]


def _cumulative(points: list[list[float]]) -> list[list[float]]:
    out, total = [], 0.0
    for when, count in sorted(points):
        total += count
        out.append([when, total])
    return out[:: max(1, math.ceil(len(out) / MAX_POINTS))] + (out[-1:] if out else [])


# --- a live follower (the launcher's progress) -------------------------------------------------------


class Follower:
    """Reads new shards of an experiment's streams as they appear: cheap running totals for live progress."""

    def __init__(self, root: ExperimentRoot, config: ExperimentConfig) -> None:
        self.reader = StreamReader(root, wiring_of(config).stream_names())
        self.generations = self.results = self.proved = 0
        self.evaluations: list[EvaluationRecord] = []

    def update(self) -> None:
        while batches := self.reader.poll(max_shards=256):
            for batch in batches:
                if batch.stream.startswith("generator-actor-"):
                    self.generations += len(batch.records)
                elif batch.stream.startswith("prover-actor-"):
                    self.results += len(batch.records)
                    results = valid_records(ResultRecord, batch.header, batch.records, stream=batch.stream)
                    self.proved += sum(r.proved for r in results)
                else:
                    self.evaluations += valid_records(
                        EvaluationRecord, batch.header, batch.records, stream=batch.stream
                    )

    def evaluated(self, version: Any) -> bool:
        return any(e.version == version for e in self.evaluations)


# --- output -----------------------------------------------------------------------------------------


def render(status: dict[str, Any]) -> str:
    """A human-readable report of :func:`collect`'s result."""
    lines = [
        f"experiment {status['experiment']}  (preset {status['preset']}, setup {status['setup']}, "
        f"database {os.path.basename(status['database']['path'])}"
        f"{' up to ' + status['database']['stop_at'] if status['database']['stop_at'] else ''})"
    ]
    if status["stop_request"]:
        request = status["stop_request"]
        lines.append(f"stop requested: {request.get('reason')} (jobs: {request.get('jobs') or 'all'})")
    lines.append("jobs:")
    for job in status["jobs"]:
        versions = " ".join(
            f"{k.split('_')[0]} v{job[k]}"
            for k in ("generator_version", "prover_version", "version")
            if job.get(k) is not None
        )
        counters = " ".join(
            f"{k}={job[k]}"
            for k in ("records_out", "records_in", "step", "proved", "attempted", "evaluations", "last_success_rate")
            if job.get(k) is not None
        )
        age = f"{job['heartbeat_age_s']:.0f}s ago" if "heartbeat_age_s" in job else ""
        lines.append(
            f"  {job['job']:<22} {'ALIVE' if job['alive'] else 'down ':<5} {job.get('state')!s:<28} "
            f"{age:>8}  {versions}  {counters}"
        )
    lines.append(
        "checkpoints: "
        + ", ".join(
            f"{name} v{c['latest']} (step {c.get('step')}, {len(c['versions'])} kept)"
            for name, c in status["checkpoints"].items()
            if c["latest"] is not None
        )
    )
    for name, checkpoint in status["checkpoints"].items():
        for version, reason in (checkpoint.get("damaged") or {}).items():
            lines.append(f"  DAMAGED checkpoint {name} v{version}: {reason} (jobs use the newest intact version)")
    lines.append("streams (produced / consumed / pending):")
    for name, flow in status["flows"].items():
        rate = status["streams"][name]["records_per_s"]
        consumers = "; ".join(f"{c['consumer']} {c['consumed']} / {c['pending']}" for c in flow["consumers"])
        stream = status["streams"][name]
        pruned = (
            f"  (pruned below shard {stream['low_water']}: {stream['pruned_records']} records)"
            if stream.get("low_water")
            else ""
        )
        lines.append(f"  {name:<28} {flow['produced']:>7} records  {rate['overall']:.2f}/s  {consumers}{pruned}")
    t = status["totals"]
    lines.append(
        f"generated {t['generations']} ({', '.join(f'{v} {k}' for k, v in t['generations_by_source'].items())}); "
        f"results {t['results']}, proved {t['proved']}"
        + (
            f"; generated theorems proved {100 * t['generated_success_rate']:.1f}%"
            if t["generated_success_rate"] is not None
            else ""
        )
    )
    lines.extend(proof_size_lines(status))
    if status["evaluations"]:
        lines.append(
            "benchmark: "
            + ", ".join(
                f"{'baseline' if e['version'] == BASELINE else 'v' + str(e['version'])} "
                f"{100 * float(e['success_rate'] or 0):.1f}%"
                for e in status["evaluations"]
            )
        )
    bad = [c for c in status["checks"] if not c["ok"]]
    lines.append(
        f"checks: {len(status['checks']) - len(bad)} of {len(status['checks'])} reconcile"
        + "".join(f"\n  FAILED {c['check']}: {c['detail']}" for c in bad)
    )
    if status["quarantined"]:
        lines.append(
            f"quarantined shards: {len(status['quarantined'])}"
            + "".join(f"\n  {q.get('kept')}: {q.get('reason')}" for q in status["quarantined"])
        )
    if status["damaged"]:
        lines.append(
            f"damaged shards (left in place; the jobs' readers quarantine them): {len(status['damaged'])}"
            + "".join(f"\n  {d['stream']} shard {d['seq']}: {d['reason']}" for d in status["damaged"])
        )
    if status["disk_bytes"]:
        lines.append(f"disk: {status['disk_bytes']['total'] / 1e6:.1f} MB")
    lines.append(tensorboard_line(status["tensorboard"]))
    return "\n".join(lines)


def proof_size_lines(status: dict[str, Any]) -> list[str]:
    """The proof-size comparison and the generated theorems' proved fraction over time (five periods)."""
    sizes = status["proof_sizes"]

    def described(summary: dict[str, Any]) -> str:
        if not summary["count"]:
            return summary.get("unavailable", "none yet")
        return f"median {summary['median']:g} (quartiles {summary['q1']}-{summary['q3']}, {summary['count']} theorems)"

    lines = [f"proof sizes (essential steps): generated {described(sizes['generated'])}; "
             f"human proofs (train split) {described(sizes['human'])}"]  # fmt: skip
    points = status["curves"].get("generated_proved_rate") or []
    if points:
        start, end = points[0][0], points[-1][0]
        width = max((end - start) / 5, 1e-9)
        periods: dict[int, list[float]] = {}
        for when, rate in points:
            periods.setdefault(min(4, int((when - start) / width)), []).append(rate)
        lines.append("generated theorems proved over time: " + ", ".join(
            f"{100 * sum(r) / len(r):.0f}%" for _, r in sorted(periods.items())))  # fmt: skip
    return lines


def tensorboard_line(board: dict[str, Any]) -> str:
    if board["logdir"] is None:
        return "live metrics: none (metrics.enabled is false)"
    if not board["runs"]:
        return f"live metrics: no job has written to {board['logdir']} yet"
    return f"live metrics ({len(board['runs'])} jobs): tensorboard --logdir {board['logdir']}"


def plot(status: dict[str, Any], path: str) -> None:
    """A PNG of the curves a researcher looks at first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    start = status["time"]
    for series in status["curves"].values():
        if series:
            start = min(start, series[0][0])

    def minutes(points: list[list[float]]) -> tuple[list[float], list[float]]:
        return [(p[0] - start) / 60 for p in points], [p[1] for p in points]

    ax = axes[0][0]
    evals = [e for e in status["evaluations"] if e["version"] != BASELINE]
    evals.sort(key=lambda e: int(e["version"]))
    ax.plot([e["version"] for e in evals], [100 * float(e["success_rate"] or 0) for e in evals], "o-", label="prover")
    baseline = status["totals"]["baseline_success_rate"]
    if baseline is not None:
        ax.axhline(100 * baseline, color="gray", linestyle="--", label="model-free baseline")
    ax.set(title="benchmark success over prover versions", xlabel="prover version", ylabel="% proved")
    ax.legend()
    ax = axes[0][1]
    ax.plot(*minutes(status["curves"]["reward"]), label="mean generator reward")
    ax.plot(*minutes(status["curves"]["proved_rate"]), label="prover success on generated")
    ax.set(title="reward and success on generated theorems", xlabel="minutes")
    ax.legend()
    ax = axes[1][0]
    ax.plot(*minutes(status["curves"]["generations_cumulative"]), label="generations")
    ax.plot(*minutes(status["curves"]["results_cumulative"]), label="results")
    ax.set(title="records over time", xlabel="minutes", ylabel="records")
    ax.legend()
    ax = axes[1][1]
    ax.plot(*minutes(status["curves"]["theorem_size"]), label="proof size")
    ax.plot(*minutes(status["curves"]["theorem_depth"]), label="proof depth")
    ax.plot(*minutes(status["curves"]["statement_length"]), label="statement length")
    ax.set(title="generated theorems", xlabel="minutes")
    ax.legend()
    figure.suptitle(f"{status['experiment']} ({status['preset']}, {status['setup']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(exp: str, json_output: bool = False, plot_path: str = "", tensorboard: bool = False, restore: str = "") -> int:
    """Show the status of the experiment at EXP (see the module docstring), or restore quarantined shards."""
    if plot_path:
        check_plot_path(plot_path)
    root = ExperimentRoot.open(exp)
    if tensorboard:
        print_tensorboard_command(root)
        return 0
    if restore:
        restored = restore_quarantined(root, None if restore == "all" else restore)
        print("\n".join(f"restored {location}" for location in restored))
        return 0
    status = collect(root)
    if json_output:
        json.dump(status, sys.stdout, indent=1, default=str)
        print()
    else:
        print(render(status))
    if plot_path:
        plot(status, plot_path)
        print(f"plot written to {plot_path}", file=sys.stderr)
    return 0 if all(c["ok"] for c in status["checks"]) else 1


def print_tensorboard_command(root: ExperimentRoot) -> None:
    """Print the command opening the jobs' live TensorBoard runs; :class:`UsageError` when there are none."""
    board = tensorboard_runs(root, ExperimentConfig.from_dict(root.config))
    if not board["runs"]:
        raise UsageError(f"{root.url}: no TensorBoard runs to show: {tensorboard_line(board).split(': ', 1)[1]}")
    print(f"tensorboard --logdir {board['logdir']}")


def check_plot_path(path: str) -> None:
    """:class:`UsageError` unless ``path``'s folder exists and its extension is one of :data:`PLOT_FORMATS`."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--plot {path}: the folder {folder} does not exist (create it, or write the plot elsewhere)")
    if os.path.isdir(path):
        raise UsageError(f"--plot {path} is a folder; give a file name such as {os.path.join(path, 'status.png')}")
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in PLOT_FORMATS:
        raise UsageError(
            f"--plot {path}: unknown image format {extension or '(no extension)'!r}; end the name "
            f"with one of {', '.join('.' + f for f in PLOT_FORMATS)}"
        )


def cli(
    exp: str, *, json: bool = False, plot: str = "", tensorboard: bool = False, restore_quarantined: str = ""
) -> int:
    """Show the status of the experiment at EXP (its jobs, streams, checkpoints and metrics).

    Args:
        exp: the experiment root (a folder or URL).
        json: print machine-readable JSON instead of the table.
        plot: also draw the metrics into this PNG file.
        tensorboard: print the command that opens the jobs' live TensorBoard scalars.
        restore_quarantined: put the quarantined shard NAME (or all) back in its stream.
    """
    return main(exp, json_output=json, plot_path=plot, tensorboard=tensorboard, restore=restore_quarantined)


if __name__ == "__main__":
    run_cli(cli)
