"""The model-free baseline policy: unification, subexpression fillings, a uniform distribution.

It is the bar every learned prover must clear, so it is a fair policy, not a tuned ATP. Exactly:

**Candidates, backward** (goal ``G`` in the context of theorem ``T``). Every assertion a proof of ``T``
may cite (:meth:`Context.allowed_labels`: before ``T``, not forbidden, provable typecode) whose
conclusion's syntax tree matches ``G``'s (one-way unification: the assertion's variables bind subtrees of
``G``). An index by the root constructor of each conclusion avoids trying the others. Variables the
conclusion does not contain (e.g. ``ph`` of ``ax-mp`` for a goal ``|- ps``) are *filled* from the *pool*:
the distinct syntax subtrees, of the variable's typecode, of ``G``, of ``T``'s statement and of ``T``'s
essential hypotheses, shortest first (at most ``max_pool`` per typecode); when the pool has no expression
of a typecode, the context's variables of that typecode are used. Fillings of several variables are
enumerated by increasing total length, at most ``max_fillings`` per assertion.

**Candidates, forward** (graph nodes ``N``, goal ``G``). Every allowed assertion whose essential
hypotheses all match nodes, consistently (at most ``max_assignments`` assignments per assertion,
enumerated in node order); hypothesis-free assertions always qualify. Variables not bound by the
hypotheses are filled from the pool of ``N`` and ``G`` as above (at most ``max_fillings`` combinations
per assertion). Candidates whose conclusion is already a node are never proposed.

**Distribution.** Uniform and factorised like a decoder's output: the label is uniform over the
assertions with at least one candidate, the substitution uniform over that assertion's candidates, so a
candidate's log-probability is ``-log(#labels) - log(#candidates of its label)``. The ``k`` best are thus
the candidates of the assertions with the fewest candidates (fully determined tactics first); ties are
broken by a fixed pseudo-random order of the labels drawn from ``seed`` (then by filling order).
Sampling at temperature ``t`` draws without repetition from that distribution raised to ``1/t`` (the label
with weight ``#candidates ** (1 - 1/t)``, then a uniform candidate), with a ``random.Random(seed)`` owned by
the policy: runs are reproducible given the seed and the order of the queries.

The baseline does not check ``$d`` conditions or other validity: like a model, it proposes, and the
environment decides.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from core.errors import GrammarError
from core.metamath.database import Assertion, Database, Statement
from core.metamath.environment import Context, Expression, Tactic
from core.metamath.index import match_tree
from core.metamath.proof import ProofStep
from core.metamath.syntax import Grammar, floating_context
from core.metamath.verifier import Template, compile_template, substitute
from core.search.policy import BackwardQuery, ForwardQuery, Proposal

Pattern = tuple[ProofStep, dict[str, str]]  # syntax tree, leaf label -> variable
Bound = dict[str, Expression]


@dataclass(frozen=True, slots=True)
class _Analysis:
    """A statement's syntax tree, the symbols of each subtree (by ``id``), and its typed subexpressions."""

    tree: ProofStep
    expressions: dict[int, Expression]
    by_type: dict[str, tuple[Expression, ...]]  # typecode -> distinct subexpressions, shortest first
    matches: dict[tuple[str, int], Bound | None]  # (label, hypothesis index) -> binding, filled lazily


@dataclass(frozen=True, slots=True)
class _Hypothesis:
    """An essential hypothesis of an assertion, ready for matching against nodes."""

    index: int
    tree: ProofStep
    leaves: dict[str, str]
    root: str | None  # the root constructor of its syntax tree (None: a bare variable)
    variables: frozenset[str]
    template: Template


@dataclass(frozen=True, slots=True)
class _Option:
    """One assertion's candidates for a query: partial bindings times fillings of the rest."""

    assertion: Assertion
    assignments: tuple[Bound, ...]  # variables bound by unification (one per hypothesis matching)
    free: tuple[tuple[str, ...], ...]  # per assignment: the variables to fill
    count: int  # candidates (capped at max_fillings)
    rank: int


def _shortest_first(analyses: Sequence[_Analysis], cap: int | None = None) -> dict[str, list[Expression]]:
    """Typecode -> the distinct subexpressions of that typecode of ``analyses``, shortest first (ties: first
    seen), at most ``cap`` of them (all without one)."""
    typecodes = {typecode for analysis in analyses for typecode in analysis.by_type}
    return {t: list(itertools.islice(_distinct(_merged(analyses, t)), cap)) for t in typecodes}


def _merged(analyses: Sequence[_Analysis], typecode: str) -> Iterator[Expression]:
    return heapq.merge(*(a.by_type.get(typecode, ()) for a in analyses), key=len)


def _distinct(expressions: Iterable[Expression]) -> Iterator[Expression]:
    seen: set[Expression] = set()
    for expression in expressions:
        if expression not in seen:
            seen.add(expression)
            yield expression


class BaselinePolicy:
    """The model-free baseline (see the module docstring); a :class:`~core.search.policy.Policy`."""

    def __init__(
        self,
        db: Database,
        *,
        grammar: Grammar | None = None,
        seed: int = 0,
        max_fillings: int = 64,
        max_pool: int = 32,
        max_assignments: int = 16,
    ) -> None:
        self.db = db
        self.grammar = grammar or Grammar(db)
        self.seed = seed
        self.max_fillings = max_fillings
        self.max_pool = max_pool
        self.max_assignments = max_assignments
        self.rng = random.Random(seed)
        self._typecodes = {label: rule.typecode for label, rule in self.grammar.rules.items()}
        self._rank: dict[str, int] = {}
        self._conclusions: dict[str, Pattern] = {}
        self._hypotheses: dict[str, list[_Hypothesis]] = {}
        self._by_root: dict[str | None, list[Assertion]] = {}
        self._assertions: list[Assertion] = []
        for assertion in db.assertions:
            if assertion.typecode == db.provable_typecode:
                self._index(assertion)
        self._analyses: dict[Statement, _Analysis | None] = {}

    def _index(self, assertion: Assertion) -> None:
        floating = floating_context(assertion.floating)
        leaves = {h.label: h.variable for h in assertion.floating}
        try:
            tree = self.grammar.parse(assertion.typecode, assertion.statement[1:], floating)
            hypotheses = [self.grammar.parse(h.typecode, h.statement[1:], floating) for h in assertion.essential]
        except GrammarError:
            return  # an assertion the grammar cannot read is never proposed
        self._conclusions[assertion.label] = (tree, leaves)
        variables = self.db.variables
        essential = [
            _Hypothesis(
                i,
                h,
                leaves,
                None if h.label in leaves else h.label,
                frozenset(s for s in e.statement if s in variables),
                compile_template(e.statement, variables),
            )
            for i, (h, e) in enumerate(zip(hypotheses, assertion.essential))
        ]
        # join order: the most structured hypothesis first (it has the fewest matches)
        self._hypotheses[assertion.label] = sorted(essential, key=lambda h: (-_size(h.tree), h.index))
        root = None if tree.label in leaves else tree.label
        self._by_root.setdefault(root, []).append(assertion)
        self._assertions.append(assertion)
        digest = hashlib.sha256(f"{self.seed}\0{assertion.label}".encode()).digest()
        self._rank[assertion.label] = int.from_bytes(digest[:8], "big")

    # --- the Policy interface --------------------------------------------------------------------

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        return [self._backward(query, k) for query in queries]

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        return [self._forward(query, k, temperature) for query in queries]

    # --- backward --------------------------------------------------------------------------------

    def backward_options(self, query: BackwardQuery) -> tuple[list[_Option], dict[str, list[Expression]]]:
        """Every assertion whose conclusion unifies with the goal, with its fillings counted; and the pool."""
        env = query.env
        goal = self._analysis(env, query.goal)
        if goal is None:
            return [], {}
        target = goal.tree
        statements = [query.goal, env.theorem.statement, *(h.statement for h in env.theorem.essential)]
        pool: dict[str, list[Expression]] | None = None
        options = []
        for assertion in itertools.chain(self._by_root.get(target.label, ()), self._by_root.get(None, ())):
            if not _allowed(env, assertion):
                continue
            tree, leaves = self._conclusions[assertion.label]
            bound: dict[str, ProofStep] = {}
            if not match_tree(tree, target, leaves, bound):
                continue
            free = tuple(v for v in assertion.variables if v not in bound)
            if free and pool is None:
                pool = self._pool(env, statements)
            count = self._count(assertion, [free], pool or {})
            if count:  # backward tactics carry only the variables unification leaves free
                options.append(_Option(assertion, ({},), (free,), count, self._rank[assertion.label]))
        return options, pool or {}

    def _backward(self, query: BackwardQuery, k: int) -> list[Proposal]:
        options, pool = self.backward_options(query)
        proposals: list[Proposal] = []
        for option in sorted(options, key=lambda o: (o.count, o.rank)):
            logprob = -math.log(len(options)) - math.log(option.count)
            for _, filling in self._candidates(option, pool):
                proposals.append(Proposal(Tactic(option.assertion.label, filling), logprob))
                if len(proposals) >= k:
                    return proposals
        return proposals

    # --- forward ---------------------------------------------------------------------------------

    def forward_options(self, query: ForwardQuery) -> tuple[list[_Option], dict[str, list[Expression]]]:
        """Every assertion whose hypotheses match nodes, with its candidates counted; and the pool."""
        env = query.env
        statements = [n.statement for n in env.nodes]
        nodes = _Nodes(statements, [self._analysis(env, s) for s in statements])
        goal = self._analysis(env, query.goal) if query.goal is not None else None
        pool = self._pool_of(env, nodes.ordered + ([goal] if goal is not None else []))
        options = []
        for assertion in self._assertions:
            if not _allowed(env, assertion):
                continue
            assignments = self._assignments(assertion, nodes)
            if not assignments:
                continue
            free = [tuple(v for v in assertion.variables if v not in bound) for bound in assignments]
            count = self._count(assertion, free, pool)
            if count:
                options.append(_Option(assertion, tuple(assignments), tuple(free), count, self._rank[assertion.label]))
        return options, pool

    def _forward(self, query: ForwardQuery, k: int, temperature: float | None) -> list[Proposal]:
        options, pool = self.forward_options(query)
        if not options:
            return []
        env = query.env
        proposals: list[Proposal] = []
        seen: set[tuple[str, Statement]] = set()

        def offer(option: _Option, substitution: dict[str, Expression]) -> bool:
            conclusion = env.conclusion_under(option.assertion, substitution)
            key = (option.assertion.label, conclusion)
            if conclusion in env.by_statement or key in seen:
                return False
            seen.add(key)
            logprob = -math.log(len(options)) - math.log(option.count)
            proposals.append(Proposal(Tactic(option.assertion.label, substitution), logprob))
            return True

        if temperature is None or temperature <= 0:
            for option in sorted(options, key=lambda o: (o.count, o.rank)):
                for bound, filling in self._candidates(option, pool):
                    if offer(option, {**bound, **filling}) and len(proposals) >= k:
                        return proposals
            return proposals
        weights = [o.count ** (1 - 1 / temperature) for o in options]
        listed: dict[int, list[dict[str, Expression]]] = {}
        for _ in range(8 * k):
            if len(proposals) >= k:
                break
            index = self.rng.choices(range(len(options)), weights)[0]
            if index not in listed:
                listed[index] = [{**b, **f} for b, f in self._candidates(options[index], pool)]
            if listed[index]:
                offer(options[index], listed[index].pop(self.rng.randrange(len(listed[index]))))
            else:
                weights[index] = 0.0
                if not any(weights):
                    break
        return proposals

    def _assignments(self, assertion: Assertion, nodes: _Nodes) -> list[Bound]:
        """Consistent bindings of the assertion's hypotheses to node statements (``[{}]`` if it has none).

        Hypotheses are joined most structured first; one whose variables are all bound already is looked
        up directly. At most ``max_assignments`` bindings are kept at each stage.
        """
        partial: list[Bound] = [{}]
        for hypothesis in self._hypotheses[assertion.label]:
            extended: list[Bound] = []
            matches: list[Bound] | None = None
            for bound in partial:
                if hypothesis.variables <= bound.keys():
                    if substitute(hypothesis.template, bound) in nodes.statements:
                        extended.append(bound)
                else:
                    if matches is None:
                        matches = [
                            m
                            for a in nodes.with_root(hypothesis.root)
                            if (m := _match_hypothesis(assertion, hypothesis, a)) is not None
                        ]
                    shared = [v for v in hypothesis.variables if v in bound]
                    for match in matches:
                        if all(bound[v] == match[v] for v in shared):
                            extended.append({**bound, **match})
                            if len(extended) >= self.max_assignments:
                                break
                if len(extended) >= self.max_assignments:
                    break
            partial = extended
            if not partial:
                return []
        return partial

    # --- fillings --------------------------------------------------------------------------------

    def subexpressions(self, env: Context, statements: Iterable[Statement]) -> dict[str, list[Expression]]:
        """Typecode -> every distinct subexpression of ``statements`` (those that parse in ``env``), shortest
        first (ties: first seen): the pool before its cap, without the fallback to the context's variables."""
        return _shortest_first(self._parsed(env, statements))

    def _pool(self, env: Context, statements: Iterable[Statement]) -> dict[str, list[Expression]]:
        """Typecode -> distinct subexpressions of ``statements``, shortest first (ties: first seen), capped."""
        return self._pool_of(env, self._parsed(env, statements))

    def _pool_of(self, env: Context, analyses: Sequence[_Analysis]) -> dict[str, list[Expression]]:
        pool = _shortest_first(analyses, self.max_pool)
        missing = {h.typecode for h in env.floating.values()} - set(pool)  # fallback: the context's variables
        for variable, hypothesis in env.floating.items():
            if hypothesis.typecode in missing:
                pool.setdefault(hypothesis.typecode, []).append((variable,))
        return pool

    def _parsed(self, env: Context, statements: Iterable[Statement]) -> list[_Analysis]:
        """The syntax analyses of those of ``statements`` that parse in ``env``."""
        return [a for s in statements if (a := self._analysis(env, s)) is not None]

    def _analysis(self, env: Context, statement: Statement) -> _Analysis | None:
        """The syntax analysis of ``statement`` (cached by statement; ``None`` if it does not parse)."""
        if statement in self._analyses:
            return self._analyses[statement]
        tree = env.tree(statement)
        analysis = None
        if tree is not None:
            expressions = self._slices(tree, statement[1:])
            by_type: dict[str, dict[Expression, None]] = {}
            for node in _subtrees(tree):
                by_type.setdefault(self._typecode(node), {}).setdefault(expressions[id(node)])
            analysis = _Analysis(tree, expressions, {t: tuple(sorted(e, key=len)) for t, e in by_type.items()}, {})
        if len(self._analyses) > 20_000:  # bounds memory in long forward runs
            self._analyses.clear()
        self._analyses[statement] = analysis
        return analysis

    def _slices(self, tree: ProofStep, symbols: Expression) -> dict[int, Expression]:
        """The symbols each subtree of a parse of ``symbols`` stands for (a parse covers contiguous spans)."""
        rules = self.grammar.rules
        lengths: dict[int, int] = {}
        for node in _post_order(tree):
            rule = rules.get(node.label)
            if rule is None:
                lengths[id(node)] = 1  # a variable
                continue
            child = dict(zip(rule.hypothesis_variables, node.children))
            lengths[id(node)] = sum(lengths[id(child[item])] if item in child else 1 for item in rule.body)
        out: dict[int, Expression] = {}
        stack = [(tree, 0)]
        while stack:
            node, start = stack.pop()
            out[id(node)] = symbols[start : start + lengths[id(node)]]
            rule = rules.get(node.label)
            if rule is None:
                continue
            child = dict(zip(rule.hypothesis_variables, node.children))
            position = start
            for item in rule.body:
                if item in child:
                    stack.append((child[item], position))
                    position += lengths[id(child[item])]
                else:
                    position += 1
        return out

    def _typecode(self, node: ProofStep) -> str:
        typecode = self._typecodes.get(node.label)
        return typecode if typecode is not None else self.db.labels[node.label].statement[0]

    def _count(
        self, assertion: Assertion, free: Sequence[tuple[str, ...]], pool: Mapping[str, list[Expression]]
    ) -> int:
        types = {h.variable: h.typecode for h in assertion.floating}
        total = 0
        for variables in free:
            total += math.prod(len(pool.get(types[v], ())) for v in variables)
            if total >= self.max_fillings:
                return self.max_fillings
        return total

    def _candidates(self, option: _Option, pool: Mapping[str, list[Expression]]) -> Iterator[tuple[Bound, Bound]]:
        """(bound, filling) pairs of ``option``, at most ``option.count`` of them."""
        types = {h.variable: h.typecode for h in option.assertion.floating}
        produced = 0
        for bound, variables in zip(option.assignments, option.free):
            lists = [pool.get(types[v], []) for v in variables]
            for combination in _smallest_combinations(lists, option.count - produced):
                yield bound, dict(zip(variables, combination))
                produced += 1
            if produced >= option.count:
                return


def _match_hypothesis(assertion: Assertion, hypothesis: _Hypothesis, analysis: _Analysis) -> Bound | None:
    """How ``hypothesis`` of ``assertion`` matches a node (cached in the node's analysis)."""
    key = (assertion.label, hypothesis.index)
    if key not in analysis.matches:
        bound: dict[str, ProofStep] = {}
        found = match_tree(hypothesis.tree, analysis.tree, hypothesis.leaves, bound)
        analysis.matches[key] = {v: analysis.expressions[id(t)] for v, t in bound.items()} if found else None
    return analysis.matches[key]


class _Nodes:
    """A forward graph's statements, grouped by the root constructor of their syntax trees."""

    def __init__(self, statements: Sequence[Statement], analyses: Sequence[_Analysis | None]) -> None:
        self.statements = set(statements)
        self.ordered = [a for a in analyses if a is not None]
        self.by_root: dict[str, list[_Analysis]] = {}
        for analysis in self.ordered:
            self.by_root.setdefault(analysis.tree.label, []).append(analysis)

    def with_root(self, root: str | None) -> Sequence[_Analysis]:
        return self.ordered if root is None else self.by_root.get(root, ())


def _size(tree: ProofStep) -> int:
    return sum(1 for _ in _subtrees(tree))


def _allowed(env: Context, assertion: Assertion) -> bool:
    return assertion.number < env.theorem.number and assertion.label not in env.forbidden


def _subtrees(tree: ProofStep) -> Iterator[ProofStep]:
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _post_order(tree: ProofStep) -> Iterator[ProofStep]:
    stack: list[tuple[ProofStep, bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded or not node.children:
            yield node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in node.children)


def _smallest_combinations(lists: Sequence[Sequence[Expression]], limit: int) -> Iterator[tuple[Expression, ...]]:
    """One item of each list, combinations in order of increasing total length (ties: index order)."""
    if limit <= 0 or any(not items for items in lists):
        return
    start = (0,) * len(lists)
    heap = [(sum(len(items[0]) for items in lists), start)]
    seen = {start}
    produced = 0
    while heap and produced < limit:
        cost, index = heapq.heappop(heap)
        yield tuple(items[i] for items, i in zip(lists, index))
        produced += 1
        for axis, items in enumerate(lists):
            if index[axis] + 1 < len(items):
                successor = (*index[:axis], index[axis] + 1, *index[axis + 1 :])
                if successor not in seen:
                    seen.add(successor)
                    step = len(items[index[axis] + 1]) - len(items[index[axis]])
                    heapq.heappush(heap, (cost + step, successor))
