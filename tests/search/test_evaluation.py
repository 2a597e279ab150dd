"""evaluate(): each theorem in its own context, its JSON summary."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from core.metamath.environment import EnvErrorKind, Tactic
from core.metamath.prooftree import ProofTree, check_tree
from core.search.evaluation import evaluate, found_proofs
from core.search.oracle import OraclePolicy
from core.search.policy import Proposal
from core.search.runner import SearchSettings

from .conftest import Loaded

FIELDS = {
    "total",
    "proved",
    "success_rate",
    "expansions_per_solved",
    "time_s_per_solved",
    "proof_size",
    "proof_depth",
    "invalid_proposals",
    "pruned",
    "kernel_rejections",
    "stop_reasons",
    "settings",
    "elapsed_s",
    "theorems",
}
THEOREM_FIELDS = {
    "label",
    "prover",
    "proved",
    "expansions",
    "time_s",
    "wall_s",
    "stop_reason",
    "proof_size",
    "proof_depth",
    "invalid",
    "pruned",
    "kernel_rejections",
    "nodes",
}


def test_summary_fields_and_proofs(hilbert: Loaded) -> None:
    theorems = hilbert.provable()[:20]
    oracle = OraclePolicy.from_database(hilbert.db, [t.label for t in theorems[:15]], distractors=0)  # knows 15
    summary = evaluate(hilbert.db, theorems, oracle, SearchSettings(expansions=100), include_proofs=True)
    assert set(summary) == FIELDS
    summary = json.loads(json.dumps(summary))  # JSON-able
    assert (summary["total"], summary["proved"]) == (20, 15)
    assert summary["stop_reasons"] == {"proved": 15, "exhausted": 5}
    assert summary["success_rate"] == summary["proved"] / 20
    assert set(summary["expansions_per_solved"]) == {"mean", "median", "max"}
    assert summary["proof_size"]["max"] >= summary["proof_size"]["median"] >= 1
    assert summary["kernel_rejections"] == 0
    assert summary["settings"]["expansions"] == 100
    assert [t["label"] for t in summary["theorems"]] == [t.label for t in theorems]
    for record, theorem in zip(summary["theorems"], theorems):
        assert set(record) == THEOREM_FIELDS | {"proof"}
        if record["proved"]:
            check_tree(hilbert.db, hilbert.grammar, theorem, ProofTree.from_json(record["proof"]))
        else:
            assert record["proof"] is None and record["proof_size"] is None


def test_empty_evaluation(hilbert: Loaded) -> None:
    summary = evaluate(hilbert.db, [], OraclePolicy(hilbert.db, {}), SearchSettings())
    assert (summary["total"], summary["proved"], summary["success_rate"]) == (0, 0, 0.0)
    assert summary["proof_size"] is None and summary["theorems"] == []


class Cheater:
    """Proposes the theorem itself (and, for the others, a label given at construction)."""

    def __init__(self, also: str | None = None) -> None:
        self.also = also

    def propose_backward(self, queries, k):
        return [
            [Proposal(Tactic(q.env.theorem.label), 0.0)] + ([Proposal(Tactic(self.also), 0.0)] if self.also else [])
            for q in queries
        ]


def test_each_theorem_is_forbidden_in_its_own_context(hilbert: Loaded) -> None:
    theorems = hilbert.provable()[5:10]
    summary = evaluate(hilbert.db, theorems, Cheater(), SearchSettings(expansions=5))
    assert summary["proved"] == 0
    assert summary["invalid_proposals"] == {EnvErrorKind.FORBIDDEN_LABEL.value: 5}


def test_forbidden_labels_are_refused(hilbert: Loaded) -> None:
    theorem = hilbert.theorem("syl")
    oracle = OraclePolicy.from_database(hilbert.db, ["syl"], distractors=0)
    used = {n.label for n in oracle.trees["syl"].nodes() if n.children}
    assert evaluate(hilbert.db, [theorem], oracle, SearchSettings())["proved"] == 1
    summary = evaluate(hilbert.db, [theorem], oracle, SearchSettings(), forbidden=sorted(used))
    assert summary["proved"] == 0
    assert summary["invalid_proposals"][EnvErrorKind.FORBIDDEN_LABEL.value] >= 1


def test_found_proofs_reads_back_the_proofs_of_a_summary(hilbert: Loaded) -> None:
    theorems = hilbert.provable()[:6]
    oracle = OraclePolicy.from_database(hilbert.db, [t.label for t in theorems[:4]], distractors=0)
    summary = json.loads(json.dumps(evaluate(hilbert.db, theorems, oracle, SearchSettings(), include_proofs=True)))
    found = found_proofs(summary, where="s.json")
    assert sorted(found) == sorted(t.label for t in theorems[:4])  # the proved ones, and only those
    for theorem in theorems[:4]:
        check_tree(hilbert.db, hilbert.grammar, theorem, found[theorem.label])
    entry = next(e for e in summary["theorems"] if e["proved"])
    for bad, message in (
        ([], "s.json: not a search summary"),
        ({"theorems": 3}, "s.json: not a search summary"),
        ({"theorems": [{"proved": True}]}, "s.json: a theorem entry without a label"),
        ({"theorems": [{**entry, "proof": None}]}, f"s.json: {entry['label']} is proved but its proof is missing"),
        ({"theorems": [{**entry, "proof": {"label": 3}}]}, f"s.json: the proof of {entry['label']} is malformed"),
    ):
        with pytest.raises(ConfigError, match=message):
            found_proofs(bad, where="s.json")
