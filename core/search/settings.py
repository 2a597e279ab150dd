"""How one theorem is searched: :class:`SearchSettings`, also the ``search`` section of the experiment config.

The class is the only definition of the search settings: the searches (:mod:`core.search.runner`) read it,
and ``configs.experiment`` nests it as ``prover_actor.search`` and ``evaluator.search``. It is validated
once, on creation (:class:`core.settings.Settings`), with errors naming the field. Its ``htps`` group
(:class:`HtpsParameters`) holds the parameters of HyperTree Proof Search, with Evariste's names
(``prover_actor.search.htps.exploration``); :meth:`core.search.htps.HtpsSettings.from_search` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from core.settings import Settings, option

PROVERS = ("backward", "forward-greedy", "forward-sampling", "htps")
RANK_POOL = 32  # rank_baseline: the baseline's candidates the model scores per query, by default


@dataclass(frozen=True)
class HtpsParameters(Settings):
    """The parameters of HyperTree Proof Search (:mod:`core.search.htps`) that the generic search settings
    lack, with Evariste's names. Its budgets are the search's: ``expansions`` is Evariste's
    ``num_expansions``, ``timeout_s`` the same; ``num_tactics`` and ``depth_limit`` default (``None``) to
    the search's ``candidates`` and ``max_depth``."""

    exploration: float = option(1.0, min=0.0, help="the PUCT exploration constant")
    succ_expansions: int = option(8, min=1, help="leaves selected and expanded per step, in one policy call")
    virtual_loss: int = option(1, min=0, help="virtual visits a pending selection adds to each tactic it went through")
    num_tactics: int | None = option(
        None, min=1, help="proposals asked of the policy per expansion (none: the search's candidates)"
    )
    depth_limit: int | None = option(
        None, min=1, help="goals this deep (the root is 0) are never expanded (none: the search's max_depth)"
    )
    size_limit: int = option(10_000, min=1, help="the search stops when its graph holds this many goals")
    critic_value: float = option(0.5, min=0.0, max=1.0, help="the value of a new goal when no critic is used")
    count_threshold: int = option(
        2, min=0, help="fewest visits of an open goal for a soft critic target (critic_examples)"
    )


@dataclass(frozen=True)
class SearchSettings(Settings):
    """How one theorem is searched.

    Budgets are per theorem: ``expansions`` (policy queries: a backward goal expansion, a forward step) and
    ``timeout_s`` (charged seconds, see :mod:`core.search.runner`). ``merge_baseline``: a learned policy's
    backward proposals are merged with the model-free baseline's candidates (:mod:`core.search.merged`;
    applied by :func:`core.search.evaluation.prove_theorems`); ``fill_lemmas`` adds the model's lemmas filled
    from the goal's subexpressions to that merge. ``rank_baseline``: instead, the learned model
    ranks the first ``rank_pool`` of the baseline's candidates without decoding (:mod:`core.search.ranked`).
    ``critic``: a goal critic given to the search
    is used (:mod:`core.models.critic`; a prover checkpoint's, when it has one). ``truth_table``: the
    search's critic also values goals the theorem's hypotheses do not entail at ``1e-6``
    (:mod:`core.search.truth_table`). ``htps``: the parameters of
    the ``htps`` prover; changed from their defaults with another prover, they are an error (they would
    be ignored).
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
    fill_lemmas: bool = option(
        False,
        help="backward search with merge_baseline: each lemma the model proposes that leaves one variable free "
        "is also tried with that variable filled by every subexpression of the goal, the theorem and its "
        "hypotheses, scored by the model's mass on the lemma (core.search.merged)",
    )
    rank_baseline: bool = option(
        False,
        help="backward search: the learned model ranks the model-free baseline's candidates (the first "
        "rank_pool of them) instead of decoding its own proposals (core.search.ranked): one teacher-forced "
        "model call per expansion instead of a beam search; it replaces merge_baseline",
    )
    rank_pool: int = option(
        RANK_POOL, min=1, help="rank_baseline: the baseline's candidates the model scores per query"
    )
    truth_table: bool = option(
        False,
        help="backward and htps search: a goal that the theorem's hypotheses do not entail by truth table (read in "
        "set.mm's propositional notation) is valued 1e-6 by the search's critic, so it goes last "
        "(core.search.truth_table); other goals are unchanged",
    )
    critic: bool = option(
        True,
        help="use the prover checkpoint's goal critic when it has one (HTPS: the values of new goals; "
        "backward: goals ordered by it too); false: HTPS values every new goal at its critic_value",
    )
    htps: HtpsParameters = option(
        HtpsParameters(), help="HyperTree Proof Search (prover htps): its own parameters, Evariste's names"
    )

    def validate(self) -> None:
        if self.truth_table and self.prover not in ("backward", "htps"):
            raise ConfigError(
                f"{self._name('truth_table')} applies to the backward and htps provers, and {self._name('prover')} "
                f"is {self.prover!r}: set the prover to backward or htps, or truth_table to false"
            )
        if self.prover != "htps" and self.htps != HtpsParameters():
            changed = [s.key for s in self.htps.settings() if s.value != s.default]
            raise ConfigError(
                f"{self._name('htps')}.{changed[0]} applies to prover htps only, and {self._name('prover')} "
                f"is {self.prover!r}: set the prover to htps or leave {self._name('htps')} at its defaults"
            )
