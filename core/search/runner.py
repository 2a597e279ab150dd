"""Run many proof searches at once, with their policy calls batched.

A search (:class:`Search`) is a resumable state machine: :meth:`Search.pending` returns the queries it
needs answered next (usually one), :meth:`Search.feed` takes the policy's proposals for them, and
:attr:`Search.done` says when it has finished; :meth:`Search.result` is then its :class:`SearchResult`.
:func:`run_searches` drives up to ``batch`` searches together: each round it gathers the pending queries
of every active search and makes ONE policy call per query kind (backward; forward at a given
temperature), then hands each search its answers. A model call on 32 goals costs little more than on 1,
so this is where the CPU (or GPU) time of proof search is saved.

Budgets are per search: ``expansions`` (policy queries answered) and ``timeout_s``. Time is *charged*,
not wall clock: a search pays for its own environment work plus its share of each batched policy call
(the call's time divided by the number of queries in it). Results therefore do not depend on how many
other searches share the batch. ``SearchResult.wall_s`` records the plain wall-clock duration too.
"""

from __future__ import annotations

import abc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from core.errors import ConfigError, MetamathError, ModelError
from core.metamath.database import Assertion, Database, Statement
from core.metamath.prooftree import ProofTree, check_tree
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.search.policy import BackwardQuery, ForwardQuery, Policy, Proposal
from core.search.settings import SearchSettings

logger = logging.getLogger(__name__)

Query = BackwardQuery | ForwardQuery


# --- Results --------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """The outcome of one search. ``proof`` is set only when ``proved`` (and was checked by the kernel).

    ``stop_reason``: ``proved``, ``expansions`` / ``timeout`` (budget spent), ``exhausted`` (nothing
    left to try), ``max_depth`` (a greedy rollout reached its length limit), ``kernel_rejected`` (a found
    proof failed the kernel check: a bug, logged loudly, never counted as proved).
    ``invalid`` counts proposals the environment refused, by :class:`EnvErrorKind` value; ``pruned``
    counts valid proposals the search dropped (``cycle``, ``duplicate tactic``, ``failed subgoal``).
    ``solved_subgoals``: goals a failed backward search proved on the way (statement, proof tree using the
    theorem's hypotheses), when it was asked for them (:class:`core.search.hypergraph.HypergraphSearch`);
    not yet checked by the kernel as theorems of their own.
    ``critic_examples``: (goal, target in [0, 1], visits) training targets of a goal critic, when the search
    was asked for them (:meth:`core.search.hypergraph.HypergraphSearch.critic_targets`).
    """

    label: str
    prover: str
    proved: bool = False
    proof: ProofTree | None = None
    expansions: int = 0
    time_s: float = 0.0
    wall_s: float = 0.0
    stop_reason: str = ""
    invalid: dict[str, int] = field(default_factory=dict)
    pruned: dict[str, int] = field(default_factory=dict)
    kernel_rejections: int = 0
    nodes: int = 0
    solved_subgoals: list[tuple[Statement, ProofTree]] = field(default_factory=list)
    critic_examples: list[tuple[Statement, float, int]] = field(default_factory=list)

    @property
    def proof_size(self) -> int | None:
        return self.proof.size if self.proof is not None else None

    @property
    def proof_depth(self) -> int | None:
        return self.proof.depth if self.proof is not None else None

    def to_json(self, *, include_proof: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "prover": self.prover,
            "proved": self.proved,
            "expansions": self.expansions,
            "time_s": round(self.time_s, 6),
            "wall_s": round(self.wall_s, 6),
            "stop_reason": self.stop_reason,
            "proof_size": self.proof_size,
            "proof_depth": self.proof_depth,
            "invalid": dict(self.invalid),
            "pruned": dict(self.pruned),
            "kernel_rejections": self.kernel_rejections,
            "nodes": self.nodes,
        }
        if include_proof:
            out["proof"] = self.proof.to_json() if self.proof is not None else None
            if self.solved_subgoals:
                out["solved_subgoals"] = [
                    {"statement": " ".join(statement), "proof": tree.to_json()}
                    for statement, tree in self.solved_subgoals
                ]
        return out

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> SearchResult:
        """Rebuild from :meth:`to_json` (the proof tree must be re-checked before it is trusted)."""
        try:
            proof = data.get("proof")
            return SearchResult(
                label=str(data["label"]),
                prover=str(data["prover"]),
                proved=bool(data["proved"]),
                proof=ProofTree.from_json(proof) if proof else None,
                expansions=int(data["expansions"]),
                time_s=float(data["time_s"]),
                wall_s=float(data["wall_s"]),
                stop_reason=str(data["stop_reason"]),
                invalid={str(k): int(v) for k, v in dict(data["invalid"]).items()},
                pruned={str(k): int(v) for k, v in dict(data["pruned"]).items()},
                kernel_rejections=int(data["kernel_rejections"]),
                nodes=int(data["nodes"]),
                solved_subgoals=[
                    (tuple(str(item["statement"]).split()), ProofTree.from_json(item["proof"]))
                    for item in data.get("solved_subgoals", [])
                ],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise MetamathError(f"malformed search result record: {error!r}") from None


# --- Searches -------------------------------------------------------------------------------------


class Search(abc.ABC):
    """A resumable proof search of one theorem: ``pending`` -> policy -> ``feed``, until ``done``.

    Subclasses implement :meth:`_queries` (the next queries; ``[]`` when nothing is left to try) and
    :meth:`_absorb` (use the proposals), and call :meth:`_accept` with a candidate proof tree: it is
    checked by the kernel before the search counts as proved.
    """

    kind: ClassVar[str]  # "backward" or "forward": which policy method answers the queries
    prover: ClassVar[str]

    def __init__(
        self, db: Database, theorem: Assertion, settings: SearchSettings, *, grammar: Grammar, kernel: Kernel
    ) -> None:
        self.db = db
        self.theorem = theorem
        self.settings = settings
        self.grammar = grammar
        self.kernel = kernel
        self.done = False
        self.stop_reason = ""
        self.expansions = 0
        self.time_s = 0.0
        self.invalid: Counter[str] = Counter()
        self.pruned: Counter[str] = Counter()
        self.kernel_rejections = 0
        self.proof: ProofTree | None = None
        self._started: float | None = None
        self._ended: float | None = None
        self._asked = 0

    @property
    def label(self) -> str:
        return self.theorem.label

    @property
    def k(self) -> int:
        return self.settings.candidates

    @property
    def temperature(self) -> float | None:
        """The sampling temperature of this search's queries (``None``: the k best)."""
        return None

    # --- the protocol ----------------------------------------------------------------------------

    def pending(self) -> list[Query]:
        """The queries to answer next; ``[]`` exactly when the search is done."""
        if self.done:
            return []
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        if self.expansions >= self.settings.expansions:
            self._stop("expansions")
            return []
        if self.time_s >= self.settings.timeout_s:
            self._stop("timeout")
            return []
        queries = self._queries()[: self.settings.expansions - self.expansions]
        self.time_s += time.perf_counter() - now
        if not queries and not self.done:
            self._stop("exhausted")
        self._asked = len(queries)
        return queries

    def feed(self, proposals: Sequence[Sequence[Proposal]], charged_s: float = 0.0) -> None:
        """The policy's proposals for the queries of the last :meth:`pending` call, in order."""
        if len(proposals) != self._asked:
            raise ModelError(
                f"search of {self.label}: {self._asked} queries were pending, got "
                f"{len(proposals)} proposal lists (a policy must answer every query)"
            )
        start = time.perf_counter()
        self.time_s += charged_s
        self.expansions += len(proposals)
        self._asked = 0
        self._absorb(proposals)
        self.time_s += time.perf_counter() - start

    def result(self) -> SearchResult:
        end = self._ended if self._ended is not None else time.perf_counter()
        return SearchResult(
            label=self.label,
            prover=self.prover,
            proved=self.proof is not None,
            proof=self.proof,
            expansions=self.expansions,
            time_s=self.time_s,
            wall_s=end - self._started if self._started is not None else 0.0,
            stop_reason=self.stop_reason or ("proved" if self.proof is not None else "unfinished"),
            invalid=dict(sorted(self.invalid.items())),
            pruned=dict(sorted(self.pruned.items())),
            kernel_rejections=self.kernel_rejections,
            nodes=self.node_count(),
        )

    # --- for subclasses --------------------------------------------------------------------------

    @abc.abstractmethod
    def _queries(self) -> list[Query]: ...

    @abc.abstractmethod
    def _absorb(self, proposals: Sequence[Sequence[Proposal]]) -> None: ...

    def node_count(self) -> int:
        return 0

    def _stop(self, reason: str) -> None:
        if not self.done:
            self.done = True
            self.stop_reason = reason
            self._ended = time.perf_counter()

    def _accept(self, tree: ProofTree) -> bool:
        """Check ``tree`` with the kernel; on success the search is proved and done."""
        try:
            check_tree(self.db, self.grammar, self.theorem, tree, self.kernel)
        except MetamathError as error:
            self.kernel_rejections += 1
            logger.error(
                "BUG: %s search of %s found a proof the kernel rejects (not counted as proved): %s",
                self.prover,
                self.label,
                error,
            )
            self._stop("kernel_rejected")
            return False
        self.proof = tree
        self._stop("proved")
        return True


# --- The runner -----------------------------------------------------------------------------------


def run_searches(
    searches: Iterable[Search],
    policy: Policy,
    *,
    batch: int = 16,
    on_result: Callable[[SearchResult], None] | None = None,
) -> list[SearchResult]:
    """Run ``searches`` (consumed lazily) with up to ``batch`` at once; results in input order.

    Each round makes one policy call per (kind, k, temperature) group of pending queries. ``on_result``
    is called with each result as its search finishes (for progress lines).
    """
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    source = iter(searches)
    active: list[tuple[int, Search]] = []
    results: dict[int, SearchResult] = {}
    started = 0
    exhausted = False

    def retire(index: int, search: Search) -> None:
        results[index] = result = search.result()
        if on_result is not None:
            on_result(result)

    while True:
        while not exhausted and len(active) < batch:
            search = next(source, None)
            if search is None:
                exhausted = True
            else:
                active.append((started, search))
                started += 1
        if not active:
            break
        groups: dict[tuple[str, int, float | None], list[tuple[int, Search, list[Query]]]] = {}
        still: list[tuple[int, Search]] = []
        for index, search in active:
            queries = search.pending()
            if search.done:
                retire(index, search)
                continue
            still.append((index, search))
            groups.setdefault((search.kind, search.k, search.temperature), []).append((index, search, queries))
        for (kind, k, temperature), members in groups.items():
            _answer(policy, kind, k, temperature, members)
        active = []
        for index, search in still:
            if search.done:
                retire(index, search)
            else:
                active.append((index, search))
    return [results[i] for i in range(started)]


def _answer(
    policy: Policy, kind: str, k: int, temperature: float | None, members: list[tuple[int, Search, list[Query]]]
) -> None:
    flat = [q for _, _, queries in members for q in queries]
    start = time.perf_counter()
    # A group holds the queries of one kind (its key says which), hence the casts.
    if kind == "backward":
        answers = policy.propose_backward(cast("list[BackwardQuery]", flat), k)
    else:
        answers = policy.propose_forward(cast("list[ForwardQuery]", flat), k, temperature)
    share = (time.perf_counter() - start) / max(len(flat), 1)
    if len(answers) != len(flat):
        raise ModelError(f"the policy answered {len(answers)} of {len(flat)} {kind} queries; it must answer each")
    position = 0
    for _, search, queries in members:
        search.feed(answers[position : position + len(queries)], share * len(queries))
        position += len(queries)


def run_search(search: Search, policy: Policy) -> SearchResult:
    """Run one search alone (a batch of one)."""
    return run_searches([search], policy, batch=1)[0]
