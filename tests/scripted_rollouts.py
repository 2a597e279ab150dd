"""A scripted generator rollout on the embedded database whose intermediate theorems are known in advance.

Seven steps from no hypotheses (``goal_source="none"``), the last node published (``selection="last"``):

====  =======  ==========================================================  ====================
node  step     statement                                                   role
====  =======  ==========================================================  ====================
A     ax-1     |- ( ph -> ( ps -> ph ) )                                   one step: skipped
B     ax-2     |- ( A -> ( ( ph -> ps ) -> ( ph -> ph ) ) )                one step: skipped
C     ax-mp    |- ( ( ph -> ps ) -> ( ph -> ph ) )                         in the published proof
E     ax-1     |- ( A -> ( ch -> A ) )                                     one step: skipped
F     ax-mp    |- ( ch -> ( ph -> ( ps -> ph ) ) )                         beside the published proof
G     ax-1     |- ( C -> ( th -> C ) )                                     one step: skipped
H     ax-mp    |- ( th -> ( ( ph -> ps ) -> ( ph -> ph ) ) )              published
====  =======  ==========================================================  ====================
"""

from __future__ import annotations

from core.adversarial.generation import GenerationSettings, TheoremGenerator
from core.adversarial.records import GenerationRecord
from core.adversarial.workspace import Workspace
from core.metamath.environment import Tactic
from core.search.policy import Proposal

A = "( ph -> ( ps -> ph ) )"
C = "( ( ph -> ps ) -> ( ph -> ph ) )"
STEPS = [
    Tactic("ax-1", {"ph": ("ph",), "ps": ("ps",)}),
    Tactic("ax-2", {"ph": ("ph",), "ps": ("ps",), "ch": ("ph",)}),
    Tactic("ax-mp", {"ph": tuple(A.split()), "ps": tuple(C.split())}),
    Tactic("ax-1", {"ph": tuple(A.split()), "ps": ("ch",)}),
    Tactic("ax-mp", {"ph": tuple(A.split()), "ps": tuple(f"( ch -> {A} )".split())}),
    Tactic("ax-1", {"ph": tuple(C.split()), "ps": ("th",)}),
    Tactic("ax-mp", {"ph": tuple(C.split()), "ps": tuple(f"( th -> {C} )".split())}),
]
INTERMEDIATE = [f"|- {C}", f"|- ( ch -> {A} )"]  # what hindsight relabels, largest proof first, then in order
PUBLISHED = f"|- ( th -> {C} )"


class ScriptedPolicy:
    """Proposes the next tactic of :data:`STEPS` (by the number of nodes the rollout has made)."""

    def propose_forward(self, queries, k, temperature=None):  # type: ignore[no-untyped-def]
        return [[Proposal(STEPS[len(query.env.nodes)], 0.0)] for query in queries]

    def propose_backward(self, queries, k):  # type: ignore[no-untyped-def]
        return [[] for _ in queries]


def scripted_record(workspace: Workspace) -> GenerationRecord:
    """The generation record of the scripted rollout (its published theorem is H)."""
    settings = GenerationSettings(
        goal_source="none", max_steps=len(STEPS), min_steps=len(STEPS), attempts_per_step=1, selection="last"
    )
    generator = TheoremGenerator(workspace, ScriptedPolicy(), settings, seed=0)  # type: ignore[arg-type]
    (rollout,) = generator.run(1)
    generated = generator.select(rollout)
    if generated is None:
        raise RuntimeError(f"the scripted rollout published nothing: {dict(generator.counters)}")
    return GenerationRecord.of_generated(generated, generator_version=0, source_stream="g")
