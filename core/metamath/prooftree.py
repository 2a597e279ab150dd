"""Proof trees over essential steps: the form in which models read, write and learn proofs.

A :class:`ProofTree` node applies an assertion under a substitution of its mandatory variables; its
children prove the assertion's essential hypotheses, in frame order. Leaves are the theorem's own
essential hypotheses (or hypothesis-free assertions). Syntax steps (``wff``/``class`` proofs and floating
hypotheses) are not stored: :func:`full_proof` rebuilds them from the substitution with the grammar.

Conversions: :func:`tree_from_proof` (a database proof -> tree, by replaying it through the kernel's
inference rule), :func:`full_proof` / :func:`proof_tokens` (tree -> complete normal or compressed proof),
and :func:`check_tree` (tree -> verified by the kernel, or :class:`~core.errors.MMVerificationError`).
:func:`make_theorem` builds the assertion for a statement that is not in the database (a goal, a
generated theorem), with its frame computed as the reader would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import GrammarError, MetamathError, MMVerificationError
from core.metamath.database import Assertion, Database, Hypothesis, Statement, disjoint_pair
from core.metamath.proof import SAVE, ProofStep, compressed_proof, decode_proof, normal_proof
from core.metamath.syntax import Grammar, floating_context
from core.metamath.verifier import Kernel, RuleError
from core.metamath.writer import proof_lines

Substitution = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, eq=False, slots=True)
class ProofTree:
    """One essential step: ``label`` applied under ``substitution``, proving ``statement``."""

    label: str
    substitution: Substitution
    children: tuple[ProofTree, ...]
    statement: Statement

    def nodes(self) -> Iterator[ProofTree]:
        """Every node, children before parents (shared subtrees once per occurrence)."""
        stack: list[tuple[ProofTree, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded or not node.children:
                yield node
                continue
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))

    @property
    def size(self) -> int:
        """Number of essential steps (hypothesis leaves included)."""
        return sum(1 for _ in self.nodes())

    @property
    def depth(self) -> int:
        depths: dict[int, int] = {}
        for node in self.nodes():
            depths[id(node)] = 1 + max((depths[id(c)] for c in node.children), default=0)
        return depths[id(self)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form: statements and substitutions as space-separated symbols (built without recursion:
        any depth; a subtree shared in memory is one dict, written out at each place)."""
        built: dict[int, dict[str, Any]] = {}
        for node in _distinct_post_order(self):
            built[id(node)] = {
                "label": node.label,
                "substitution": {v: " ".join(e) for v, e in node.substitution.items()},
                "statement": " ".join(node.statement),
                "children": [built[id(child)] for child in node.children],
            }
        return built[id(self)]

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ProofTree:
        """Rebuild a tree from :meth:`to_json` output (check it with :func:`check_tree` before trusting it).

        Built without recursion (any depth); anything malformed raises :class:`MetamathError`.
        """
        try:
            return _tree_from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise MetamathError(f"malformed proof tree record: {error!r}") from None


def _distinct_post_order(root: ProofTree) -> list[ProofTree]:
    """Every distinct node below ``root`` (itself included), children before parents, each once."""
    seen: set[int] = set()
    order: list[ProofTree] = []
    stack: list[tuple[ProofTree, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))
    return order


def _tree_from_json(data: Mapping[str, Any]) -> ProofTree:
    """:meth:`ProofTree.from_json` on an explicit stack (raises KeyError, TypeError, ... on malformed data)."""
    built: list[ProofTree] = []  # finished subtrees, the children of the node being finished on top
    stack: list[tuple[Mapping[str, Any], int]] = [(data, -1)]  # (record, -1: to expand; else its child count)
    while stack:
        record, count = stack.pop()
        if count < 0:
            children = list(record["children"])
            stack.append((record, len(children)))
            stack.extend((child, -1) for child in reversed(children))
            continue
        children_trees = tuple(built[len(built) - count :]) if count else ()
        del built[len(built) - count :]
        built.append(
            ProofTree(
                label=str(record["label"]),
                substitution={str(v): tuple(str(e).split()) for v, e in dict(record["substitution"]).items()},
                children=children_trees,
                statement=tuple(str(record["statement"]).split()),
            )
        )
    return built[0]


def hypothesis_leaf(hypothesis: Hypothesis) -> ProofTree:
    return ProofTree(hypothesis.label, {}, (), hypothesis.statement)


# --- Theorems that are not in the database --------------------------------------------------------


def make_theorem(
    db: Database,
    label: str,
    statement: Statement,
    essential: Sequence[Statement] = (),
    disjoint: Iterable[tuple[str, str]] = (),
    *,
    hypothesis_labels: Sequence[str] | None = None,
    before: Assertion | None = None,
) -> Assertion:
    """A ``$p`` for ``statement`` with hypotheses ``essential``, placed at the end of ``db``.

    Or just before the assertion ``before`` (its context is then what a proof of ``before`` could use).
    Variables are typed by the outermost floating hypotheses (or ``before``'s context); a variable typed
    only inside some block of the database gets that block's floating hypothesis, added to the context.
    The frame is computed as the reader computes it. The result can be checked like a database theorem.
    """
    context = list(before.context_floating if before is not None else db.global_floating)
    floating = floating_context(context)
    names = hypothesis_labels or [f"{label}.{i + 1}" for i in range(len(essential))]
    hypotheses = [Hypothesis(name, "e", tuple(s), db.path, 0) for name, s in zip(names, essential)]
    mandatory: set[str] = set()
    for expression in [statement, *essential]:
        for symbol in expression:
            if symbol in db.variables:
                if symbol not in floating:
                    typing = db.floating_hypothesis(symbol) if before is None else None
                    if typing is None:
                        raise MetamathError(f"variable {symbol!r} has no floating hypothesis here", label=label)
                    floating[symbol] = typing
                    context.append(typing)
                mandatory.add(symbol)
    order = {h.label: i for i, h in enumerate(context)}
    frame_floating = sorted((floating[v] for v in mandatory), key=lambda h: order[h.label])
    pairs = frozenset(disjoint_pair(x, y) for x, y in disjoint if x != y)
    return Assertion(
        label=label,
        kind="p",
        statement=tuple(statement),
        hypotheses=tuple(frame_floating) + tuple(hypotheses),
        disjoint=frozenset(p for p in pairs if p[0] in mandatory and p[1] in mandatory),
        number=before.number if before is not None else len(db.assertions),
        file=db.path,
        line=0,
        proof=None,
        context_floating=tuple(context),
        context_disjoint=pairs | (before.context_disjoint if before is not None else db.global_disjoint),
    )


# --- Database proof -> tree -----------------------------------------------------------------------


def tree_from_proof(db: Database, theorem: Assertion, kernel: Kernel | None = None) -> ProofTree:
    """The essential-step tree of a database theorem's (complete) proof, checked while replayed."""
    kernel = kernel or Kernel(db)
    if theorem.typecode != db.provable_typecode:
        raise MetamathError(
            f"{theorem.label} proves a {theorem.typecode!r} expression: it is a syntax theorem, "
            "whose proof is its parse (see syntax_proof)",
            file=theorem.file,
            label=theorem.label,
        )
    program = decode_proof(db, theorem)
    if program.is_incomplete:
        raise MMVerificationError(
            "proof is incomplete (contains `?`)", file=theorem.file, line=theorem.line, label=theorem.label
        )
    targets = [db.labels[label] for label in program.labels]
    stack: list[tuple[Statement, ProofTree | None]] = []
    saved: list[tuple[Statement, ProofTree | None]] = []
    for step, op in enumerate(program.ops, 1):
        if op == SAVE:
            saved.append(stack[-1])
        elif op >= len(targets):
            stack.append(saved[op - len(targets)])
        elif isinstance(target := targets[op], Hypothesis):
            stack.append((target.statement, hypothesis_leaf(target) if target.kind == "e" else None))
        else:
            stack.append(_replay(kernel, theorem, target, stack, step))
    if len(stack) != 1 or stack[0][0] != theorem.statement or stack[0][1] is None:
        raise MMVerificationError(
            "proof does not prove the statement", file=theorem.file, line=theorem.line, label=theorem.label
        )
    return stack[0][1]


def _replay(
    kernel: Kernel, theorem: Assertion, target: Assertion, stack: list[tuple[Statement, ProofTree | None]], step: int
) -> tuple[Statement, ProofTree | None]:
    arity = len(target.hypotheses)
    if len(stack) < arity:
        raise MMVerificationError(
            f"proof step {step}: stack underflow at {target.label}",
            file=theorem.file,
            line=theorem.line,
            label=theorem.label,
        )
    arguments = stack[len(stack) - arity :]
    del stack[len(stack) - arity :]
    try:
        conclusion, substitution = kernel.apply(target, [a[0] for a in arguments], theorem.context_disjoint)
    except RuleError as error:
        raise MMVerificationError(
            f"proof step {step}: {error}", file=theorem.file, line=theorem.line, label=theorem.label
        ) from None
    if target.typecode != kernel.db.provable_typecode:  # a syntax step (axiom or syntax theorem)
        return conclusion, None
    children: list[ProofTree] = []
    for (_, child), hypothesis in zip(arguments, target.hypotheses):
        if hypothesis.kind != "e":
            continue
        if child is None:
            raise MMVerificationError(
                f"proof step {step}: an essential hypothesis of {target.label} is proved by syntax steps only",
                file=theorem.file,
                line=theorem.line,
                label=theorem.label,
            )
        children.append(child)
    return conclusion, ProofTree(target.label, substitution, tuple(children), conclusion)


# --- Tree -> complete proof -----------------------------------------------------------------------


def full_proof(db: Database, grammar: Grammar, theorem: Assertion, tree: ProofTree) -> ProofStep:
    """The complete proof (syntax steps rebuilt) of ``tree`` as a proof of ``theorem``."""
    floating = floating_context(theorem.context_floating or theorem.hypotheses)
    own = {h.label for h in theorem.essential}
    parsed: dict[tuple[str, tuple[str, ...]], ProofStep] = {}
    built: dict[int, ProofStep] = {}

    def syntax(typecode: str, expression: tuple[str, ...]) -> ProofStep:
        key = (typecode, expression)
        if key not in parsed:
            parsed[key] = grammar.parse(typecode, expression, floating)
        return parsed[key]

    for node in tree.nodes():
        if id(node) in built:
            continue
        if node.label in own and not node.children:
            built[id(node)] = ProofStep(node.label)
            continue
        assertion = db.labels.get(node.label)
        if not isinstance(assertion, Assertion):
            raise MMVerificationError(
                f"proof tree cites {node.label!r}, which is not an assertion here", label=theorem.label
            )
        children = iter(node.children)
        steps = []
        for hypothesis in assertion.hypotheses:
            if hypothesis.kind == "f":
                expression = node.substitution.get(hypothesis.variable)
                if expression is None:
                    raise MMVerificationError(
                        f"proof tree step {node.label} lacks a substitution for {hypothesis.variable!r}",
                        label=theorem.label,
                    )
                steps.append(syntax(hypothesis.typecode, tuple(expression)))
            else:
                child = next(children, None)
                if child is None:
                    raise MMVerificationError(f"proof tree step {node.label} has too few children", label=theorem.label)
                steps.append(built[id(child)])
        if next(children, None) is not None:
            raise MMVerificationError(f"proof tree step {node.label} has too many children", label=theorem.label)
        built[id(node)] = ProofStep(node.label, tuple(steps))
    return built[id(tree)]


def syntax_proof(grammar: Grammar, theorem: Assertion) -> ProofStep:
    """The proof of a syntax theorem (``weq $p wff x = y``): the parse of its statement."""
    return grammar.parse(theorem.typecode, theorem.statement[1:], floating_context(theorem.context_floating))


def proof_tokens(db: Database, grammar: Grammar, theorem: Assertion, tree: ProofTree, *, compressed: bool) -> list[str]:
    """The proof of ``tree`` as ``.mm`` proof tokens (what goes between ``$=`` and ``$.``)."""
    root = full_proof(db, grammar, theorem, tree)
    return compressed_proof(theorem, root) if compressed else normal_proof(root)


def check_tree(
    db: Database, grammar: Grammar, theorem: Assertion, tree: ProofTree, kernel: Kernel | None = None
) -> list[str]:
    """Verify ``tree`` as a proof of ``theorem`` with the kernel; return the normal proof tokens.

    ``theorem`` may be a database theorem or one made by :func:`make_theorem`. Raises
    :class:`MMVerificationError` (an ill-formed substitution included).
    """
    try:
        tokens = proof_tokens(db, grammar, theorem, tree, compressed=False)
    except GrammarError as error:
        raise MMVerificationError(f"ill-formed substitution: {error.reason}", label=theorem.label) from None
    (kernel or Kernel(db)).verify(theorem.with_proof(tokens))
    return tokens


def theorem_text(db: Database, theorem: Assertion, proof: Sequence[str], comment: str | None = None) -> str:
    """A self-contained ``${ ... $}`` block declaring ``theorem`` (its ``$d``, hypotheses and proof).

    Appended to the end of ``db``'s file, the block verifies (with :func:`make_theorem` theorems).
    """
    lines = ["${"]
    if comment:
        lines.append(f"  $( {comment} $)")
    for x, y in sorted(theorem.context_disjoint - db.global_disjoint):
        lines.append(f"  $d {x} {y} $.")
    for hypothesis in theorem.essential:
        lines.append(f"  {hypothesis.label} $e {' '.join(hypothesis.statement)} $.")
    lines.append(f"  {theorem.label} $p {' '.join(theorem.statement)} $=")
    lines.extend(proof_lines(proof, indent=4))
    lines.append("$}")
    return "\n".join(lines) + "\n"
