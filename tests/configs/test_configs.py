"""Configuration objects: validation names the field, overrides are parsed by type, presets all build."""

from __future__ import annotations

import dataclasses

import pytest

from configs.databases import resolve_database
from configs.experiment import DatabaseConfig, ExperimentConfig, SearchConfig, parse_mix
from configs.presets import PRESETS, preset
from core.errors import ConfigError


def test_round_trip_through_dict() -> None:
    config = preset("tiny")
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_unknown_key_in_dict_is_rejected_with_its_name() -> None:
    data = preset("tiny").to_dict()
    data["prover_actor"]["expansion"] = 3
    with pytest.raises(ConfigError, match="'expansion'"):
        ExperimentConfig.from_dict(data)


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match="seed must be an integer"):
        ExperimentConfig(seed=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SearchConfig.expansions must be >= 1"):
        SearchConfig(expansions=0)


def test_overrides_are_parsed_by_field_type() -> None:
    config = preset("tiny").with_overrides([
        "prover_actor.search.expansions=7", "routing.prover_send_only_failed=false",
        "database.forbidden=ax-1,ax-2", "rewards.tau=0.25",
    ])
    assert config.prover_actor.search.expansions == 7
    assert config.routing.prover_send_only_failed is False
    assert config.database.forbidden == ("ax-1", "ax-2")
    assert config.rewards.tau == 0.25


@pytest.mark.parametrize("assignment, message", [
    ("prover_actor.search.expansions=1e3", "takes an integer"),
    ("prover_actor.nope=1", "unknown setting 'prover_actor.nope'"),
    ("prover_actor=1", "is a group"),
    ("routing.prover_send_only_failed=maybe", "true or false"),
    ("setup=sideways", "setup must be one of"),
    ("no_equals_sign", "key=value"),
])
def test_bad_overrides_are_rejected(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset("tiny").with_overrides([assignment])


def test_setup_requires_and_forbids_roles() -> None:
    with pytest.raises(ConfigError, match="runs no prover_trainer"):
        dataclasses.replace(preset("tiny"), setup="fixed-prover")
    with pytest.raises(ConfigError, match="needs prover_trainer.count >= 1"):
        preset("tiny").with_overrides(["prover_trainer.count=0"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_names_itself(name: str) -> None:
    assert preset(name).preset == name


def test_seed_preset_names_exist() -> None:
    assert preset("mm_adv_fwd_debug_local").prover_actor.search.prover == "forward-greedy"
    assert preset("mm_adv_bwd_debug_local").prover_actor.search.prover == "backward"


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match="presets: default, tiny"):
        preset("huge")


def test_mix_parsing() -> None:
    assert parse_mix("3,generator;1,dataset") == {"generator": 0.75, "dataset": 0.25}
    for bad in ("generator", "1,prover", "x,generator", "0,generator"):
        with pytest.raises(ConfigError):
            parse_mix(bad)


def test_database_resolution(tmp_path, monkeypatch) -> None:
    embedded = resolve_database(DatabaseConfig(path="embedded"))
    assert embedded.path.endswith("hilbert.mm")
    mm = tmp_path / "x.mm"
    mm.write_text("$c a $.\n")
    monkeypatch.setenv("ADVPROVER_DATABASE", str(mm))
    assert resolve_database(DatabaseConfig(path="default")).path == str(mm)
    with pytest.raises(ConfigError, match="no such file"):
        resolve_database(DatabaseConfig(path=str(tmp_path / "missing.mm")))
