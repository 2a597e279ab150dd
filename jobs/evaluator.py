"""The evaluator: measures each new prover checkpoint on a fixed benchmark with a fixed budget.

    python -m jobs.evaluator --exp ROOT [--rank 0] [--minutes M] [--max-records N]

The benchmark is the database's test (or valid) split, each theorem in its own context with itself
forbidden, or the ``?`` theorems of a given ``.mm`` file. First the model-free baseline is measured once
(the bar every prover must clear), then each prover version as it appears (the newest first when it
lags behind; version 0 always, as the "before" point), with the goal critic the version holds, if any
(unless ``evaluator.search.critic`` is false). Each evaluation is one record of the stream
``evaluator-00``; the stream is also the evaluator's memory of what it has done.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from core.adversarial.records import EvaluationRecord, valid_records
from core.adversarial.topology import EVALUATION_STREAM, PROVER_CHECKPOINTS
from core.adversarial.workspace import Workspace
from core.errors import CheckpointError, ConfigError
from core.metamath.database import Assertion
from core.metrics import device_scalars
from core.models.checkpoint import load_version
from core.search.baseline import BaselinePolicy
from core.search.evaluation import evaluate
from core.search.htps import Critic
from core.search.model_policy import policy_from_model
from core.search.policy import Policy
from core.storage import CheckpointStore, ShardWriter, StreamReader
from jobs._cli import run_cli
from jobs._role import Runtime

logger = logging.getLogger("jobs.evaluator")

BASELINE = "baseline"


def benchmark(rt: Runtime) -> tuple[Workspace, list[Assertion], str]:
    """The workspace and theorems of the configured benchmark, and its name."""
    section = rt.config.evaluator
    if section.benchmark in ("test", "valid"):
        ws = rt.workspace
        theorems = ws.split(section.benchmark)
        name = f"{section.benchmark} split"
    else:
        ws = Workspace.load(section.benchmark)
        theorems = ws.db.incomplete_theorems()
        name = f"? theorems of {section.benchmark}"
        if not theorems:
            raise ConfigError(f"evaluator.benchmark {section.benchmark}: the file has no `?` theorem to prove")
    if section.max_theorems:
        theorems = theorems[: section.max_theorems]
    return ws, theorems, name


def evaluated_versions(rt: Runtime) -> set[Any]:
    """What earlier runs of the evaluator already published (versions, and ``baseline``)."""
    done: set[Any] = set()
    reader = StreamReader(rt.root, [EVALUATION_STREAM])
    while batches := reader.poll():
        for batch in batches:
            records = valid_records(EvaluationRecord, batch.header, batch.records, stream=batch.stream)
            done.update(record.version for record in records)
    return done


def main(exp: str, rank: int = 0, minutes: float | None = None, max_records: int | None = None) -> str:
    """Run the evaluator of the experiment at ``exp`` (until ``minutes`` or ``max_records`` evaluations).

    Args:
        exp: the experiment root (a folder or URL) the launcher prepared.
        rank: which of the role's jobs this is (0 for the first).
        minutes: stop after this many minutes, committing the work done (default: no time bound).
        max_records: stop after this many records (default: no bound).
    """
    rt = Runtime.start("evaluator", exp, rank, minutes)
    section = rt.config.evaluator
    device = rt.device  # an unusable device fails here, before any work
    ws, theorems, name = benchmark(rt)
    store = CheckpointStore(rt.root, PROVER_CHECKPOINTS)
    writer = ShardWriter(
        rt.root,
        EVALUATION_STREAM,
        max_records=1,
        max_age_s=0.0,
        producer={"role": "evaluator", "rank": rank},
        **EvaluationRecord.header_fields(),
    )
    done = evaluated_versions(rt)
    published = 0
    logger.info(
        "%s: benchmark %s (%d theorems), %d evaluations already published", rt.name, name, len(theorems), len(done)
    )
    rt.update(benchmark=name, theorems=len(theorems), evaluations=len(done))

    def publish(version: Any, policy: Policy, meta: dict[str, Any], critic: Critic | None = None) -> None:
        nonlocal published
        rt.update(state=f"evaluating {version}")
        start = time.perf_counter()
        summary = evaluate(ws.db, theorems, policy, section.search, forbidden=ws.forbidden, grammar=ws.grammar,
                           kernel=ws.kernel, critic=critic)  # fmt: skip
        record = EvaluationRecord.from_json(
            {
                **summary,
                "critic": critic is not None and section.search.critic,  # the search used a goal critic
                "version": version,
                "step": meta.get("step"),
                "benchmark": name,
                "time": time.time(),
                "seconds": round(time.perf_counter() - start, 3),
            },
            where=f"{rt.name}'s evaluation of {version}",
        )
        writer.append(record.to_json())
        writer.flush()
        done.add(version)
        published += 1
        logger.info(
            "%s: %s proves %d of %d (%.1f%%) of the %s",
            rt.name,
            "the baseline" if version == BASELINE else f"prover v{version}",
            summary["proved"],
            summary["total"],
            100 * summary["success_rate"],
            name,
        )
        rt.update(evaluations=len(done), last_version=version, last_success_rate=summary["success_rate"])
        rt.metrics.scalars(evaluation_scalars(version, record), int(meta.get("step") or 0))  # an older version
        # evaluated after a newer one (catching up) is left out: a series' steps only grow (core/metrics.py)
        rt.metrics.flush()

    if BASELINE not in done and rt.running():
        publish(BASELINE, BaselinePolicy(ws.db, grammar=ws.grammar, seed=rt.config.seed), {})
    while rt.running() and (max_records is None or published < max_records):
        version = next_version(store, done, section.every_versions)
        if version is None:
            rt.update(state="waiting for a new prover version")
            rt.sleep(2.0)
            continue
        try:
            loaded, info = load_version(store, version, fallback=False)  # weights only, never the trainer's
        except CheckpointError as error:  # damaged: never evaluable; newer versions go on being evaluated
            logger.warning("%s: prover v%d is skipped: %s", rt.name, version, error)
            done.add(version)
            continue
        policy = policy_from_model(loaded, device=device, precision=section.precision)
        publish(version, policy, info.meta, loaded.critic)
    writer.close()
    return rt.finish(evaluations=len(done))


def evaluation_scalars(version: Any, record: EvaluationRecord) -> dict[str, float | None]:
    """An evaluation as scalars at the prover trainer's step (the baseline's under its own tags, at step 0)."""
    prefix = "baseline" if version == BASELINE else "eval"
    values: dict[str, float | None] = {
        f"{prefix}/success_rate": record.success_rate,
        f"{prefix}/proved": record.proved,
        f"{prefix}/seconds": record.seconds,
    }
    if version != BASELINE:
        values["eval/prover_version"] = version
    return {**values, **device_scalars()}


def next_version(store: CheckpointStore, done: set[Any], every: int) -> int | None:
    """Version 0 first, then the newest unevaluated version (every ``every``-th, the latest always)."""
    versions = store.versions()
    if not versions:
        return None
    if versions[0] == 0 and 0 not in done:
        return 0
    latest = versions[-1]
    candidates = [v for v in versions if v not in done and (v % every == 0 or v == latest)]
    return max(candidates) if candidates else None


if __name__ == "__main__":
    run_cli(main)
