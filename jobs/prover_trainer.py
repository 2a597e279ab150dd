"""The prover trainer: learns from the proofs of the generated theorems the prover failed on (and its own).

    python -m jobs.prover_trainer --exp ROOT [--rank R] [--minutes M] [--max-steps N]

It reads the result streams of the prover actors (in a group of several trainers, every rank reads them
all and keeps the records it owns), keeps the records routed to it (by default the theorems the prover
failed), re-checks each generated proof with the kernel, and turns it into prover examples (backward
and/or forward format), with those of the rollout's other intermediate theorems (hindsight relabelling,
``hindsight_max_nodes``, :mod:`core.adversarial.hindsight`) in the same replay item. Batches mix them with
the database's train-split examples (``supervised_weight``).
In setup ``prover-only`` (and with ``prover_trainer.learn_from_own_proofs``) it learns from the proofs the
prover actors found too (expert iteration): re-checked by the kernel like any proof, and deduplicated (one
example set per distinct theorem and proof in the replay buffer's life), and from the goals its failed
searches proved on the way (``solved_subgoals``, :func:`subgoal_examples`): each a theorem with the
hypotheses its proof uses, re-checked by the kernel, never a held-out statement, deduplicated the same way,
its examples in the record's replay item. See :mod:`jobs._trainer`.

With ``prover_trainer.critic`` (on by default) it also trains a goal critic (:mod:`core.models.critic`) from
the search outcomes every result record it reads carries (``critic_examples``: goals proved 1, failed 0,
HTPS's soft targets; whatever the record's routing, since the critic must see proved goals as well as
failed ones; never a held-out statement, :func:`critic_targets`): one critic step of ``batch_size`` targets
(one from each of as many records drawn from the critic's replay buffer) after each optimiser step. The
critic is published inside each prover version once it has taken a step, and the prover actors, the
evaluator and ``jobs.prove`` load it with the policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from typing import Any

from configs.experiment import ExperimentConfig, ProverTrainerConfig
from core.adversarial.hindsight import hindsight_theorems
from core.adversarial.records import ResultRecord
from core.adversarial.topology import BOTH_PROOFS, GIVEN_PROOFS, prover_learns_from, wiring_of
from core.errors import MetamathError
from core.metamath.database import Assertion, Database, Statement
from core.metamath.prooftree import ProofTree, check_tree, make_theorem
from core.models.examples import tree_examples
from core.models.training import Example, train_loop
from core.storage import StreamReader
from jobs import _trainer
from jobs._cli import run_cli
from jobs._role import Runtime
from jobs._trainer import TrainerJob
from jobs._version_zero import prover_formats

logger = logging.getLogger("jobs.prover_trainer")


def derive(job: TrainerJob, record: ResultRecord) -> tuple[list[Example], float] | None:
    """The prover examples of a record routed to this trainer, its proof re-checked by the kernel; None to skip."""
    if not record.for_prover_trainer:
        return None
    rt, ws = job.rt, job.rt.workspace
    try:
        theorem = record.generation.goal.theorem(ws)
        if theorem.label in ws.held_out_labels:
            rt.add("held_out_skipped")
            return None
        trees = []
        for proof, own in proofs_to_learn(rt.config, record):
            tree = ProofTree.from_json(proof)
            check_tree(ws.db, ws.grammar, theorem, tree, ws.kernel)
            trees.append((tree, own))
    except MetamathError as error:
        rt.add("rejected_records")
        logger.warning("%s: skipping record %s: %s", rt.name, record.id, error)
        return None
    examples: list[Example] = []
    for tree in [tree for tree, own in trees if not own or first_time(job, theorem, tree)]:
        for fmt in job.formats:
            examples += tree_examples(  # no step that proves a valid or test statement is learned
                job.codec,  # type: ignore[arg-type]  # set by resume
                ws.db,
                theorem,
                tree,
                fmt,
                exclude=ws.held_out_statements,
            )
    examples += hindsight_examples(job, record, examples)
    return examples + subgoal_examples(job, record, theorem), record.reward


def subgoal_examples(job: TrainerJob, record: ResultRecord, root: Assertion) -> list[Example]:
    """The examples of the goals a failed search proved on the way (``record.solved_subgoals``), when the
    trainer learns from the prover's own proofs: each a theorem with the hypotheses of ``root`` its proof
    uses, re-checked by the kernel (else skipped, counted ``subgoals_rejected``), never a held-out statement
    (``subgoals_held_out``), each theorem and proof once (:func:`first_time`)."""
    rt, ws = job.rt, job.rt.workspace
    if prover_learns_from(rt.config.setup, rt.config.prover_trainer.learn_from_own_proofs) == GIVEN_PROOFS:
        return []
    examples: list[Example] = []
    for index, subgoal in enumerate(record.solved_subgoals):
        statement = tuple(subgoal.statement.split())
        if statement in ws.held_out_statements:
            rt.add("subgoals_held_out")
            continue
        try:
            tree = ProofTree.from_json(subgoal.proof)
            theorem = subgoal_theorem(ws.db, root, statement, tree, f"{root.label}.s{index + 1}")
            check_tree(ws.db, ws.grammar, theorem, tree, ws.kernel)
        except MetamathError as error:
            rt.add("subgoals_rejected")
            logger.warning("%s: record %s: solved subgoal %d rejected: %s", rt.name, record.id, index + 1, error)
            continue
        if not first_time(job, theorem, tree):
            continue
        rt.add("subgoal_theorems")
        for fmt in job.formats:
            examples += tree_examples(job.codec, ws.db, theorem, tree, fmt, exclude=ws.held_out_statements)  # type: ignore[arg-type]  # set by resume
    return examples


def subgoal_theorem(db: Database, root: Assertion, statement: Statement, tree: ProofTree, label: str) -> Assertion:
    """``statement`` as a theorem with the essential hypotheses of ``root`` that ``tree`` cites and ``root``'s
    ``$d`` conditions on its variables, in ``root``'s context when ``root`` is the database's own."""
    cited = {node.label for node in tree.nodes() if not node.children}
    used = [h for h in root.essential if h.label in cited]
    own = db.labels.get(root.label) is root
    return make_theorem(
        db,
        label,
        statement,
        [h.statement for h in used],
        sorted(root.disjoint),
        hypothesis_labels=[h.label for h in used],
        before=root if own else None,
    )


def hindsight_examples(job: TrainerJob, record: ResultRecord, seen: list[Example]) -> list[Example]:
    """The examples of the rollout's intermediate theorems (:mod:`core.adversarial.hindsight`) not in ``seen``;
    steps proving a held-out statement give none."""
    ws, counters = job.rt.workspace, Counter[str]()
    relabelled = hindsight_theorems(
        ws,
        record.generation,
        max_nodes=job.section.hindsight_max_nodes if isinstance(job.section, ProverTrainerConfig) else 0,
        max_statement_tokens=job.spec.max_source_tokens // 2,
        counters=counters,
    )
    for name, count in counters.items():
        job.rt.add(name, count)
    known = {(tuple(source), tuple(target)) for source, target in seen}
    examples: list[Example] = []
    for item, fmt in ((item, fmt) for item in relabelled for fmt in job.formats):
        found = tree_examples(job.codec, ws.db, item.theorem, item.tree, fmt, exclude=ws.held_out_statements)  # type: ignore[arg-type]  # set by resume
        for source, target in found:
            if (tuple(source), tuple(target)) not in known:
                known.add((tuple(source), tuple(target)))
                examples.append((source, target))
    return examples


def proofs_to_learn(config: ExperimentConfig, record: ResultRecord) -> list[tuple[dict[str, Any], bool]]:
    """The proofs a routed record teaches, each with whether it is the prover's own
    (:func:`core.adversarial.topology.prover_learns_from`): the one that came with the goal (routed by
    today's rule), and the prover's own proof of a proved goal when it learns from those (prover-only: only
    those; the given proof is then the database's)."""
    learns = prover_learns_from(config.setup, config.prover_trainer.learn_from_own_proofs)
    given = learns == GIVEN_PROOFS or (  # given only: the routing flag alone decides, as it always did
        learns == BOTH_PROOFS and (not record.proved or not config.routing.prover_send_only_failed)
    )
    proofs = []
    if given:
        proofs.append((record.generation.proof, False))
    if learns != GIVEN_PROOFS and record.proved and record.proof is not None:
        proofs.append((record.proof, True))
    return proofs


def first_time(job: TrainerJob, theorem: Assertion, tree: ProofTree) -> bool:
    """True the first time this theorem (statement, hypotheses, ``$d``) and proof reach the job's buffer."""
    key = json.dumps(
        [theorem.statement, [h.statement for h in theorem.essential], sorted(theorem.disjoint), tree.to_json()],
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()
    if digest in job.seen:
        job.rt.add("duplicate_proofs_skipped")
        return False
    job.seen.add(digest)
    return True


def critic_targets(job: TrainerJob, record: ResultRecord) -> list[tuple[tuple[str, ...], float]]:
    """The (goal, target) pairs of a record's ``critic_examples``, never a held-out statement, nor any of a
    held-out theorem's search (counted ``critic_held_out``)."""
    ws = job.rt.workspace
    if record.generation.goal.database and record.generation.goal.label in ws.held_out_labels:
        job.rt.add("critic_held_out", len(record.critic_examples))
        return []
    targets = []
    for example in record.critic_examples:
        statement = tuple(example.statement.split())
        if statement in ws.held_out_statements:
            job.rt.add("critic_held_out")
            continue
        targets.append((statement, example.target))
    return targets


def critic_train(job: TrainerJob) -> None:
    """One critic step (when the job trains one and its buffer holds targets), its loss in the metrics."""
    if job.critic is None or job.critic_buffer is None or not len(job.critic_buffer):
        return
    items = job.critic_buffer.sample(job.section.batch_size)
    chosen = [job.rng.choice(item["critic"]) for item in items]
    loss = job.critic.step([goal for goal, _ in chosen], [target for _, target in chosen])
    step = _trainer.training(job).steps
    if step % job.rt.config.metrics.every_steps == 0:
        job.rt.metrics.scalars(
            {"critic/loss": loss, "critic/steps": job.critic.steps, "critic/replay_size": len(job.critic_buffer)}, step
        )


def after_step(job: TrainerJob, result: dict[str, float]) -> None:
    """After each optimiser step: a critic step, then what every trainer records."""
    critic_train(job)
    _trainer.record_step(job, result)


RULES = _trainer.Rules(derive=derive, weigh=_trainer.one_example_each, critic=critic_targets)


def main(exp: str, rank: int = 0, minutes: float | None = None, max_steps: int | None = None) -> str:
    """Run prover trainer ``rank`` of the experiment at ``exp`` (until ``minutes`` or ``max_steps``).

    Args:
        exp: the experiment root (a folder or URL) the launcher prepared.
        rank: which of the role's jobs this is (0 for the first).
        minutes: stop after this many minutes, committing the work done (default: no time bound).
        max_steps: stop after this many optimiser steps (default: no bound).
    """
    rt = Runtime.start("prover_trainer", exp, rank, minutes)
    config = rt.config
    section = config.prover_trainer
    streams = wiring_of(config).read_by("prover_trainer", rank)
    formats = prover_formats(section.examples, config.prover_actor.search.prover)
    steps = max_steps if max_steps is not None else (section.max_steps or None)

    job = _trainer.new_job(rt, "prover", section, config.prover_model, formats)
    if section.critic:
        _trainer.enable_critic(job, section.critic_lr)
    cursor = _trainer.start(job, RULES)  # version 0 if none, resume, refill the replay buffer
    reader = StreamReader(rt.root, streams, cursor) if streams else None
    batches = _trainer.stream_batches(job, RULES, reader, steps)
    train_loop(_trainer.training(job), batches, after_step=lambda result: after_step(job, result))
    return _trainer.finish(job, reader)


if __name__ == "__main__":
    run_cli(main)
