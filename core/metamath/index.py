"""A discrimination tree: which of many patterns (assertion conclusions) match a syntax tree.

Patterns are syntax trees whose variable leaves match any subtree. Each pattern is stored as the
pre-order sequence of its node labels, variables written ``*``, in a trie. A query walks the target tree
and the trie together, following at each step both the target node's label and ``*`` (which skips the
whole target subtree), so it visits only the patterns that can match instead of trying every one.
A pattern that uses a variable twice is then checked for consistency (both occurrences bound to equal
subtrees). This is what keeps "every assertion whose conclusion unifies with the goal" cheap on
databases with thousands of assertions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from core.metamath.proof import ProofStep

T = TypeVar("T")

_ANY = "*"


class _Node(Generic[T]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.values: list[tuple[T, ProofStep, Mapping[str, str] | None]] = []


class PatternIndex(Generic[T]):
    """Values indexed by a pattern tree; :meth:`matches` returns those whose pattern matches a tree."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        self.size = 0

    def add(self, value: T, pattern: ProofStep, variables: Mapping[str, str]) -> None:
        """Index ``value`` under ``pattern``, whose leaves labelled by a key of ``variables`` are variables."""
        node = self._root
        seen: set[str] = set()
        repeated = False
        stack = [pattern]
        while stack:
            step = stack.pop()
            variable = variables.get(step.label) if not step.children else None
            if variable is not None:
                repeated |= variable in seen
                seen.add(variable)
                key = _ANY
            else:
                key = step.label
                stack.extend(reversed(step.children))
            node = node.children.setdefault(key, _Node())
        node.values.append((value, pattern, variables if repeated else None))
        self.size += 1

    def matches(self, target: ProofStep) -> list[T]:
        """The values whose pattern matches ``target`` (variables bound consistently)."""
        found: list[T] = []
        self._walk(self._root, [target], target, found)
        return found

    def _walk(self, node: _Node[T], pending: list[ProofStep], target: ProofStep, found: list[T]) -> None:
        """Follow ``pending`` (the target's subtrees still to match, next one last) down the trie."""
        if not pending:
            for value, pattern, variables in node.values:
                if variables is None or consistent(pattern, target, variables):
                    found.append(value)
            return
        step, rest = pending[-1], pending[:-1]
        wildcard = node.children.get(_ANY)
        if wildcard is not None:
            self._walk(wildcard, rest, target, found)
        exact = node.children.get(step.label)
        if exact is not None:
            self._walk(exact, rest + list(reversed(step.children)), target, found)


def consistent(pattern: ProofStep, target: ProofStep, variables: Mapping[str, str]) -> bool:
    """Whether ``pattern`` matches ``target`` with each variable bound to one subtree (equal everywhere)."""
    return match_tree(pattern, target, variables, {})


def match_tree(
    pattern: ProofStep, target: ProofStep, variables: Mapping[str, str], bound: dict[str, ProofStep]
) -> bool:
    """One-way unification of syntax trees: ``pattern``'s variable leaves (labels in ``variables``) bind
    subtrees of ``target``, recorded in ``bound``; a variable bound twice must get equal subtrees."""
    stack = [(pattern, target)]
    while stack:
        p, t = stack.pop()
        variable = variables.get(p.label) if not p.children else None
        if variable is not None:
            previous = bound.get(variable)
            if previous is None:
                bound[variable] = t
            elif not same_tree(previous, t):
                return False
            continue
        if p.label != t.label or len(p.children) != len(t.children):
            return False
        stack.extend(zip(p.children, t.children))
    return True


def same_tree(a: ProofStep, b: ProofStep) -> bool:
    """Structural equality of syntax trees (``ProofStep`` compares by identity)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if x.label != y.label or len(x.children) != len(y.children):
            return False
        stack.extend(zip(x.children, y.children))
    return True
