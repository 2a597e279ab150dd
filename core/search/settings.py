"""How one theorem is searched: :class:`SearchSettings`, also the ``search`` section of the experiment config.

The class is the only definition of the search settings: the searches (:mod:`core.search.runner`) read it,
and ``configs.experiment`` nests it as ``prover_actor.search`` and ``evaluator.search``. It is validated
once, on creation (:class:`core.settings.Settings`), with errors naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings, option

PROVERS = ("backward", "forward-greedy", "forward-sampling", "htps")


@dataclass(frozen=True)
class SearchSettings(Settings):
    """How one theorem is searched.

    Budgets are per theorem: ``expansions`` (policy queries: a backward goal expansion, a forward step) and
    ``timeout_s`` (charged seconds, see :mod:`core.search.runner`). ``merge_baseline``: a learned policy's
    backward proposals are merged with the model-free baseline's candidates (:mod:`core.search.merged`;
    applied by :func:`core.search.evaluation.prove_theorems`). ``critic``: a goal critic given to the search
    is used (:mod:`core.models.critic`; a prover checkpoint's, when it has one).
    """

    prover: str = option("backward", choices=PROVERS, help="search algorithm")
    expansions: int = option(64, min=1, help="budget: model calls (backward expansions / forward steps) per goal")
    timeout_s: float = option(30.0, min=0.1, help="budget: wall-clock seconds per goal")
    candidates: int = option(8, min=1, help="tactics proposed per expansion (beam size)")
    temperature: float = option(1.0, min=0.0, help="sampling temperature (forward-sampling)")
    max_depth: int = option(24, min=1, help="longest forward rollout / deepest backward goal")
    batch_goals: int = option(16, min=1, help="goals searched at once, their model calls batched")
    merge_baseline: bool = option(
        True,
        help="backward search: add the model-free baseline's unification "
        "candidates after the model's proposals (false: the model's alone)",
    )
    critic: bool = option(
        True,
        help="use the prover checkpoint's goal critic when it has one (HTPS: the values of new goals; "
        "backward: goals ordered by it too); false: HTPS values every new goal at its critic_value",
    )
