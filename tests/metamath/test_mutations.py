"""Mutation test: broken variants of a few hundred real proofs are all rejected.

From prop.mm (every third theorem, in file order: deterministic) each proof is mutated, in its normal
(expanded) form: two labels swapped, a step dropped, a step duplicated, two hypotheses of an application
swapped, an assertion replaced by another earlier one of the same arity; and in its compressed form: a
step letter changed, two steps swapped, a step dropped or duplicated, a `Z` added or removed, two listed
labels swapped. A mutant equal to the original proof is not counted.

Every verdict of the kernel is compared with an independent reference checker written here (a plain stack
machine, no shared code with the kernel): a mutant the kernel rejects must be invalid for the reference
too, and a mutant the kernel accepts (it proves the same statement validly: rare) must be valid for the
reference and, where Debian's ``metamath`` is installed, for it too. Such survivors are counted and
reported, not hidden.

``$d`` mutations use set.mm up to ``ax-ext`` (read with ``stop_at``): for every theorem there with
disjoint-variable conditions, each pair is removed from its context in turn; verification must fail
exactly when the reference finds the pair needed by the proof.
"""

from __future__ import annotations

import dataclasses
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.errors import MetamathError
from core.metamath import Assertion, Database, Hypothesis, Kernel, read_database
from core.metamath.proof import SAVE, decode_proof

SAMPLE_EVERY = 3
MUTANTS_PER_KIND = 2
SEED = 20261125
PREDICATE_STOP = "ax-ext"

Statement = tuple[str, ...]


# --- an independent reference checker ---------------------------------------------------------------


class Invalid(Exception):
    """The reference checker's verdict on a bad proof."""


def reference_check(db: Database, theorem: Assertion, proof: tuple[str, ...]) -> set[tuple[str, str]]:
    """Check ``proof`` of ``theorem`` from first principles; return the disjoint pairs it needs.

    Raises :class:`Invalid` when the proof does not prove the theorem's statement.
    """
    needed: set[tuple[str, str]] = set()
    stack: list[Statement] = []
    saved: list[Statement] = []
    frame = [h.label for h in theorem.hypotheses]

    def push_label(label: str) -> None:
        target = db.labels.get(label)
        if isinstance(target, Hypothesis):
            active = any(h is target for h in theorem.hypotheses) or any(h is target for h in theorem.context_floating)
            if not active:
                raise Invalid(f"inactive hypothesis {label}")
            stack.append(target.statement)
            return
        if target is None or target.number >= theorem.number:
            raise Invalid(f"{label} cannot be cited")
        arity = len(target.hypotheses)
        if len(stack) < arity:
            raise Invalid("stack underflow")
        arguments = stack[len(stack) - arity :]
        del stack[len(stack) - arity :]
        substitution: dict[str, Statement] = {}
        for hypothesis, argument in zip(target.hypotheses, arguments):
            if hypothesis.kind == "f":
                if argument[0] != hypothesis.statement[0]:
                    raise Invalid("typecode")
                substitution[hypothesis.statement[1]] = argument[1:]

        def substituted(statement: Statement) -> Statement:
            return tuple(t for s in statement for t in substitution.get(s, (s,)))

        for hypothesis, argument in zip(target.hypotheses, arguments):
            if hypothesis.kind == "e" and substituted(hypothesis.statement) != argument:
                raise Invalid("essential hypothesis")
        for x, y in target.disjoint:
            for a in (s for s in substitution[x] if s in db.variables):
                for b in (s for s in substitution[y] if s in db.variables):
                    if a == b:
                        raise Invalid("$d with one variable on both sides")
                    pair = (min(a, b), max(a, b))
                    if pair not in theorem.context_disjoint:
                        raise Invalid(f"$d {a} {b} not in effect")
                    needed.add(pair)
        stack.append(substituted(target.statement))

    if proof and proof[0] == "(":
        if ")" not in proof:
            raise Invalid("label list not closed")
        closing = proof.index(")")
        listed = list(proof[1:closing])
        if set(listed) & set(frame) or len(set(listed)) != len(listed):
            raise Invalid("bad label list")
        labels = frame + listed
        number = 0
        can_save = False  # `Z` may only follow an assertion step (as the reference verifier metamath requires)
        for letter in "".join(proof[closing + 1 :]):
            if "U" <= letter <= "Y":
                number = number * 5 + ord(letter) - ord("U") + 1
                can_save = False
            elif "A" <= letter <= "T":
                number = number * 20 + ord(letter) - ord("A") + 1
                if number <= len(labels):
                    push_label(labels[number - 1])
                    can_save = not isinstance(db.labels[labels[number - 1]], Hypothesis)
                elif number - len(labels) <= len(saved):
                    stack.append(saved[number - len(labels) - 1])
                    can_save = False
                else:
                    raise Invalid("reference to an unsaved step")
                number = 0
            elif letter == "Z" and can_save:
                saved.append(stack[-1])
                can_save = False
            else:
                raise Invalid(f"letter {letter!r}")
        if number:
            raise Invalid("unfinished number")
    else:
        for label in proof:
            push_label(label)
    if stack != [theorem.statement]:
        raise Invalid("does not prove the statement")
    return needed


# --- proofs in normal form and as trees --------------------------------------------------------------


def arity(db: Database, label: str) -> int:
    target = db.labels[label]
    return 0 if isinstance(target, Hypothesis) else len(target.hypotheses)


def normal_form(db: Database, theorem: Assertion) -> list[str]:
    """The theorem's proof as a normal (uncompressed) proof, saved steps written out."""
    program = decode_proof(db, theorem)
    stack: list[list[str]] = []
    saved: list[list[str]] = []
    for op in program.ops:
        if op >= len(program.labels):
            stack.append(saved[op - len(program.labels)])
        elif op >= 0:
            label = program.labels[op]
            n = arity(db, label)
            step = [token for part in stack[len(stack) - n :] for token in part] + [label]
            del stack[len(stack) - n :]
            stack.append(step)
        elif op == SAVE:
            saved.append(stack[-1])
    return stack[0]


def expanded(db: Database, theorem: Assertion, proof: tuple[str, ...]) -> tuple[str, ...] | None:
    """The normal proof a (possibly mutated) proof stands for, or None if it cannot even be read.

    Two proofs with the same expansion are the same proof written differently (an unused `Z` added).
    """
    if proof[:1] != ("(",):
        return proof
    if ")" not in proof:
        return None
    closing = proof.index(")")
    labels = [h.label for h in theorem.hypotheses] + list(proof[1:closing])
    stack: list[list[str]] = []
    saved: list[list[str]] = []
    for step in _STEP.findall("".join(proof[closing + 1 :])):
        if step == "Z":
            if not stack:
                return None
            saved.append(stack[-1])
            continue
        number = 0
        for letter in step[:-1]:
            number = number * 5 + ord(letter) - ord("U") + 1
        number = number * 20 + ord(step[-1]) - ord("A") + 1
        if number > len(labels):
            if number - len(labels) > len(saved):
                return None
            stack.append(saved[number - len(labels) - 1])
            continue
        label = labels[number - 1]
        n = arity(db, label) if label in db.labels else 0
        if len(stack) < n:
            return None
        step_tokens = [token for part in stack[len(stack) - n :] for token in part] + [label]
        del stack[len(stack) - n :]
        stack.append(step_tokens)
    return tuple(token for part in stack for token in part)


@dataclasses.dataclass
class Node:
    label: str
    children: list[Node]

    def tokens(self) -> list[str]:
        return [token for child in self.children for token in child.tokens()] + [self.label]


def tree_of(db: Database, tokens: list[str]) -> Node:
    stack: list[Node] = []
    for label in tokens:
        n = arity(db, label)
        children = stack[len(stack) - n :] if n else []
        del stack[len(stack) - n :]
        stack.append(Node(label, children))
    return stack[0]


def nodes(root: Node) -> Iterator[Node]:
    yield root
    for child in root.children:
        yield from nodes(child)


# --- mutants ---------------------------------------------------------------------------------------

Mutator = Callable[[random.Random], "list[str] | None"]


def normal_mutators(db: Database, theorem: Assertion, tokens: list[str]) -> dict[str, Mutator]:
    earlier_by_arity: dict[int, list[str]] = {}
    for assertion in db.assertions[: theorem.number]:
        earlier_by_arity.setdefault(len(assertion.hypotheses), []).append(assertion.label)

    def swap_labels(rng: random.Random) -> list[str] | None:
        if len(tokens) < 2:
            return None
        i, j = rng.sample(range(len(tokens)), 2)
        if tokens[i] == tokens[j]:
            return None
        mutant = list(tokens)
        mutant[i], mutant[j] = mutant[j], mutant[i]
        return mutant

    def drop_step(rng: random.Random) -> list[str]:
        i = rng.randrange(len(tokens))
        return tokens[:i] + tokens[i + 1 :]

    def duplicate_step(rng: random.Random) -> list[str]:
        i = rng.randrange(len(tokens))
        return tokens[: i + 1] + tokens[i:]

    def swap_hypotheses(rng: random.Random) -> list[str] | None:
        root = tree_of(db, tokens)
        candidates = [n for n in nodes(root) if len(n.children) >= 2]
        if not candidates:
            return None
        node = rng.choice(candidates)
        i, j = rng.sample(range(len(node.children)), 2)
        node.children[i], node.children[j] = node.children[j], node.children[i]
        return root.tokens()

    def replace_assertion(rng: random.Random) -> list[str] | None:
        positions = [i for i, t in enumerate(tokens) if not isinstance(db.labels[t], Hypothesis)]
        if not positions:
            return None
        i = rng.choice(positions)
        others = [label for label in earlier_by_arity.get(arity(db, tokens[i]), []) if label != tokens[i]]
        if not others:
            return None
        return [*tokens[:i], rng.choice(others), *tokens[i + 1 :]]

    return {
        "swap two labels": swap_labels,
        "drop a step": drop_step,
        "duplicate a step": duplicate_step,
        "swap two hypotheses of an application": swap_hypotheses,
        "replace an assertion by one of the same arity": replace_assertion,
    }


_STEP = re.compile(r"[U-Y]*[A-T]|Z")


def encode(number: int) -> str:
    number -= 1
    letters = chr(ord("A") + number % 20)
    number //= 20
    while number:
        number -= 1
        letters = chr(ord("U") + number % 5) + letters
        number //= 5
    return letters


def compressed_mutators(theorem: Assertion) -> dict[str, Mutator]:
    proof = list(theorem.proof or ())
    closing = proof.index(")")
    listed = proof[1:closing]
    steps = _STEP.findall("".join(proof[closing + 1 :]))
    highest = len(theorem.hypotheses) + len(listed) + steps.count("Z")

    def rebuilt(new_steps: list[str], new_listed: list[str] = listed) -> list[str]:
        return ["(", *new_listed, ")", "".join(new_steps)]

    def change_step(rng: random.Random) -> list[str] | None:
        i = rng.choice([k for k, s in enumerate(steps) if s != "Z"])
        return rebuilt([*steps[:i], encode(rng.randint(1, highest)), *steps[i + 1 :]])

    def swap_steps(rng: random.Random) -> list[str] | None:
        if len(steps) < 2:
            return None
        i, j = rng.sample(range(len(steps)), 2)
        mutant = list(steps)
        mutant[i], mutant[j] = mutant[j], mutant[i]
        return rebuilt(mutant)

    def drop_step(rng: random.Random) -> list[str]:
        i = rng.randrange(len(steps))
        return rebuilt(steps[:i] + steps[i + 1 :])

    def duplicate_step(rng: random.Random) -> list[str]:
        i = rng.randrange(len(steps))
        return rebuilt(steps[: i + 1] + steps[i:])

    def toggle_save(rng: random.Random) -> list[str]:
        i = rng.randrange(len(steps))
        if steps[i] == "Z":
            return rebuilt(steps[:i] + steps[i + 1 :])
        return rebuilt([*steps[: i + 1], "Z", *steps[i + 1 :]])

    def swap_listed(rng: random.Random) -> list[str] | None:
        if len(listed) < 2:
            return None
        i, j = rng.sample(range(len(listed)), 2)
        mutant = list(listed)
        mutant[i], mutant[j] = mutant[j], mutant[i]
        return rebuilt(steps, mutant)

    return {
        "letters: change a step": change_step,
        "letters: swap two steps": swap_steps,
        "letters: drop a step": drop_step,
        "letters: duplicate a step": duplicate_step,
        "letters: add or remove a Z": toggle_save,
        "label list: swap two labels": swap_listed,
    }


@dataclasses.dataclass
class Outcome:
    kind: str
    theorem: Assertion
    proof: tuple[str, ...]
    accepted: bool
    equivalent: bool  # the same proof as the original, written differently


def mutants(db: Database, theorem: Assertion, rng: random.Random) -> Iterator[tuple[str, tuple[str, ...]]]:
    tokens = normal_form(db, theorem)
    original_compressed = tuple(theorem.proof or ())
    original_normal = tuple(tokens)
    families = [(normal_mutators(db, theorem, tokens), original_normal)]
    if original_compressed[:1] == ("(",):
        original_compressed = (
            "(",
            *original_compressed[1 : original_compressed.index(")") + 1],
            "".join(original_compressed[original_compressed.index(")") + 1 :]),
        )
        families.append((compressed_mutators(theorem), original_compressed))
    for mutators, original in families:
        for kind, mutate in mutators.items():
            seen: set[tuple[str, ...]] = set()
            for _ in range(MUTANTS_PER_KIND * 3):  # a few tries for mutators that may find nothing
                if len(seen) == MUTANTS_PER_KIND:
                    break
                mutant = mutate(rng)
                if mutant is None or tuple(mutant) == original or tuple(mutant) in seen:
                    continue
                seen.add(tuple(mutant))
                yield kind, tuple(mutant)


# --- the tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prop_db(prop_mm: Path) -> Database:
    return read_database(prop_mm)


def test_reference_checker_accepts_the_originals_and_their_normal_forms(prop_db: Database) -> None:
    for theorem in prop_db.theorems()[::SAMPLE_EVERY]:
        reference_check(prop_db, theorem, theorem.proof or ())
        normal = tuple(normal_form(prop_db, theorem))
        reference_check(prop_db, theorem, normal)
        Kernel(prop_db).verify(theorem.with_proof(normal))


def test_every_mutant_is_rejected_unless_it_is_a_valid_proof(
    prop_db: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    kernel = Kernel(prop_db)
    rng = random.Random(SEED)
    outcomes: list[Outcome] = []
    disagreements: list[str] = []
    sample = prop_db.theorems()[::SAMPLE_EVERY]
    for theorem in sample:
        original = tuple(normal_form(prop_db, theorem))
        for kind, proof in mutants(prop_db, theorem, rng):
            mutated = theorem.with_proof(proof)
            try:
                kernel.verify(mutated)
                accepted = True
            except MetamathError:
                accepted = False
            try:
                reference_check(prop_db, theorem, proof)
                valid = True
            except Invalid:
                valid = False
            if accepted != valid:
                disagreements.append(
                    f"{theorem.label} [{kind}] kernel {'accepts' if accepted else 'rejects'}: {' '.join(proof)}"
                )
            equivalent = expanded(prop_db, theorem, proof) == original
            outcomes.append(Outcome(kind, theorem, proof, accepted, equivalent))
    assert not disagreements, disagreements[:5]

    real = [o for o in outcomes if not o.equivalent]
    survivors = [o for o in real if o.accepted]
    _confirm_with_metamath(request, tmp_path, survivors)
    by_kind = Counter(o.kind for o in real)
    survived = Counter(o.kind for o in survivors)
    lines = [
        f"mutation test: {len(sample)} prop.mm proofs, {len(real)} mutants that differ as proofs "
        f"({len(outcomes) - len(real)} more were the same proof rewritten, e.g. an unused Z added): "
        f"{len(real) - len(survivors)} rejected, {len(survivors)} still valid proofs of the same statement "
        f"(each confirmed by the reference checker{' and metamath' if shutil.which('metamath') else ''})"
    ]
    lines += [f"  {kind}: {count} mutants, {survived[kind]} still valid" for kind, count in sorted(by_kind.items())]
    print("\n" + "\n".join(lines))
    assert len(sample) >= 300 and len(real) >= 5000
    assert len(survivors) <= len(real) // 200, "far more valid mutants than expected: check the mutators"
    assert set(by_kind) == set(normal_mutators(prop_db, sample[0], normal_form(prop_db, sample[0]))) | set(
        compressed_mutators(sample[0])
    )


def _confirm_with_metamath(request: pytest.FixtureRequest, tmp_path: Path, survivors: list[Outcome]) -> None:
    """Every surviving mutant must also pass the reference verifier ``metamath`` (skipped if absent)."""
    if not survivors:
        return
    try:
        exe = request.getfixturevalue("metamath_exe")
        source = request.getfixturevalue("prop_mm").read_text()
    except pytest.skip.Exception:
        return
    rounds: list[dict[str, Outcome]] = []
    for outcome in survivors:  # one mutant per theorem and file
        for batch in rounds:
            if outcome.theorem.label not in batch:
                batch[outcome.theorem.label] = outcome
                break
        else:
            rounds.append({outcome.theorem.label: outcome})
    for number, batch in enumerate(rounds):
        text = source
        for label, outcome in batch.items():
            text = _with_proof(text, label, outcome.proof)
        path = tmp_path / f"survivors{number}.mm"
        path.write_text(text)
        done = subprocess.run(
            [exe, f'read "{path}"', "verify proof *", "exit"], capture_output=True, text=True, timeout=120
        )
        assert "All proofs in the database were verified" in done.stdout, done.stdout[-3000:]


def _with_proof(text: str, label: str, proof: tuple[str, ...]) -> str:
    match = re.search(rf"(^|\s){re.escape(label)}\s+\$p\s.*?\$=(.*?)\$\.", text, re.S)
    assert match, label
    return text[: match.start(2)] + " " + " ".join(proof) + " " + text[match.end(2) :]


# --- $d ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predicate_db(set_mm: Path) -> Database:
    return read_database(set_mm, stop_at=PREDICATE_STOP)


def test_removing_a_needed_disjoint_condition_fails_verification(predicate_db: Database) -> None:
    kernel = Kernel(predicate_db)
    theorems = [t for t in predicate_db.theorems() if t.context_disjoint]
    removed = needed_total = 0
    for theorem in theorems:
        needed = reference_check(predicate_db, theorem, theorem.proof or ())
        assert needed <= theorem.context_disjoint
        for pair in sorted(theorem.context_disjoint):
            mutated = theorem._replace(context_disjoint=theorem.context_disjoint - {pair})
            removed += 1
            if pair in needed:
                needed_total += 1
                with pytest.raises(
                    MetamathError, match=rf"needs \$d ({pair[0]} {pair[1]}|{pair[1]} {pair[0]}), which is not in effect"
                ):
                    kernel.verify(mutated)
            else:
                kernel.verify(mutated)  # a pair the proof does not rely on may go
    print(
        f"\n$d mutations: {len(theorems)} set.mm theorems before {PREDICATE_STOP} with $d conditions, "
        f"{removed} pairs removed one at a time, {needed_total} needed (each rejected), "
        f"{removed - needed_total} unneeded (each still verifies)"
    )
    assert len(theorems) >= 200 and needed_total >= 200


def test_same_variable_on_both_sides_of_a_needed_disjoint_condition_is_rejected(predicate_db: Database) -> None:
    """Rename one variable of a needed pair into the other throughout the proof: the $d check must fail."""
    kernel = Kernel(predicate_db)
    checked = 0
    for theorem in predicate_db.theorems():
        if not theorem.context_disjoint or theorem.proof is None or theorem.proof[0] != "(":
            continue
        needed = reference_check(predicate_db, theorem, theorem.proof)
        floating = {h.variable: h.label for h in theorem.context_floating}
        for a, b in sorted(needed):
            if a not in floating or b not in floating or floating[a][:1] != floating[b][:1]:
                continue
            if predicate_db.labels[floating[a]].typecode != predicate_db.labels[floating[b]].typecode:
                continue
            # the proof with every push of b's $f replaced by a's: same shape, a for b everywhere
            tokens = [floating[a] if t == floating[b] else t for t in normal_form(predicate_db, theorem)]
            mutated = theorem.with_proof(tokens)
            with pytest.raises(MetamathError):
                kernel.verify(mutated)
            with pytest.raises(Invalid):
                reference_check(predicate_db, theorem, tuple(tokens))
            checked += 1
            break
        if checked >= 60:
            break
    assert checked >= 30
