"""Hindsight relabelling: every intermediate statement of a generated rollout, as a theorem of its own.

A generation record holds the theorem the generator published (one node of its rollout) and the rollout
that made it. Every other statement the rollout proved (those inside the published proof and those
beside it) is a theorem too, with the proof the rollout gave it. :func:`hindsight_theorems` replays the
rollout from its hypotheses, exactly as recorded (a rollout that does not replay gives nothing), and
returns its distinct intermediate theorems: each with the hypotheses its proof uses and the ``$d``
conditions its proof needs, checked by the kernel.

Skipped (and counted): the published statement itself, one-step proofs (size 1), statements longer than
``max_statement_tokens`` (statement and hypotheses), statements of a valid or test theorem
(:attr:`Workspace.held_out_statements`) and anything the kernel rejects. At most ``max_nodes`` are kept,
the largest proofs first (ties: the rollout's order). The prover trainer turns them into examples of the
same replay item as the published theorem, so they share its routing and cost no stream of their own.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from core.adversarial.generation import GENERATED_PREFIX
from core.adversarial.records import GenerationRecord, RolloutRecord
from core.adversarial.workspace import Workspace
from core.errors import MetamathError
from core.metamath.database import Assertion
from core.metamath.environment import EnvError, ForwardEnv, Node
from core.metamath.prooftree import ProofTree, check_tree, make_theorem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HindsightTheorem:
    """An intermediate statement of a rollout as a checked theorem, with its proof tree."""

    theorem: Assertion
    tree: ProofTree


def hindsight_theorems(
    workspace: Workspace,
    record: GenerationRecord,
    *,
    max_nodes: int,
    max_statement_tokens: int,
    counters: Counter[str] | None = None,
) -> list[HindsightTheorem]:
    """The distinct intermediate theorems of ``record``'s rollout (at most ``max_nodes``; 0 gives none).

    Reasons for skipping are added to ``counters`` (``hindsight_*``). A database record, a record without
    a rollout or with ``max_nodes`` 0 gives an empty list.
    """
    counters = counters if counters is not None else Counter()
    if max_nodes <= 0 or not record.generated or record.rollout is None:
        return []
    env = replay_rollout(workspace, record.rollout, record.goal.statement)
    if env is None:
        counters["hindsight_replay_failed"] += 1
        return []
    kept: list[HindsightTheorem] = []
    for node in candidate_nodes(workspace, env, record.goal.statement.split(), max_statement_tokens, counters):
        checked = _checked(workspace, env, node, f"{record.goal.label}.n{node.index}")
        if checked is None:
            counters["hindsight_kernel_rejected"] += 1
            continue
        kept.append(checked)
        if len(kept) == max_nodes:
            break
    counters["hindsight_theorems"] += len(kept)
    return kept


def replay_rollout(workspace: Workspace, rollout: RolloutRecord, statement: str) -> ForwardEnv | None:
    """The forward graph of ``rollout`` replayed from its hypotheses; None unless every step adds the
    statement it records (a STOP adds none)."""
    hypotheses = [tuple(text.split()) for text in rollout.hypotheses]
    try:
        goal = make_theorem(
            workspace.db,
            f"{GENERATED_PREFIX}.goal",
            tuple(statement.split()),
            hypotheses,
            hypothesis_labels=[f"{GENERATED_PREFIX}.h{i + 1}" for i in range(len(hypotheses))],
        )
        env = ForwardEnv(
            workspace.db,
            goal,
            grammar=workspace.grammar,
            kernel=workspace.kernel,
            forbidden=workspace.generator_forbidden,
            collect_disjoint=True,
        )
        for recorded in rollout.steps:
            if recorded.added is None:
                continue
            outcome = env.apply(recorded.to_step().tactic)
            if isinstance(outcome, EnvError) or outcome.statement != tuple(recorded.added.split()):
                logger.debug("hindsight: rollout step %s does not replay: %s", recorded.label, outcome)
                return None
    except MetamathError as error:
        logger.debug("hindsight: rollout does not replay: %s", error)
        return None
    return env


def candidate_nodes(
    workspace: Workspace, env: ForwardEnv, published: list[str], max_statement_tokens: int, counters: Counter[str]
) -> list[Node]:
    """The rollout's new nodes worth a theorem, largest proofs first (ties: rollout order)."""
    own = {h.statement for h in env.theorem.essential}
    candidates: list[Node] = []
    for node in env.nodes:
        if node.statement in own:
            continue
        reason = _skip_reason(workspace, env, node, tuple(published), max_statement_tokens)
        if reason:
            counters[f"hindsight_{reason}"] += 1
        else:
            candidates.append(node)
    return sorted(candidates, key=lambda n: (-n.tree.size, n.index))


def _skip_reason(
    workspace: Workspace, env: ForwardEnv, node: Node, published: tuple[str, ...], max_statement_tokens: int
) -> str:
    if node.statement == published:
        return "published"
    if node.tree.size <= 1:
        return "one_step"
    if node.statement in workspace.held_out_statements:
        return "held_out"
    hypotheses = env.used_hypotheses(node)
    if len(node.statement) + sum(len(h.statement) for h in hypotheses) > max_statement_tokens:
        return "too_long"
    return ""


def _checked(workspace: Workspace, env: ForwardEnv, node: Node, label: str) -> HindsightTheorem | None:
    """``node`` as a theorem (the hypotheses and ``$d`` its proof uses), if the kernel accepts its proof."""
    used = env.used_hypotheses(node)
    try:
        theorem = make_theorem(
            workspace.db,
            label,
            node.statement,
            [h.statement for h in used],
            sorted(node.disjoint),
            hypothesis_labels=[h.label for h in used],
        )
        check_tree(workspace.db, workspace.grammar, theorem, node.tree, workspace.kernel)
    except MetamathError as error:
        logger.warning("hindsight: intermediate theorem %s rejected by the kernel: %s", label, error)
        return None
    return HindsightTheorem(theorem, node.tree)
