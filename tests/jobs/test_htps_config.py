"""HTPS parameters in the experiment configuration (``prover_actor.search.htps``, ``evaluator.search.htps``).

- ``--set``-style overrides reach the group; bad values are rejected naming the full dotted path; a changed
  group with another prover is rejected (it would be ignored);
- :meth:`HtpsSettings.from_search` reads the group (``num_tactics`` / ``depth_limit`` default to the search's
  ``candidates`` / ``max_depth``);
- the prover actor's and the evaluator's searches run with the configured parameters: a ``size_limit`` of 1
  stops every search at once, and the configured exploration is the one the searches use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from configs.experiment import ExperimentConfig
from configs.presets import preset
from core.errors import ConfigError
from core.search import evaluation
from core.search.htps import HtpsSearch, HtpsSettings
from core.search.runner import SearchSettings
from core.search.settings import HtpsParameters
from tests.jobs.test_roles import prepared_root, records
from tests.roles import run_role

HTPS = "prover_actor.search.prover=htps"


def test_overrides_reach_the_htps_group_and_the_search_settings() -> None:
    config = preset("tiny").with_overrides(
        [HTPS, "prover_actor.search.htps.exploration=2.5", "prover_actor.search.htps.num_tactics=3"]
    )
    search = config.prover_actor.search
    assert search.htps.exploration == 2.5 and search.htps.num_tactics == 3
    htps = HtpsSettings.from_search(search)
    assert (htps.exploration, htps.num_tactics, htps.depth_limit) == (2.5, 3, search.max_depth)
    assert (htps.num_expansions, htps.timeout_s) == (search.expansions, search.timeout_s)
    assert ExperimentConfig.from_dict(config.to_dict()) == config  # frozen and read back unchanged


def test_unset_tactic_count_and_depth_limit_follow_the_search() -> None:
    search = SearchSettings(prover="htps", candidates=5, max_depth=7)
    htps = HtpsSettings.from_search(search)
    assert (htps.num_tactics, htps.depth_limit) == (5, 7)
    assert htps.exploration == HtpsParameters().exploration
    assert HtpsSettings.from_search(search, exploration=3.0).exploration == 3.0  # explicit overrides still win


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("prover_actor.search.htps.exploration=-1", r"^prover_actor\.search\.htps\.exploration must be >= 0\.0"),
        ("prover_actor.search.htps.virtual_loss=-2", r"^prover_actor\.search\.htps\.virtual_loss must be >= 0"),
        ("prover_actor.search.htps.num_tactics=0", r"^prover_actor\.search\.htps\.num_tactics must be >= 1"),
        ("prover_actor.search.htps.critic_value=1.5", r"^prover_actor\.search\.htps\.critic_value must be <= 1\.0"),
        ("prover_actor.search.htps.size_limit=0", r"^prover_actor\.search\.htps\.size_limit must be >= 1"),
        ("prover_actor.search.htps.depth=3", r"unknown setting 'prover_actor\.search\.htps\.depth'"),
    ],
)
def test_a_bad_htps_value_is_rejected_naming_its_dotted_path(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset("tiny").with_overrides([HTPS, assignment])


def test_htps_parameters_with_another_prover_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^evaluator\.search\.htps\.exploration applies to prover htps only"):
        preset("tiny").with_overrides(["evaluator.search.htps.exploration=2"])
    accepted = preset("tiny").with_overrides(["evaluator.search.htps.exploration=2", "evaluator.search.prover=htps"])
    assert accepted.evaluator.search.htps.exploration == 2.0
    with pytest.raises(ConfigError, match=r"^SearchSettings\.htps\.virtual_loss applies to prover htps only"):
        SearchSettings(htps=HtpsParameters(virtual_loss=3))


class SpiedSearches:
    """Records the HTPS settings of every search :func:`core.search.evaluation.make_search` builds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings: list[HtpsSettings] = []
        spied = self

        class Spy(HtpsSearch):
            def __init__(self, env: Any, settings: HtpsSettings, *args: Any) -> None:
                spied.settings.append(settings)
                super().__init__(env, settings, *args)

        monkeypatch.setattr(evaluation, "HtpsSearch", Spy)


@pytest.mark.slow
def test_the_prover_actor_searches_with_the_configured_htps_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spied = SpiedSearches(monkeypatch)
    root = prepared_root(
        tmp_path / "exp",
        "prover_only",
        HTPS,
        "prover_actor.search.batch_goals=4",
        "prover_actor.search.htps.size_limit=1",  # the root alone fills the graph: every search stops at once
        "prover_actor.search.htps.exploration=3.5",
    )
    assert run_role("prover_trainer", root, max_steps=0) == "finished"
    assert run_role("prover_actor", root, max_records=4) == "finished"
    results = records(root, "prover-actor-00")
    assert len(results) == 4 and not any(r["proved"] for r in results)
    assert {r["search"]["stop_reason"] for r in results} == {"size_limit"}
    assert spied.settings and {(s.exploration, s.size_limit) for s in spied.settings} == {(3.5, 1)}


@pytest.mark.slow
def test_the_evaluator_searches_with_the_configured_htps_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spied = SpiedSearches(monkeypatch)
    root = prepared_root(
        tmp_path / "exp",
        "supervised_only",
        "evaluator.search.prover=htps",
        "evaluator.search.htps.size_limit=1",
        "evaluator.search.htps.virtual_loss=4",
    )
    assert run_role("evaluator", root, max_records=1) == "finished"  # the model-free baseline's evaluation
    (evaluated,) = records(root, "evaluator-00")
    assert evaluated["version"] == "baseline" and evaluated["total"] == 3 and evaluated["proved"] == 0
    assert evaluated["stop_reasons"] == {"size_limit": 3}
    assert evaluated["settings"]["htps"]["size_limit"] == 1
    assert {(s.virtual_loss, s.size_limit) for s in spied.settings} == {(4, 1)}
