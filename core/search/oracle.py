"""An oracle policy that knows the proofs: for tests of the searches and as a sanity check.

:class:`OraclePolicy` holds one :class:`ProofTree` per theorem label. Asked about a goal (backward) it
proposes the step of the known proof of the query's theorem that concludes that goal; asked about a
graph (forward) it proposes the first step of the proof, in post-order, whose hypotheses are all nodes
and whose conclusion is not. Each answer also holds ``distractors`` wrong tactics (random allowed labels
with an empty substitution, drawn from a seeded generator), and the true tactic sits at position
``true_rank`` (0: first). Searches must find every known proof with it and fail cleanly on tiny budgets.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence

from core.metamath.database import Assertion, Database, Statement
from core.metamath.environment import Context, Tactic
from core.metamath.prooftree import ProofTree, tree_from_proof
from core.metamath.verifier import Kernel
from core.search.policy import BackwardQuery, ForwardQuery, Proposal

_TRUE_LOGPROB = math.log(0.9)


class OraclePolicy:
    """Proposes the true next step of known proofs, plus distractors; a :class:`~core.search.policy.Policy`."""

    def __init__(
        self, db: Database, trees: Mapping[str, ProofTree], *, distractors: int = 2, true_rank: int = 0, seed: int = 0
    ) -> None:
        self.db = db
        self.trees = dict(trees)
        self.distractors = distractors
        self.true_rank = true_rank
        self.rng = random.Random(seed)
        self._steps: dict[str, dict[Statement, ProofTree]] = {}
        self._allowed: dict[str, list[str]] = {}

    @classmethod
    def from_database(cls, db: Database, labels: Iterable[str] | None = None, **options: int) -> OraclePolicy:
        """An oracle knowing the database proofs of ``labels`` (default: every complete ``|-`` theorem)."""
        kernel = Kernel(db)
        theorems = (
            [db.assertion(label) for label in labels]
            if labels is not None
            else [a for a in db.theorems() if a.typecode == db.provable_typecode and not a.is_incomplete]
        )
        return cls(db, {t.label: tree_from_proof(db, t, kernel) for t in theorems}, **options)

    # --- the Policy interface --------------------------------------------------------------------

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        answers = []
        for query in queries:
            step = self._steps_of(query.env.theorem.label).get(query.goal)
            true = None
            if step is not None:
                assertion = self.db.assertion(step.label)
                free = set(query.env.free_variables(assertion))
                true = Tactic(step.label, {v: e for v, e in step.substitution.items() if v in free})
            answers.append(self._answer(query.env, true, k))
        return answers

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        answers = []
        for query in queries:
            tree = self.trees.get(query.env.theorem.label)
            true = None
            if tree is not None:
                nodes = query.env.by_statement
                for step in tree.nodes():
                    if not _is_assertion_step(self.db, step) or step.statement in nodes:
                        continue
                    if all(child.statement in nodes for child in step.children):
                        true = Tactic(step.label, dict(step.substitution))
                        break
            answers.append(self._answer(query.env, true, k))
        return answers

    # --- helpers ---------------------------------------------------------------------------------

    def _steps_of(self, label: str) -> dict[Statement, ProofTree]:
        steps = self._steps.get(label)
        if steps is None:
            steps = {}
            tree = self.trees.get(label)
            if tree is not None:
                for node in tree.nodes():
                    if _is_assertion_step(self.db, node):
                        steps.setdefault(node.statement, node)
            self._steps[label] = steps
        return steps

    def _answer(self, env: Context, true: Tactic | None, k: int) -> list[Proposal]:
        label = env.theorem.label
        if label not in self._allowed:
            self._allowed[label] = env.allowed_labels()
        allowed = self._allowed[label]
        wrong = self.rng.sample(allowed, min(self.distractors, len(allowed)))
        proposals = [Proposal(Tactic(w), math.log(0.1 / max(len(wrong), 1)) - i * 1e-3) for i, w in enumerate(wrong)]
        if true is not None:
            proposals.insert(min(self.true_rank, len(proposals)), Proposal(true, _TRUE_LOGPROB))
        return proposals[:k]


def _is_assertion_step(db: Database, node: ProofTree) -> bool:
    """Whether a proof-tree node applies an assertion (not a hypothesis leaf)."""
    return isinstance(db.labels.get(node.label), Assertion)
