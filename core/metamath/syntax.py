"""Parse typed Metamath expressions into syntax trees, with the database's own syntax axioms.

Every ``$a`` whose typecode is not the provable one (``wff ( ph -> ps )``, ``class ( A u. B )``,
``class x`` ...) is a grammar rule. A parse is returned as a :class:`~core.metamath.proof.ProofStep` tree
whose nodes are syntax-axiom labels (children in the axiom's hypothesis order) and whose leaves are the
labels of floating hypotheses: it *is* the syntax proof of the expression, so building the ``$f``/``wff``
steps of a proof is a post-order walk (:func:`core.metamath.proof.normal_proof`).

Statements with the provable typecode (``|- ...``) are parsed as the syntax typecode that set.mm
convention pairs with it (``wff``), so ``|- ( ph -> ph )`` and ``wff ( ph -> ph )`` share a tree.

The parser is a memoized top-down (packrat) parser that keeps every alternative and grows seeds for
left-recursive rules. Rule bodies are stored in a trie per typecode, so rules sharing a prefix (``( A u.
B )``, ``( A i^i B )``, ...) parse that prefix once. set.mm's grammar is unambiguous, so exactly one full
parse is expected; anything else is reported as a :class:`~core.errors.GrammarError`. Rules with an empty
body or a repeated variable are not supported (they never match). The parser recurses (it is fastest so);
an expression nested too deeply for Python's recursion limit is parsed again by the same algorithm run on
an explicit stack (:meth:`_Parse.deep_parses`), so any depth parses or fails with a ``GrammarError``.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import GrammarError
from core.metamath.database import Assertion, Database, Hypothesis, Statement
from core.metamath.proof import ProofStep

logger = logging.getLogger(__name__)

CONTEXT_TREES_LIMIT = 200_000  # statements kept per shared floating-context cache before it is emptied
CONTEXT_CACHES_LIMIT = 256  # floating contexts whose caches a grammar keeps (least recently used dropped)


@dataclass(frozen=True, slots=True)
class Rule:
    """A syntax axiom seen as a grammar rule ``typecode -> body``."""

    label: str
    typecode: str
    body: tuple[str, ...]  # constants and variables
    variable_types: tuple[tuple[str, str], ...]  # (variable, its typecode), in body order, first occurrences
    hypothesis_variables: tuple[str, ...]  # the axiom's mandatory variables, in hypothesis order


class _Parse:
    """The state of one parse: the symbols, memo table and the variables' floating hypotheses."""

    __slots__ = ("active", "floating", "grammar", "memo", "recursive", "seeds", "symbols")

    def __init__(self, grammar: Grammar, symbols: Sequence[str], floating: Mapping[str, Hypothesis]) -> None:
        self.grammar = grammar
        self.symbols = symbols
        self.floating = floating
        self.memo: dict[tuple[str, int], list[tuple[int, ProofStep]]] = {}
        self.active: set[tuple[str, int]] = set()
        self.recursive: set[tuple[str, int]] = set()
        self.seeds: dict[tuple[str, int], list[tuple[int, ProofStep]]] = {}

    def parses(self, typecode: str, start: int) -> list[tuple[int, ProofStep]]:
        """Every (end, tree) such that ``symbols[start:end]`` parses as ``typecode``.

        Left-recursive rules (``term -> term '``) are handled by growing a seed: the key is recomputed
        with its previous results standing in for the recursive call until no new parse appears (at
        most once per remaining symbol: each growth step consumes at least one symbol, unless the
        grammar is cyclic). Only memo entries at ``start`` can depend on the seed: a parse never
        looks left of its start, so entries further right stay valid while the seed grows.
        """
        key = (typecode, start)
        found = self.memo.get(key)
        if found is not None:
            return found
        if key in self.active:
            self.recursive.add(key)
            return self.seeds.get(key, [])
        self.active.add(key)
        mark = len(self.memo)
        results = self._alternatives(typecode, start)
        rounds = len(self.symbols) - start + 1
        while key in self.recursive and rounds > 0:
            rounds -= 1
            self.seeds[key] = results
            for stale in [k for k in list(self.memo)[mark:] if k[1] == start]:  # computed from an older seed
                del self.memo[stale]
            grown = self._alternatives(typecode, start)
            if len(grown) <= len(results):  # a bigger seed only adds parses: nothing new
                break
            results = grown
        self.active.discard(key)
        self.memo[key] = results
        return results

    def _alternatives(self, typecode: str, start: int) -> list[tuple[int, ProofStep]]:
        results: list[tuple[int, ProofStep]] = []
        symbols = self.symbols
        if start >= len(symbols):
            return results
        hypothesis = self.floating.get(symbols[start])
        if hypothesis is not None and hypothesis.typecode == typecode:
            results.append((start + 1, ProofStep(hypothesis.label)))
        root = self.grammar._tries.get(typecode)
        if root is not None:
            self._walk(root, start, (), results)
        return results

    def _walk(
        self, node: _TrieNode, position: int, bound: tuple[ProofStep, ...], results: list[tuple[int, ProofStep]]
    ) -> None:
        """Match every rule body below trie ``node`` from ``position``; ``bound``: the variables' trees so far."""
        for label, order in node.complete:
            results.append((position, ProofStep(label, tuple([bound[i] for i in order]))))
        symbols = self.symbols
        if position < len(symbols):
            child = node.constants.get(symbols[position])
            if child is not None:
                self._walk(child, position + 1, bound, results)
        for typecode, child in node.variables.items():
            for end, tree in self.parses(typecode, position):
                self._walk(child, end, (*bound, tree), results)

    def deep_parses(self, typecode: str, start: int) -> _Call:
        """:meth:`parses` without Python recursion, for expressions nested too deeply for it: a generator that
        yields the calls it needs to :func:`_run_calls`. The same algorithm, step for step (tests check that
        both agree); slower, so it is only the fallback."""
        key = (typecode, start)
        found = self.memo.get(key)
        if found is not None:
            return found
        if key in self.active:
            self.recursive.add(key)
            return self.seeds.get(key, [])
        self.active.add(key)
        mark = len(self.memo)
        results = yield from self._deep_alternatives(typecode, start)
        rounds = len(self.symbols) - start + 1
        while key in self.recursive and rounds > 0:
            rounds -= 1
            self.seeds[key] = results
            for stale in [k for k in list(self.memo)[mark:] if k[1] == start]:  # computed from an older seed
                del self.memo[stale]
            grown = yield from self._deep_alternatives(typecode, start)
            if len(grown) <= len(results):  # a bigger seed only adds parses: nothing new
                break
            results = grown
        self.active.discard(key)
        self.memo[key] = results
        return results

    def _deep_alternatives(self, typecode: str, start: int) -> _Call:
        """:meth:`_alternatives` and :meth:`_walk` on an explicit stack of ``(node, position, trees bound so far)``
        and ``(typecode of a variable, node after it, position, trees)`` items, taken in the recursive walk's
        order; a variable's parses come from the memo, or from a call yielded to :func:`_run_calls`."""
        results: list[tuple[int, ProofStep]] = []
        symbols = self.symbols
        if start >= len(symbols):
            return results
        hypothesis = self.floating.get(symbols[start])
        if hypothesis is not None and hypothesis.typecode == typecode:
            results.append((start + 1, ProofStep(hypothesis.label)))
        root = self.grammar._tries.get(typecode)
        work: list[tuple] = [] if root is None else [(root, start, ())]
        while work:
            item = work.pop()
            if len(item) == 4:  # a variable: its parses, each continuing at the node after it
                variable_type, child, position, bound = item
                found = self.memo.get((variable_type, position))
                if found is None:
                    found = yield self.deep_parses(variable_type, position)
                work.extend([(child, end, (*bound, tree)) for end, tree in reversed(found)])
                continue
            node, position, bound = item
            for label, order in node.complete:
                results.append((position, ProofStep(label, tuple([bound[i] for i in order]))))
            work.extend(
                [(variable_type, child, position, bound) for variable_type, child in reversed(node.variables.items())]
            )
            child = node.constants.get(symbols[position]) if position < len(symbols) else None
            if child is not None:
                work.append((child, position + 1, bound))
        return results


_Call = Generator["_Call", list[tuple[int, ProofStep]], list[tuple[int, ProofStep]]]
"""A parser call: a generator that yields the calls it needs (receiving each one's parses) and returns its own."""


def _run_calls(call: _Call) -> list[tuple[int, ProofStep]]:
    """Run ``call`` and every call it yields on an explicit stack (so no nesting depth exhausts Python's)."""
    stack = [call]
    value: list[tuple[int, ProofStep]] | None = None
    while True:
        try:
            # The first value sent into a new call is None, which the Generator type cannot express.
            needed = stack[-1].send(value)  # type: ignore[arg-type]  # None starts a new call (see above)
        except StopIteration as returned:
            stack.pop()
            value = returned.value
            if not stack:
                return value
            continue
        stack.append(needed)
        value = None


class _TrieNode:
    """Rule bodies sharing a prefix share a path: the parse of a shared prefix is matched once.

    ``constants`` and ``variables`` (by typecode) lead to the next item; ``complete`` lists the rules
    whose body ends here, as (label, index of each hypothesis variable's tree among the bound ones).
    """

    __slots__ = ("complete", "constants", "variables")

    def __init__(self) -> None:
        self.constants: dict[str, _TrieNode] = {}
        self.variables: dict[str, _TrieNode] = {}
        self.complete: list[tuple[str, tuple[int, ...]]] = []


class Grammar:
    """The grammar of a database: its syntax axioms as rules, and a parser over them."""

    def __init__(self, db: Database, provable_syntax_typecode: str | None = None) -> None:
        self.db = db
        self.variables = db.variables
        self.rules: dict[str, Rule] = {}
        self._tries: dict[str, _TrieNode] = {}  # typecode -> the trie of its rules' bodies
        self.global_floating: dict[str, Hypothesis] = {h.variable: h for h in db.global_floating}
        for assertion in db.assertions:
            if db.is_syntax_axiom(assertion):
                self._add_rule(assertion)
        self.syntax_typecodes = {rule.typecode for rule in self.rules.values()}
        self.syntax_typecodes.update(h.typecode for h in db.global_floating)
        self.provable_syntax_typecode = provable_syntax_typecode or self._guess_provable_syntax_typecode()
        self._trees: dict[tuple[str, Statement], ProofStep] = {}
        self._frame_trees: dict[tuple[str, Statement], ProofStep] = {}
        self._context_trees: dict[tuple[str, ...], dict[Statement, ProofStep | None]] = {}

    def _add_rule(self, assertion: Assertion) -> None:
        if assertion.essential:
            return  # a syntax axiom with logical hypotheses is not a context-free rule
        body = assertion.statement[1:]
        types = {h.variable: h.typecode for h in assertion.floating}
        seen: dict[str, str] = {}
        for symbol in body:
            if symbol in types and symbol not in seen:
                seen[symbol] = types[symbol]
        rule = Rule(assertion.label, assertion.typecode, body, tuple(seen.items()), assertion.variables)
        self.rules[assertion.label] = rule
        variables_in_body = [symbol for symbol in body if symbol in types]
        if not body or len(set(variables_in_body)) != len(variables_in_body):
            return  # empty bodies and repeated variables are not supported: the rule never matches
        node = self._tries.setdefault(rule.typecode, _TrieNode())
        for symbol in body:
            if symbol in types:
                node = node.variables.setdefault(types[symbol], _TrieNode())
            else:
                node = node.constants.setdefault(symbol, _TrieNode())
        node.complete.append((rule.label, tuple(variables_in_body.index(v) for v in rule.hypothesis_variables)))

    def _guess_provable_syntax_typecode(self) -> str:
        if "wff" in self.syntax_typecodes:
            return "wff"
        counts: dict[str, int] = {}
        for rule in self.rules.values():
            counts[rule.typecode] = counts.get(rule.typecode, 0) + 1
        return max(counts, key=counts.__getitem__) if counts else "wff"

    # --- parsing ---------------------------------------------------------------------------------

    def syntax_typecode(self, typecode: str) -> str:
        """The typecode an expression of ``typecode`` is parsed as (``|-`` -> ``wff``)."""
        return self.provable_syntax_typecode if typecode == self.db.provable_typecode else typecode

    def parse(
        self,
        typecode: str,
        symbols: Sequence[str],
        floating: Mapping[str, Hypothesis] | None = None,
    ) -> ProofStep:
        """The syntax tree of ``symbols`` as an expression of ``typecode``.

        ``floating`` maps each variable to its floating hypothesis (default: the database's outermost
        ones). Raises :class:`GrammarError` if there is no parse or more than one.
        """
        typecode = self.syntax_typecode(typecode)
        if typecode not in self.syntax_typecodes:
            raise GrammarError(f"{typecode!r} is not a syntax typecode of this database", file=self.db.path)
        complete = [tree for end, tree in self._all_parses(typecode, symbols, floating) if end == len(symbols)]
        if len(complete) == 1:
            return complete[0]
        text = _shortened(f"{typecode} {' '.join(symbols)}")
        if not complete:
            raise GrammarError(f"{text!r} does not parse with the syntax axioms", file=self.db.path)
        raise GrammarError(f"{text!r} is ambiguous ({len(complete)} parses)", file=self.db.path)

    def _all_parses(
        self, typecode: str, symbols: Sequence[str], floating: Mapping[str, Hypothesis] | None
    ) -> list[tuple[int, ProofStep]]:
        """Every parse of a prefix of ``symbols``: by the recursive parser (the fast one), or, for an expression
        nested deeper than Python's recursion limit allows, by the same algorithm on an explicit stack."""
        context = self.global_floating if floating is None else floating
        try:
            return _Parse(self, symbols, context).parses(typecode, 0)
        except RecursionError:
            logger.debug("%s expression of %d symbols: too deep for the recursive parser", typecode, len(symbols))
        return _run_calls(_Parse(self, symbols, context).deep_parses(typecode, 0))

    def parse_statement(self, statement: Statement, floating: Mapping[str, Hypothesis] | None = None) -> ProofStep:
        """The syntax tree of a statement (typecode first), cached for the default floating context."""
        if floating is not None:
            return self.parse(statement[0], statement[1:], floating)
        key = (statement[0], statement)
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = self.parse(statement[0], statement[1:])
        return tree

    def frame_tree(self, assertion: Assertion, statement: Statement) -> ProofStep:
        """The tree of one of ``assertion``'s statements parsed in its own frame (cached per grammar).

        Raises :class:`GrammarError` if it does not parse.
        """
        key = (assertion.label, statement)
        tree = self._frame_trees.get(key)
        if tree is None:
            tree = self.parse(statement[0], statement[1:], floating_context(assertion.floating))
            self._frame_trees[key] = tree
        return tree

    def context_trees(self, floating: Mapping[str, Hypothesis]) -> dict[Statement, ProofStep | None]:
        """A statement -> tree (``None``: does not parse) cache for parses in the floating context ``floating``.

        Every caller with the same floating context gets the same dictionary, so the environments of
        theorems declared in the same scope share their parses. The caller fills it (and may empty it
        when it grows too large: see :data:`CONTEXT_TREES_LIMIT`). A grammar keeps the caches of the
        :data:`CONTEXT_CACHES_LIMIT` contexts asked for most recently.
        """
        key = tuple(h.label for h in floating.values())
        trees = self._context_trees.pop(key, None)
        if trees is None:
            trees = {}
            if len(self._context_trees) >= CONTEXT_CACHES_LIMIT:
                del self._context_trees[next(iter(self._context_trees))]  # the least recently asked for
        self._context_trees[key] = trees
        return trees

    def is_well_formed(
        self, typecode: str, symbols: Sequence[str], floating: Mapping[str, Hypothesis] | None = None
    ) -> bool:
        try:
            self.parse(typecode, symbols, floating)
        except GrammarError:
            return False
        return True

    # --- trees back to text ----------------------------------------------------------------------

    def expression(self, tree: ProofStep, floating_by_label: Mapping[str, Hypothesis] | None = None) -> tuple[str, ...]:
        """The symbols (without typecode) a syntax tree stands for."""
        out: list[str] = []
        self._write(tree, out, floating_by_label or self.db.labels)
        return tuple(out)

    def _write(self, tree: ProofStep, out: list[str], labels: Mapping[str, object]) -> None:
        """Append the symbols of ``tree`` to ``out`` (an explicit stack: any depth)."""
        pending: list[ProofStep | str] = [tree]  # trees still to write, and symbols, in reverse order
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                out.append(item)
                continue
            rule = self.rules.get(item.label)
            if rule is None:
                hypothesis = labels.get(item.label)
                if not isinstance(hypothesis, Hypothesis) or hypothesis.kind != "f":
                    raise GrammarError(f"{item.label!r} is neither a syntax axiom nor a floating hypothesis")
                out.append(hypothesis.variable)
                continue
            children = dict(zip(rule.hypothesis_variables, item.children))
            pending.extend(children.get(symbol, symbol) for symbol in reversed(rule.body))


def _shortened(text: str, limit: int = 200) -> str:
    """``text`` for an error message, cut in the middle when longer than ``limit``."""
    return text if len(text) <= limit else f"{text[: limit // 2]} ... {text[-limit // 2 :]}"


def floating_context(hypotheses: Iterable[Hypothesis]) -> dict[str, Hypothesis]:
    """Variable -> floating hypothesis, for parsing inside a theorem's context."""
    return {h.variable: h for h in hypotheses if h.kind == "f"}
