"""The generator's rollout logic on scripted policies: minimum steps, STOP handling, node selection by each
method, the filters and substitution completion. Each test fails when the one line it pins is broken.

The script makes three nodes on the embedded database, from nothing:
A = ``|- ( ch -> ch )`` (id; size 1, 6 tokens, the rarest tokens),
B = ``|- ( ( ch -> ch ) -> ( th -> ( ch -> ch ) ) )`` (ax-1; size 1, 18 tokens, the commonest tokens),
C = ``|- ( th -> ( ch -> ch ) )`` (ax-mp on B and A; size 3, depth 2, 10 tokens).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import pytest

from core.adversarial import generation
from core.adversarial.generation import (
    GenerationSettings,
    Rollout,
    Step,
    TheoremGenerator,
    complete_tactic,
    subexpressions,
    token_frequencies,
)
from core.adversarial.rewards import NodeFeatures, combined_score, heuristic_value, parse_heuristic
from core.adversarial.workspace import Workspace
from core.errors import ConfigError, MetamathError
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import Tactic
from core.search.policy import STOP, ForwardQuery, Proposal

A = "|- ( ch -> ch )"
B = "|- ( ( ch -> ch ) -> ( th -> ( ch -> ch ) ) )"
C = "|- ( th -> ( ch -> ch ) )"


def tactic(label: str, **substitution: str) -> Tactic:
    return Tactic(label, {v: tuple(e.split()) for v, e in substitution.items()})


SCRIPT = [
    tactic("id", ph="ch"),
    tactic("ax-1", ph="( ch -> ch )", ps="th"),
    tactic("ax-mp", ph="( ch -> ch )", ps="( th -> ( ch -> ch ) )"),
]


@pytest.fixture(scope="module")
def workspace() -> Workspace:
    return Workspace.load(str(embedded_database_path()))


class ScriptedPolicy:
    """Proposes STOP first (ignoring the mask, as a careless policy would), then the script's next tactic;
    records the ``may_stop`` flag of every query."""

    def __init__(self, script: Sequence[Tactic], stop_first: bool = True) -> None:
        self.script = list(script)
        self.stop_first = stop_first
        self.calls = 0
        self.may_stop: list[bool] = []
        self.inference_only: list[bool] = []

    def propose_forward(self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None):
        answers = []
        for query in queries:
            self.may_stop.append(query.may_stop)
            self.inference_only.append(query.inference_only)
            step = self.script[self.calls] if self.calls < len(self.script) else None
            self.calls += 1
            proposals = [Proposal(STOP, -0.5)] if self.stop_first or step is None else []
            answers.append(proposals + ([Proposal(step, -1.0)] if step is not None else []))
        return answers

    def propose_backward(self, queries, k):
        return [[] for _ in queries]


def run_script(
    workspace: Workspace, script: Sequence[Tactic] = SCRIPT, stop_first: bool = True, **settings: object
) -> tuple[TheoremGenerator, Rollout, ScriptedPolicy]:
    options = {"goal_source": "none", "max_steps": len(script) + 1, "min_steps": 1, "attempts_per_step": 2, **settings}
    limits = {name: options.pop(name) for name in ("max_statement_tokens", "keep_duplicates") if name in options}
    policy = ScriptedPolicy(script, stop_first)
    generator = TheoremGenerator(
        workspace,
        policy,
        GenerationSettings(**options),
        seed=0,  # type: ignore[arg-type]
        **limits,
    )
    return generator, generator.run(1)[0], policy


def selected(workspace: Workspace, **settings: object) -> str:
    generator, rollout, _ = run_script(workspace, **settings)
    chosen = generator.select(rollout)
    assert chosen is not None
    return " ".join(chosen.theorem.statement)


# --- minimum steps and STOP -----------------------------------------------------------------------------------


def test_stop_is_masked_until_min_steps_then_allowed(workspace: Workspace) -> None:
    generator, rollout, policy = run_script(workspace, min_steps=3)
    assert policy.may_stop == [False, False, False, True]
    assert [s.added is not None for s in rollout.steps] == [True, True, True, False]
    assert rollout.end == "stop" and generator.counters["early_stop_skipped"] == 3


def test_with_min_steps_one_the_rollout_may_stop_after_its_first_step(workspace: Workspace) -> None:
    _generator, rollout, policy = run_script(workspace, min_steps=1)
    assert policy.may_stop == [False, True]
    assert len(rollout.steps) == 2 and rollout.steps[-1].added is None and rollout.end == "stop"


def test_a_stop_before_anything_was_made_is_never_taken(workspace: Workspace) -> None:
    generator, rollout, policy = run_script(workspace, min_steps=1)
    assert policy.may_stop[0] is False
    assert rollout.steps[0].added is not None and generator.counters["early_stop_skipped"] == 1
    with pytest.raises(ConfigError, match=r"GenerationSettings\.min_steps must be >= 1, got 0"):
        GenerationSettings(min_steps=0)  # a setting that asks for no minimum is refused
    object.__setattr__(generator.settings, "min_steps", 0)  # past that check, an empty rollout still may not stop
    assert not generator.may_stop(Rollout(rollout.env, None))
    assert generator.may_stop(rollout)  # the twin: one that made something may


def test_a_policy_that_never_stops_runs_to_max_steps(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, stop_first=False, min_steps=1, max_steps=3)
    assert rollout.end == "max_steps" and len(rollout.steps) == 3
    assert generator.counters["early_stop_skipped"] == 0


# --- node selection -------------------------------------------------------------------------------------------


def test_last_selection_takes_the_last_node(workspace: Workspace) -> None:
    assert selected(workspace, selection="last", heuristic="statement_length", min_steps=3) == C
    two_steps = SCRIPT[:2]
    generator, rollout, _ = run_script(workspace, two_steps, selection="last", min_steps=2)
    chosen = generator.select(rollout)
    assert chosen is not None and " ".join(chosen.theorem.statement) == B


@pytest.mark.parametrize(
    "heuristic, expected",
    [
        ("size", C),
        ("depth", C),
        ("size_over_depth", C),
        ("statement_length", B),
        ("mean_token_frequency", B),
        ("-1,mean_token_frequency", A),
        ("-1,statement_length", A),
        ("1,size;1,statement_length", B),
        ("10,size;1,statement_length", C),
    ],
)
def test_best_selection_takes_the_best_node_by_each_heuristic(
    workspace: Workspace, heuristic: str, expected: str
) -> None:
    assert selected(workspace, selection="best", heuristic=heuristic, min_steps=3) == expected


def test_ties_go_to_the_earliest_node(workspace: Workspace) -> None:
    assert selected(workspace, script=SCRIPT[:2], selection="best", heuristic="size", min_steps=2) == A


def test_node_features_and_scores(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, min_steps=3)
    features = {" ".join(n.statement): generator.features(n) for n in rollout.new_nodes()}
    assert (features[C].size, features[C].depth, features[C].statement_length) == (3, 2, 10)
    assert features[A].mean_token_frequency < features[C].mean_token_frequency < features[B].mean_token_frequency
    assert all(0 < f.mean_token_frequency <= f.max_token_frequency <= 1 for f in features.values())
    node = NodeFeatures(size=6, depth=3, statement_length=9, mean_token_frequency=0.25, max_token_frequency=0.5)
    names = ("size", "depth", "size_over_depth", "statement_length", "mean_token_frequency", "max_token_frequency")
    assert [heuristic_value(n, node) for n in names] == [6, 3, 2, 9, 0.25, 0.5]
    assert combined_score(parse_heuristic("2,size;-4,max_token_frequency"), node) == 10.0
    assert parse_heuristic("depth") == {"depth": 1.0}


@pytest.mark.parametrize("spec", ["", "sizes", "1,size;x,depth", "0,size", "1,size;nan,depth", "size;depth"])
def test_malformed_heuristic_specs_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="generator_actor.heuristic"):
        parse_heuristic(spec)


# --- filters --------------------------------------------------------------------------------------------------


def test_too_long_rejects_exactly_the_nodes_over_the_limit(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, min_steps=3, max_statement_tokens=17, heuristic="statement_length")
    nodes = {" ".join(n.statement): n for n in rollout.new_nodes()}
    assert [generator._filter(rollout, nodes[s])[0] for s in (A, B, C)] == ["", "too_long", ""]
    chosen = generator.select(rollout)  # by statement length B is best, but too long: C comes next
    assert chosen is not None and " ".join(chosen.theorem.statement) == C
    at_limit, rollout, _ = run_script(workspace, min_steps=3, max_statement_tokens=18)
    assert at_limit._filter(rollout, {" ".join(n.statement): n for n in rollout.new_nodes()}[B])[0] == ""


def test_a_node_that_restates_a_used_hypothesis_is_rejected(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, ScriptedPolicy([]), GenerationSettings(min_steps=1), seed=0)  # type: ignore[arg-type]
    rollout = generator.new_rollout()
    while not rollout.env.theorem.essential:
        rollout = generator.new_rollout()
    hypothesis = next(n for n in rollout.env.nodes if n.statement == rollout.hypotheses[0])
    assert generator._filter(rollout, hypothesis) == ("equals_hypothesis", False)
    outcome = rollout.env.apply(tactic("a1i", ph=" ".join(rollout.hypotheses[0][1:]), ps="ta"))
    derived = next(n for n in rollout.env.nodes if n.statement == outcome.statement)
    assert generator._filter(rollout, derived) == ("", False)  # built on the hypothesis, but new


def test_database_statements_are_rejected(workspace: Workspace) -> None:
    script = [tactic("ax-1", ph="ph", ps="ps")]  # exactly ax-1's statement
    generator, rollout, _ = run_script(workspace, script, min_steps=1)
    assert generator.select(rollout) is None and generator.counters["filtered_in_database"] == 1


# --- substitution completion ----------------------------------------------------------------------------------


def test_an_incomplete_tactic_is_completed_from_the_graph(workspace: Workspace) -> None:
    script = [SCRIPT[0], SCRIPT[1], Tactic("ax-mp", {})]  # the model names ax-mp only
    generator, rollout, _ = run_script(workspace, script, min_steps=3)
    assert generator.counters["completed_substitution"] == 1
    completed = rollout.steps[2]
    assert completed.tactic.substitution == SCRIPT[2].substitution and " ".join(completed.added or ()) == C


def test_completion_fails_when_no_node_unifies(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, [SCRIPT[0]], min_steps=1)  # only A: nothing of form ( ph -> ps )
    # ax-mp needs |- ph and |- ( ph -> ps ): A gives the implication; its antecedent |- ch is no node
    assert complete_tactic(rollout.env, Tactic("ax-mp", {}), generator.rng) is None
    done = complete_tactic(rollout.env, Tactic("a1i", {"ps": ("th",)}), generator.rng)
    assert done is not None and " ".join(done[1].statement) == "|- ( th -> ( ch -> ch ) )"


# --- composition (compose=True) -------------------------------------------------------------------------------


def made(rollout: Rollout) -> list[str]:
    """The statements the rollout's steps added (STOP adds none)."""
    return [" ".join(step.added) for step in rollout.steps if step.added is not None]


def test_without_compose_independent_steps_are_taken(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, SCRIPT[:2], stop_first=False)
    assert made(rollout) == [A, B] and generator.counters["not_composed"] == 0


def test_with_compose_a_step_that_uses_no_made_node_is_refused(workspace: Workspace) -> None:
    # B (ax-1) has no hypothesis, so it cannot build on A: refused, and nothing else is proposed
    generator, rollout, _ = run_script(workspace, SCRIPT[:2], stop_first=False, compose=True)
    assert made(rollout) == [A]
    assert generator.counters["not_composed"] == 1 and rollout.end == "no_valid_proposal"
    assert [n.statement for n in rollout.env.nodes] == [tuple(A.split())]  # the refused node was taken back


def test_with_compose_a_step_on_a_made_node_is_taken(workspace: Workspace) -> None:
    script = [SCRIPT[0], tactic("a1i", ph="( ch -> ch )", ps="th")]
    generator, rollout, policy = run_script(workspace, script, stop_first=False, compose=True)
    assert made(rollout) == [A, C] and generator.counters["not_composed"] == 0
    assert policy.inference_only == [False, True, True]  # after the first step: only inference rules asked for
    assert run_script(workspace, script, stop_first=False)[2].inference_only == [False, False, False]
    assert rollout.env.nodes[1].children == (0,) and rollout.env.nodes[1].tree.size == 2


def test_the_first_step_needs_no_made_node(workspace: Workspace) -> None:
    _, rollout, _ = run_script(workspace, SCRIPT[1:2], stop_first=False, compose=True)
    assert made(rollout) == [B]


def test_completion_with_must_use_builds_on_those_nodes_largest_first(workspace: Workspace) -> None:
    script = [SCRIPT[0], tactic("a1i", ph="( ch -> ch )", ps="th")]  # A (size 1), then C = a1i(A) (size 2)
    generator, rollout, _ = run_script(workspace, script, stop_first=False)
    env = rollout.env
    for must_use, expected in (({0}, (0,)), ({1}, (1,)), ({0, 1}, (1,))):
        done = complete_tactic(env, Tactic("a1i", {}), generator.rng, must_use=frozenset(must_use))
        assert done is not None and done[1].children == expected, must_use
        env.retract(done[1])
    assert complete_tactic(env, Tactic("ax-1", {}), generator.rng, must_use=frozenset({0})) is None


def test_only_the_newest_node_can_be_retracted(workspace: Workspace) -> None:
    _, rollout, _ = run_script(workspace, SCRIPT[:2], stop_first=False)
    with pytest.raises(ValueError, match="newest"):
        rollout.env.retract(rollout.env.nodes[0])
    rollout.env.retract(rollout.env.nodes[1])
    assert tuple(B.split()) not in rollout.env.by_statement and len(rollout.env.nodes) == 1


# --- what a rollout records and counts ------------------------------------------------------------------------


def test_a_stop_is_recorded_with_its_tactic_and_log_probability(workspace: Workspace) -> None:
    _, rollout, _ = run_script(workspace, SCRIPT[:1], min_steps=1)
    assert (rollout.steps[-1].tactic, rollout.steps[-1].added, rollout.steps[-1].logprob) == (STOP, None, -0.5)
    assert rollout.steps[0].logprob == -1.0


def test_compose_asks_for_inference_steps_only_after_the_first(workspace: Workspace) -> None:
    script = [SCRIPT[0], tactic("a1i", ph="( ch -> ch )", ps="th")]
    _, _, composed = run_script(workspace, script, stop_first=False, compose=True)
    assert composed.inference_only == [False, True, True]
    _, _, plain = run_script(workspace, script, stop_first=False)
    assert plain.inference_only == [False, False, False]


class QueuePolicy:
    """Answers each query with the next list of proposals of ``answers`` (nothing once they run out)."""

    def __init__(self, answers: list[list[Proposal]]) -> None:
        self.answers = list(answers)

    def propose_forward(self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None):
        return [self.answers.pop(0) if self.answers else [] for _ in queries]

    def propose_backward(self, queries, k):
        return [[] for _ in queries]


def queue_generator(workspace: Workspace, answers: list[list[Proposal]], **settings: object) -> TheoremGenerator:
    limits = {name: settings.pop(name) for name in ("max_statement_tokens", "keep_duplicates") if name in settings}
    options = {"goal_source": "none", "max_steps": 2, "min_steps": 1, "attempts_per_step": 2, **settings}
    return TheoremGenerator(workspace, QueuePolicy(answers), GenerationSettings(**options), seed=0, **limits)  # type: ignore[arg-type]


def test_an_invalid_proposal_is_counted_and_the_next_one_of_the_step_taken(workspace: Workspace) -> None:
    unknown = Proposal(Tactic("no-such-label", {}), -2.0)
    answers = [[unknown, Proposal(SCRIPT[0], -1.0)], [unknown, Proposal(SCRIPT[1], -1.0)]]
    generator = queue_generator(workspace, answers)
    (rollout,) = generator.run(1)
    assert made(rollout) == [A, B] and rollout.end == "max_steps" and rollout.done
    assert generator.counters["invalid_unknown_label"] == 2 and generator.counters["rollout_end_max_steps"] == 1


def test_every_rollout_ends_done_and_its_end_is_counted(workspace: Workspace) -> None:
    generator = queue_generator(workspace, [[Proposal(SCRIPT[0], -1.0)]] * 6, max_steps=2)
    rollouts = generator.run(3)
    assert all(r.done and r.end == "max_steps" for r in rollouts)
    assert generator.counters["rollout_end_max_steps"] == 3
    nothing = queue_generator(workspace, [])
    assert [r.end for r in nothing.run(2)] == ["no_valid_proposal"] * 2
    assert nothing.counters["rollout_end_no_valid_proposal"] == 2


def test_a_rollout_that_made_nothing_is_counted_and_gives_no_theorem(workspace: Workspace) -> None:
    generator = queue_generator(workspace, [])
    assert [generator.select(r) for r in generator.run(2)] == [None, None]
    assert generator.counters["filtered_no_new_node"] == 2 and generator.counters["generated"] == 0


def test_each_generated_theorem_is_counted_and_labelled_afresh(workspace: Workspace) -> None:
    x, y = tactic("ax-1", ph="( ph -> ps )", ps="ch"), tactic("ax-1", ph="( ps -> ph )", ps="ch")
    generator = queue_generator(workspace, [[Proposal(x, -1.0)], [Proposal(y, -1.0)]], max_steps=1, selection="last")
    chosen = [generator.select(r) for r in generator.run(2)]
    assert generator.counters["generated"] == 2
    labels = [g.theorem.label for g in chosen if g is not None]
    assert len(set(labels)) == 2 and all(re.fullmatch(r"advgen\.[0-9a-f]{12}", label) for label in labels)


def test_a_theorem_the_kernel_rejects_is_dropped_counted_and_logged(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def reject(*args: object, **kwargs: object) -> None:
        raise MetamathError("step 3 does not follow")

    generator, rollout, _ = run_script(workspace, min_steps=3)
    monkeypatch.setattr(generation, "check_tree", reject)
    with caplog.at_level(logging.ERROR, logger="core.adversarial.generation"):
        assert generator.select(rollout) is None
        assert generator.select(rollout) is None
    assert generator.counters["kernel_rejected"] == 2 and generator.counters["generated"] == 0
    assert caplog.messages[0] == (
        "BUG: a generated theorem failed the kernel check and was dropped: step 3 does not follow"
    )


# --- the filters' flags and the duplicate window --------------------------------------------------------------


def test_a_filtered_node_is_not_flagged_a_duplicate(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, min_steps=3, max_statement_tokens=17, keep_duplicates=False)
    nodes = {" ".join(n.statement): n for n in rollout.new_nodes()}
    assert generator._filter(rollout, nodes[B]) == ("too_long", False)
    known, rollout2, _ = run_script(workspace, [tactic("ax-1", ph="ph", ps="ps")], min_steps=1)
    assert known._filter(rollout2, rollout2.new_nodes()[0]) == ("in_database", False)
    assert generator.select(rollout) is not None  # C, now remembered
    assert generator._filter(rollout, nodes[C]) == ("duplicate", True)


def test_too_long_counts_the_hypotheses_the_node_uses(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, ScriptedPolicy([]), GenerationSettings(min_steps=1), seed=0)  # type: ignore[arg-type]
    rollout = generator.new_rollout()
    while not rollout.env.theorem.essential:
        rollout = generator.new_rollout()
    hypothesis = rollout.hypotheses[0]
    rollout.env.apply(tactic("a1i", ph=" ".join(hypothesis[1:]), ps="ta"))
    derived = rollout.env.nodes[-1]
    total = len(derived.statement) + len(hypothesis)
    generator.max_statement_tokens = total
    assert generator._filter(rollout, derived)[0] == ""
    generator.max_statement_tokens = total - 1
    assert generator._filter(rollout, derived)[0] == "too_long"


X = tactic("ax-1", ph="( ph -> ps )", ps="ch")
Y = tactic("ax-1", ph="( ps -> ph )", ps="ch")
Z = tactic("ax-1", ph="( ch -> ph )", ps="ps")


def kept_and_flags(workspace: Workspace, sequence: list[Tactic], window: int, keep: bool = False) -> list[str]:
    """One rollout per tactic of ``sequence``: 'new', 'dup' (kept, flagged) or 'dropped'."""
    answers = [[Proposal(t, -1.0)] for t in sequence]
    generator = queue_generator(
        workspace, answers, max_steps=1, selection="last", dedup_window=window, keep_duplicates=keep
    )
    outcomes = []
    for _ in sequence:
        chosen = generator.select(generator.run(1)[0])
        outcomes.append("dropped" if chosen is None else "dup" if chosen.duplicate else "new")
    return outcomes


def test_the_duplicate_window_remembers_the_last_statements_only(workspace: Workspace) -> None:
    assert kept_and_flags(workspace, [X, X], window=0) == ["new", "new"]  # no window: nothing remembered
    assert kept_and_flags(workspace, [X, X], window=1) == ["new", "dropped"]
    assert kept_and_flags(workspace, [X, Y, X], window=1) == ["new", "new", "new"]  # X was pushed out by Y
    assert kept_and_flags(workspace, [X, Y, X], window=2) == ["new", "new", "dropped"]
    assert kept_and_flags(workspace, [X, Y, Z, X], window=2) == ["new", "new", "new", "new"]


def test_a_kept_duplicate_does_not_take_a_place_in_the_window(workspace: Workspace) -> None:
    assert kept_and_flags(workspace, [X, X, Y, X], window=2, keep=True) == ["new", "dup", "new", "dup"]


# --- where rollouts start -------------------------------------------------------------------------------------


def test_a_rollout_starts_from_a_train_theorems_hypotheses(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, ScriptedPolicy([]), GenerationSettings(min_steps=1), seed=0)  # type: ignore[arg-type]
    train = {t.label: t for t in workspace.train_theorems()}
    for _ in range(5):
        rollout = generator.new_rollout()
        source = train[rollout.source_label or ""]
        theorem = rollout.env.theorem
        assert theorem.label == "advgen.goal" and theorem.statement == source.statement
        assert rollout.hypotheses == [h.statement for h in source.essential] != []
        assert [h.label for h in theorem.essential] == [f"advgen.h{i}" for i in range(1, len(source.essential) + 1)]
        assert [n.statement for n in rollout.env.nodes] == rollout.hypotheses and rollout.new_nodes() == []


def test_a_rollout_from_nothing_has_no_hypotheses_and_a_train_statement(workspace: Workspace) -> None:
    generator = queue_generator(workspace, [])
    rollout = generator.new_rollout()
    assert rollout.source_label is None and rollout.hypotheses == [] and rollout.env.nodes == []
    placeholder = rollout.env.theorem.statement
    assert any(t.statement == placeholder and not t.essential for t in workspace.train_theorems())


def test_must_use_is_the_nodes_the_rollout_made_not_its_hypotheses(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, ScriptedPolicy([]), GenerationSettings(min_steps=1, compose=True), seed=0)  # type: ignore[arg-type]
    rollout = generator.new_rollout()
    while not rollout.env.theorem.essential:
        rollout = generator.new_rollout()
    assert generator.must_use(rollout) == frozenset()  # nothing made yet
    outcome = rollout.env.apply(tactic("a1i", ph=" ".join(rollout.hypotheses[0][1:]), ps="ta"))
    rollout.steps.append(Step(Tactic("a1i", {}), outcome.statement, 0.0))
    assert generator.must_use(rollout) == frozenset({len(rollout.hypotheses)})


# --- completion -----------------------------------------------------------------------------------------------


def test_completion_drops_the_models_values_when_they_fit_no_node(workspace: Workspace) -> None:
    generator, rollout, _ = run_script(workspace, [SCRIPT[0]], stop_first=False, max_steps=1)
    done = complete_tactic(rollout.env, tactic("a1i", ph="th", ps="th"), generator.rng)  # no node is |- th
    assert done is not None and done[0].substitution["ph"] == tuple(["(", "ch", "->", "ch", ")"])
    assert done[1].children == (0,)


def test_completion_with_must_use_may_anchor_any_hypothesis(workspace: Workspace) -> None:
    """ax-mp on A (minor) and B (major) must use A: A anchors the minor, the major is left free to be B."""
    generator, rollout, _ = run_script(workspace, SCRIPT[:2], stop_first=False, max_steps=2)
    done = complete_tactic(rollout.env, Tactic("ax-mp", {}), generator.rng, must_use=frozenset({0}))
    assert done is not None and " ".join(done[1].statement) == C and set(done[1].children) == {0, 1}


def test_completion_gives_up_after_examining_max_examined_combinations(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator, rollout, _ = run_script(workspace, SCRIPT[:2], stop_first=False, max_steps=2)
    monkeypatch.setattr(generation, "MAX_EXAMINED", 0)
    assert complete_tactic(rollout.env, Tactic("ax-mp", {}), generator.rng) is None
    monkeypatch.setattr(generation, "MAX_EXAMINED", 4096)
    assert complete_tactic(rollout.env, Tactic("ax-mp", {}), generator.rng) is not None


def test_subexpressions_are_the_graphs_subterms_and_the_contexts_variables(workspace: Workspace) -> None:
    _, rollout, _ = run_script(workspace, SCRIPT[:2], stop_first=False, max_steps=2)
    pool = subexpressions(rollout.env)
    wffs = {" ".join(e) for e in pool["wff"]}
    assert {"( ch -> ch )", "( th -> ( ch -> ch ) )"} <= wffs  # subterms of A and B
    assert {"ph", "ps", "ch", "th"} <= wffs  # the context's variables
    assert "( ( ch -> ch ) -> ( th -> ( ch -> ch ) ) )" not in wffs  # a whole statement is no proper subterm
    assert len(pool["wff"]) == len(wffs)  # each once
    assert set(pool) == {h.typecode for h in rollout.env.floating.values()}


# --- token frequencies ----------------------------------------------------------------------------------------


def test_token_shares_count_every_token_after_the_typecode(workspace: Workspace) -> None:
    shares = token_frequencies(workspace)
    assert sum(shares.values()) == pytest.approx(1.0) and "|-" not in shares and "wff" not in shares
    assert shares["("] == shares[")"] > 0  # every statement's brackets balance, its first token included


def test_a_token_the_database_never_uses_is_the_rarest(workspace: Workspace) -> None:
    generator = TheoremGenerator(workspace, ScriptedPolicy([]), GenerationSettings(min_steps=1), seed=0)  # type: ignore[arg-type]
    rollout = generator.new_rollout()
    while ("|-", "ph") not in rollout.hypotheses:
        rollout = generator.new_rollout()
    alone = next(n for n in rollout.env.nodes if n.statement == ("|-", "ph"))
    features = generator.features(alone)  # a one-token statement: that token's share
    assert features.mean_token_frequency == features.max_token_frequency == token_frequencies(workspace)["ph"] > 0
    assert "ta" not in token_frequencies(workspace)
    with_unused = rollout.env.apply(tactic("a1i", ph="ph", ps="ta"))
    with_known = rollout.env.apply(tactic("a1i", ph="ph", ps="ch"))
    assert generator.features(with_unused).mean_token_frequency < generator.features(with_known).mean_token_frequency
