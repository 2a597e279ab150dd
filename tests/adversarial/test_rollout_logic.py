"""The generator's rollout logic on scripted policies: minimum steps, STOP handling, node selection by each
method, the filters and substitution completion. Each test fails when the one line it pins is broken.

The script makes three nodes on the embedded database, from nothing:
A = ``|- ( ch -> ch )`` (id; size 1, 6 tokens, the rarest tokens),
B = ``|- ( ( ch -> ch ) -> ( th -> ( ch -> ch ) ) )`` (ax-1; size 1, 18 tokens, the commonest tokens),
C = ``|- ( th -> ( ch -> ch ) )`` (ax-mp on B and A; size 3, depth 2, 10 tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.adversarial.generation import GenerationSettings, Rollout, TheoremGenerator, complete_tactic
from core.adversarial.rewards import NodeFeatures, combined_score, heuristic_value, parse_heuristic
from core.adversarial.workspace import Workspace
from core.errors import ConfigError
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
