"""Training examples in the sequence formats of :mod:`core.models.formats`, from proofs.

From one proof tree (a database theorem's, or a generated theorem's with its proof):

- :func:`backward_examples`: one example per essential step (goal = the step's statement, in the
  theorem's context: its hypotheses), target = the step's label and the free variables' substitution;
- :func:`forward_examples`: the tree replayed in post-order as a growing graph of proven statements
  (starting from the hypotheses; a statement already in the graph is not proved again), one example per
  new node: the graph so far and the goal -> the step that adds it, with its full substitution;
- :func:`generator_examples`: the same replay without the goal, ending with ``<STOP>`` once the theorem's
  statement is in the graph;
- :func:`rollout_examples`: the (source, target) pairs of a generator rollout (for policy gradients).

:func:`build_examples` does it for every theorem of a split of a database (default ``train``; only that
split's proofs are read, and no train example poses a valid or test theorem's problem: see its doc).
Every function returns ``(source_ids, target_ids)`` pairs ready for :mod:`core.models.training`; what
cannot be encoded (too long, unknown symbols) is skipped and counted in the codec's counters.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from core.errors import ConfigError, MetamathError
from core.metamath.database import Assertion, Database, Statement
from core.metamath.environment import Tactic, tactic_key
from core.metamath.prooftree import ProofTree, check_tree, tree_from_proof
from core.metamath.splits import SPLITS, SplitRatios, split_theorems
from core.metamath.syntax import Grammar
from core.metamath.verifier import Kernel
from core.models.augment import REJECTED as AUGMENT_REJECTED
from core.models.augment import SKIPPED_DISJOINT as AUGMENT_SKIPPED_DISJOINT
from core.models.augment import Augmentation, Augmenter
from core.models.formats import FORMATS, Codec
from core.models.vocab import STOP

logger = logging.getLogger(__name__)

Example = tuple[list[int], list[int]]
HELD_OUT_STEP = "held_out_step"  # counter: a train step proving a held-out theorem's statement
HELD_OUT_DUPLICATE = "held_out_duplicate"  # counter: a train theorem stating a held-out theorem
AUGMENT_INSTANCES = "augment_instances"  # counter: a substitution instance of a train proof, learned
FOUND_PROOFS = "found_proofs"  # counter: a found proof taking a step the database proof does not, learned
FOUND_KNOWN = "found_known"  # counter: a found proof whose steps the database proof (or an earlier one) has
FOUND_OUTSIDE_SPLIT = "found_outside_split"  # counter: a found proof of a theorem not learned from this split


def _step_assertion(db: Database, theorem: Assertion, node: ProofTree) -> Assertion | None:
    """The assertion a tree node applies; ``None`` for a hypothesis leaf of ``theorem``."""
    if not node.children and node.label in {h.label for h in theorem.essential}:
        return None
    assertion = db.labels.get(node.label)
    if not isinstance(assertion, Assertion):
        raise MetamathError(f"proof tree of {theorem.label} cites {node.label!r}, which is not an assertion",
                            label=theorem.label)  # fmt: skip
    return assertion


def _tactic(node: ProofTree) -> Tactic:
    return Tactic(node.label, {v: tuple(e) for v, e in node.substitution.items()})


def _hypotheses(theorem: Assertion) -> list[Statement]:
    return [h.statement for h in theorem.essential]


def backward_examples(
    codec: Codec, db: Database, theorem: Assertion, tree: ProofTree, *, exclude: AbstractSet[Statement] = frozenset()
) -> list[Example]:
    """One example per essential step of ``tree`` (a proof of ``theorem``), duplicates removed.

    Steps proving a statement of ``exclude`` give no example (counted as ``held_out_step``).
    """
    hypotheses = _hypotheses(theorem)
    examples: list[Example] = []
    seen: set[Statement] = set()
    for node in tree.nodes():
        assertion = _step_assertion(db, theorem, node)
        if assertion is None or node.statement in seen:
            continue
        seen.add(node.statement)
        if node.statement in exclude:
            codec.counters[HELD_OUT_STEP] += 1
            continue
        source = codec.backward_source(node.statement, hypotheses)
        target = codec.backward_target(_tactic(node), assertion) if source is not None else None
        if source is not None and target is not None:
            examples.append((source, target))
    return examples


def replay(db: Database, theorem: Assertion, tree: ProofTree) -> Iterator[tuple[list[Statement], ProofTree, Assertion]]:
    """The forward replay of ``tree``: (nodes proven so far, oldest first, hypotheses excluded; the next
    step; its assertion) for each new statement, in post-order."""
    known = set(_hypotheses(theorem))
    nodes: list[Statement] = []
    for node in tree.nodes():
        assertion = _step_assertion(db, theorem, node)
        if assertion is None or node.statement in known:
            continue
        yield list(nodes), node, assertion
        known.add(node.statement)
        nodes.append(node.statement)


def forward_examples(
    codec: Codec, db: Database, theorem: Assertion, tree: ProofTree, *, exclude: AbstractSet[Statement] = frozenset()
) -> list[Example]:
    """Goal + graph so far -> next step, for each step of the post-order replay of ``tree``.

    A step proving a statement of ``exclude`` gives no example (but its node joins the graph).
    """
    return _graph_examples(codec, db, theorem, tree, theorem.statement, (), exclude, stop=False)


def generator_examples(
    codec: Codec,
    db: Database,
    theorem: Assertion,
    tree: ProofTree,
    conditioning: Sequence[str] = (),
    *,
    exclude: AbstractSet[Statement] = frozenset(),
) -> list[Example]:
    """Graph so far -> next step, then the full graph -> ``<STOP>`` (no goal in the sources)."""
    return _graph_examples(codec, db, theorem, tree, None, conditioning, exclude, stop=True)


def _graph_examples(
    codec: Codec,
    db: Database,
    theorem: Assertion,
    tree: ProofTree,
    goal: Statement | None,
    conditioning: Sequence[str],
    exclude: AbstractSet[Statement],
    *,
    stop: bool,
) -> list[Example]:
    hypotheses = _hypotheses(theorem)
    examples: list[Example] = []
    final: list[Statement] = []
    for before, node, assertion in replay(db, theorem, tree):
        final = [*before, node.statement]
        if node.statement in exclude:
            codec.counters[HELD_OUT_STEP] += 1
            continue
        source = codec.graph_source(goal, hypotheses, before, conditioning=conditioning)
        target = codec.forward_target(_tactic(node), assertion) if source is not None else None
        if source is not None and target is not None:
            examples.append((source, target))
    if stop:
        source = codec.graph_source(None, hypotheses, final, conditioning=conditioning)
        if source is not None:
            examples.append((source, codec.stop_target()))
    return examples


def tree_examples(
    codec: Codec,
    db: Database,
    theorem: Assertion,
    tree: ProofTree,
    fmt: str,
    conditioning: Sequence[str] = (),
    *,
    exclude: AbstractSet[Statement] = frozenset(),
) -> list[Example]:
    """The examples of one format (``backward``, ``forward`` or ``generator``) from one proof tree."""
    if fmt == "backward":
        return backward_examples(codec, db, theorem, tree, exclude=exclude)
    if fmt == "forward":
        return forward_examples(codec, db, theorem, tree, exclude=exclude)
    if fmt == "generator":
        return generator_examples(codec, db, theorem, tree, conditioning, exclude=exclude)
    raise ConfigError(f"unknown example format {fmt!r}; choose among {', '.join(FORMATS)}")


def rollout_examples(
    codec: Codec,
    db: Database,
    hypotheses: Sequence[Statement],
    steps: Sequence[tuple[Tactic, Statement | None]],
    *,
    conditioning: Sequence[str] = (),
) -> list[Example | None]:
    """The (source, target) of each step of a generator rollout, for its policy-gradient loss.

    ``steps`` are the actions in order: a tactic (with its full substitution, or ``STOP_TACTIC``) and the
    statement it added to the graph (``None`` if it added none, e.g. an invalid tactic). The result has
    one entry per step, ``None`` where the step cannot be encoded (counted in ``codec.counters``), so
    that entries line up with the steps' rewards.
    """
    examples: list[Example | None] = []
    nodes: list[Statement] = []
    for tactic, added in steps:
        source = codec.graph_source(None, hypotheses, nodes, conditioning=conditioning)
        if tactic.label == STOP:
            target: list[int] | None = codec.stop_target()
        else:
            assertion = db.labels.get(tactic.label)
            variables = assertion.variables if isinstance(assertion, Assertion) else tuple(tactic.substitution)
            target = codec.target(tactic, [v for v in variables if v in tactic.substitution])
        examples.append((source, target) if source is not None and target is not None else None)
        if added is not None:
            nodes.append(tuple(added))
    return examples


# --- a whole split -----------------------------------------------------------------------------------


def _hypotheses_key(theorem: Assertion) -> tuple[Statement, ...]:
    return tuple(_hypotheses(theorem))


def _problems(theorems: Sequence[Assertion]) -> dict[tuple[Statement, ...], frozenset[Statement]]:
    """Held-out statements, grouped by their hypotheses."""
    grouped: dict[tuple[Statement, ...], set[Statement]] = {}
    for theorem in theorems:
        grouped.setdefault(_hypotheses_key(theorem), set()).add(theorem.statement)
    return {key: frozenset(value) for key, value in grouped.items()}


def _add_examples(
    result: ExampleSet,
    codec: Codec,
    db: Database,
    theorem: Assertion,
    tree: ProofTree,
    formats: Sequence[str],
    conditioning: Sequence[str],
    exclude: AbstractSet[Statement],
) -> None:
    for fmt in formats:
        examples = tree_examples(codec, db, theorem, tree, fmt, conditioning, exclude=exclude)
        result.examples.extend(examples)
        result.by_format[fmt] += len(examples)


def _new_proofs(
    theorem: Assertion,
    proof: ProofTree,
    found: Sequence[ProofTree],
    kernel: Kernel,
    grammar: Callable[[], Grammar],
    counters: Counter[str],
) -> list[ProofTree]:
    """The trees of ``found`` that take a step ``proof`` and the trees before them do not, kernel-checked
    (``grammar`` gives the database's grammar, built on first use)."""
    new: list[ProofTree] = []
    known = [_steps(proof)]
    for tree in found:
        steps = _steps(tree)
        if any(steps <= seen for seen in known):
            counters[FOUND_KNOWN] += 1
            continue
        try:
            check_tree(kernel.db, grammar(), theorem, tree, kernel)
        except MetamathError as error:
            raise MetamathError(f"a found proof of {theorem.label} does not verify: {error.reason}",
                                label=theorem.label) from error  # fmt: skip
        counters[FOUND_PROOFS] += 1
        known.append(steps)
        new.append(tree)
    return new


def _steps(tree: ProofTree) -> frozenset[tuple[Statement, tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]]]:
    """What a proof does, step by step: each node's statement and tactic (assertion and substitution)."""
    return frozenset((node.statement, tactic_key(_tactic(node))) for node in tree.nodes())


def _add_instances(
    result: ExampleSet,
    augmenter: Augmenter,
    codec: Codec,
    theorem: Assertion,
    tree: ProofTree,
    formats: Sequence[str],
    conditioning: Sequence[str],
    held_out: Mapping[tuple[Statement, ...], frozenset[Statement]],
) -> None:
    """The examples of substitution instances of ``theorem``'s proof, under the held-out hygiene."""
    drawn = augmenter.instances(theorem, tree)
    if drawn.rejected:
        result.counters[AUGMENT_REJECTED] += drawn.rejected
    if drawn.skipped_disjoint:
        result.counters[AUGMENT_SKIPPED_DISJOINT] += 1
    for instance, instance_tree in drawn.instances:
        exclude = held_out.get(_hypotheses_key(instance), frozenset())
        if instance.statement in exclude:
            result.counters[HELD_OUT_DUPLICATE] += 1
            continue
        result.counters[AUGMENT_INSTANCES] += 1
        _add_examples(result, codec, augmenter.db, instance, instance_tree, formats, conditioning, exclude)


@dataclass
class ExampleSet:
    """Examples of a database split: the pairs, how many per format, what was skipped, which theorems."""

    examples: list[Example] = field(default_factory=list)
    by_format: dict[str, int] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    theorems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build_examples(
    db: Database,
    codec: Codec,
    *,
    formats: Sequence[str] = ("backward",),
    split: str = "train",
    ratios: SplitRatios = SplitRatios(),
    salt: str = "",
    conditioning: Sequence[str] = (),
    kernel: Kernel | None = None,
    hygiene: bool = True,
    augmentation: Augmentation | None = None,
    found: Mapping[str, Sequence[ProofTree]] | None = None,
) -> ExampleSet:
    """The examples of ``formats`` from the proofs of the ``split`` theorems of ``db``, in database order.

    Test hygiene (``split="train"`` and ``hygiene``): a *held-out problem* is the statement and hypotheses
    of a valid or test theorem. A train theorem that poses one (a duplicate statement) is skipped
    (``held_out_duplicate``); a step of a train proof that proves a held-out statement under the same
    hypotheses gives no example in any format (``held_out_step``). Held-out proofs are never read.

    A proof that does not replay (it should not happen in a verified database) is skipped and counted as
    ``bad_proof``. Encoding failures are counted in the returned counters (the codec's counts during this
    call).

    ``augmentation`` adds, after each theorem's examples, those of kernel-checked substitution instances of
    its proof (:mod:`core.models.augment`; counted as ``augment_instances``), under the same hygiene: an
    instance stating a held-out problem is dropped (``held_out_duplicate``), and its steps that prove one
    give no example.

    ``found``: proofs a search found (label -> trees, e.g. from :func:`core.search.evaluation.found_proofs`).
    Each one of a theorem learned here that takes a step (statement, assertion, substitution) its database
    proof does not is verified by the kernel and learned as a second proof of the theorem, instances and
    hygiene included (counted as ``found_proofs``; the others as ``found_known``, and proofs of theorems not
    learned from this split, held-out ones included, as ``found_outside_split``). One that does not verify
    is refused (:class:`MetamathError` naming the theorem).
    """
    found = found or {}
    grammar = functools.cache(functools.partial(Grammar, db))  # built only to check a found proof
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"unknown example format(s) {unknown or formats!r}; choose among {', '.join(FORMATS)}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    start = time.perf_counter()
    kernel = kernel or Kernel(db)
    before = Counter(codec.counters)
    result = ExampleSet(by_format={fmt: 0 for fmt in formats})
    splits = split_theorems(db, ratios, salt)
    held_out = _problems(splits["valid"] + splits["test"]) if split == "train" and hygiene else {}
    augmenter = Augmenter(db, augmentation, kernel=kernel) if augmentation and augmentation.copies else None
    for theorem in splits[split]:
        exclude = held_out.get(_hypotheses_key(theorem), frozenset())
        if theorem.statement in exclude:
            result.counters[HELD_OUT_DUPLICATE] += 1
            continue
        try:
            tree = tree_from_proof(db, theorem, kernel)
        except MetamathError as error:
            result.counters["bad_proof"] += 1
            logger.warning("examples: skipped %s, whose proof does not replay (%s)", theorem.label, error)
            continue
        result.theorems.append(theorem.label)
        more = found.get(theorem.label, ())
        proofs = [
            tree,
            *(_new_proofs(theorem, tree, more, kernel, grammar, result.counters) if more else ()),
        ]
        for proof in proofs:
            _add_examples(result, codec, db, theorem, proof, formats, conditioning, exclude)
            if augmenter is not None:
                _add_instances(result, augmenter, codec, theorem, proof, formats, conditioning, held_out)
    if outside := len(set(found) - set(result.theorems)):
        result.counters[FOUND_OUTSIDE_SPLIT] += outside
    result.counters.update(codec.counters - before)
    result.seconds = time.perf_counter() - start
    logger.info(
        "examples: %d from %d %s theorems of %s in %.1f s (%s; skipped or capped: %s)", len(result.examples),
        len(result.theorems), split, db.path, result.seconds,
        ", ".join(f"{fmt} {n}" for fmt, n in result.by_format.items()), dict(result.counters) or "none",
    )  # fmt: skip
    return result
