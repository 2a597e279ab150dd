"""Configuration objects: validation names the field, overrides are parsed by type, presets all build."""

from __future__ import annotations

import dataclasses

import pytest

import core.settings
from configs.databases import check_database, resolve_database
from configs.experiment import (
    DatabaseConfig,
    ExperimentConfig,
    parse_mix,
    placement_changes,
    with_placement_of,
    without_new_defaults,
)
from configs.presets import PRESETS, preset
from configs.schema import render_settings
from core.adversarial.settings import GenerationSettings
from core.errors import ConfigError
from core.metamath.embedded import embedded_database_path
from core.search.settings import HtpsParameters, SearchSettings


def test_round_trip_through_dict() -> None:
    config = preset("tiny")
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_unknown_key_in_dict_is_rejected_with_its_name() -> None:
    data = preset("tiny").to_dict()
    data["prover_actor"]["expansion"] = 3
    with pytest.raises(ConfigError, match="'expansion'"):
        ExperimentConfig.from_dict(data)


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match="seed must be an integer") as wrong_type:
        ExperimentConfig(seed=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SearchSettings.expansions must be >= 1") as out_of_bounds:
        SearchSettings(expansions=0)
    assert (wrong_type.value.field, out_of_bounds.value.field) == ("seed", "expansions")  # the bare field


def test_overrides_are_parsed_by_field_type() -> None:
    config = preset("tiny").with_overrides(
        [
            "prover_actor.search.expansions=7",
            "routing.prover_send_only_failed=false",
            "database.forbidden=ax-1,ax-2",
            "rewards.tau=0.25",
        ]
    )
    assert config.prover_actor.search.expansions == 7
    assert config.routing.prover_send_only_failed is False
    assert config.database.forbidden == ("ax-1", "ax-2")
    assert config.rewards.tau == 0.25


def test_max_solved_subgoals_override_are_accepted() -> None:
    assert preset("tiny").with_overrides(["prover_actor.max_solved_subgoals=0"]).prover_actor.max_solved_subgoals == 0


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("prover_actor.search.expansions=1e3", "takes an integer"),
        ("prover_actor.nope=1", "unknown setting 'prover_actor.nope'"),
        ("prover_actor=1", "is a group"),
        ("routing.prover_send_only_failed=maybe", "true or false"),
        ("setup=sideways", "setup must be one of"),
        ("no_equals_sign", "key=value"),
        ("metrics.folder=s3://bucket/tb", "metrics.folder 's3://bucket/tb' must be a local folder"),
        ("metrics.every_steps=0", "every_steps"),
        ("prover_actor.max_solved_subgoals=-1", "max_solved_subgoals"),
    ],
)
def test_bad_overrides_are_rejected(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset("tiny").with_overrides([assignment])


def test_an_experiment_frozen_before_the_metrics_section_resumes_with_its_defaults() -> None:
    frozen = preset("tiny").to_dict()
    del frozen["metrics"]  # created by an advprover without live metrics
    assert without_new_defaults(preset("tiny").to_dict(), frozen) == frozen
    assert ExperimentConfig.from_dict(frozen).metrics == preset("tiny").metrics  # its jobs use the defaults
    changed = without_new_defaults(preset("tiny").with_overrides(["metrics.enabled=false"]).to_dict(), frozen)
    assert changed != frozen and changed["metrics"]["enabled"] is False  # a real change stays visible


def test_metrics_folder_may_be_a_local_path_or_file_url() -> None:
    config = preset("tiny").with_overrides(["metrics.folder=file:///scratch/tb", "metrics.enabled=false"])
    assert (config.metrics.folder, config.metrics.enabled) == ("file:///scratch/tb", False)
    assert preset("tiny").with_overrides(["metrics.folder=/scratch/tb"]).metrics.folder == "/scratch/tb"


def test_setup_requires_and_forbids_roles() -> None:
    with pytest.raises(ConfigError, match="runs no prover_trainer"):
        dataclasses.replace(preset("tiny"), setup="fixed-prover")
    with pytest.raises(ConfigError, match="needs prover_trainer.count >= 1"):
        preset("tiny").with_overrides(["prover_trainer.count=0"])


def test_prover_only_runs_no_generator() -> None:
    config = preset("tiny").with_overrides(
        ["setup=prover-only", "generator_actor.count=0", "generator_trainer.count=0"]
    )
    assert config == dataclasses.replace(preset("prover_only"), preset="tiny")
    with pytest.raises(ConfigError, match="setup 'prover-only' runs no generator_actor"):  # the twin: a generator
        preset("tiny").with_overrides(["setup=prover-only", "generator_trainer.count=0"])


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
    for bad in ("generator", "1,prover", "x,generator", "0,generator", "nan,generator", "1,generator;inf,dataset"):
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


def test_overrides_are_applied_together_then_validated() -> None:
    sampling = "prover_actor.search.prover=forward-sampling"
    for order in (
        ["rewards.kind=band", "rewards.attempts=4", sampling],
        [sampling, "rewards.attempts=4", "rewards.kind=band"],
    ):
        rewards = preset("tiny").with_overrides(order).rewards
        assert (rewards.kind, rewards.attempts) == ("band", 4)
    with pytest.raises(ConfigError, match="rewards.attempts must be >= 2 when rewards.kind is 'band'"):
        preset("tiny").with_overrides(["rewards.kind=band", sampling])  # the twin without its companion


def test_band_reward_needs_a_sampling_prover() -> None:
    band = ["rewards.kind=band", "rewards.attempts=4"]
    config = preset("tiny").with_overrides([*band, "prover_actor.search.prover=forward-sampling"])
    assert config.rewards.kind == "band"
    for prover in ("backward", "forward-greedy"):  # deterministic: every attempt gives the same result
        with pytest.raises(ConfigError, match=r"rewards.kind='band'.*prover_actor.search.prover=forward-sampling"):
            preset("tiny").with_overrides([*band, f"prover_actor.search.prover={prover}"])


def test_generator_min_steps_and_heuristic_combinations_are_validated() -> None:
    config = preset("tiny").with_overrides(
        [
            "generator_actor.min_steps=4",
            "generator_actor.max_steps=4",
            "generator_actor.heuristic=1,size;-2.5,mean_token_frequency",
        ]
    )
    section = config.generator_actor
    assert (section.min_steps, section.heuristic) == (4, "1,size;-2.5,mean_token_frequency")
    with pytest.raises(ConfigError, match=r"generator_actor.min_steps \(5\) must be <= generator_actor.max_steps"):
        preset("tiny").with_overrides(["generator_actor.min_steps=5", "generator_actor.max_steps=4"])
    for bad in ("sizes", "1,size;x,depth", "0,size", "1,size;inf,depth", "1;size"):
        with pytest.raises(ConfigError, match="generator_actor.heuristic"):
            preset("tiny").with_overrides([f"generator_actor.heuristic={bad}"])


def test_override_errors_name_the_setting_by_its_path() -> None:
    with pytest.raises(ConfigError, match=r"^prover_actor\.search\.timeout_s must be >= 0\.1, got 0\.05$"):
        preset("tiny").with_overrides(["prover_actor.count=2", "prover_actor.search.timeout_s=0.05"])
    assert preset("tiny").with_overrides(["prover_actor.search.timeout_s=0.1"]).prover_actor.search.timeout_s == 0.1


@pytest.mark.parametrize(
    ("key", "bad", "good", "message"),
    [
        ("prover_actor.search.timeout_s", 0.01, 0.1, "must be >= 0.1, got 0.01"),
        ("evaluator.search.prover", "sideways", "forward-greedy", "must be one of"),
        ("generator_actor.min_steps", 0, 1, "must be >= 1, got 0"),
    ],
)
def test_a_bad_core_setting_is_reported_once_by_its_full_path(
    monkeypatch, key: str, bad: object, good: object, message: str
) -> None:
    checked: list[str] = []
    check_bounds = core.settings._check_bounds
    monkeypatch.setattr(
        core.settings, "_check_bounds", lambda name, *args: (checked.append(name), check_bounds(name, *args))[1]
    )
    section, field = key.rsplit(".", 1)
    data = preset("tiny").to_dict()
    leaf = data
    for part in section.split("."):
        leaf = leaf[part]
    leaf[field] = bad
    with pytest.raises(ConfigError) as error:
        ExperimentConfig.from_dict(data)
    assert str(error.value).startswith(f"{key} {message}")
    assert str(error.value).count(field) == 1
    assert checked.count(key) == 1
    leaf[field] = good
    checked.clear()
    config = ExperimentConfig.from_dict(data)
    assert checked.count(key) == 1  # validated once, by its path ...
    assert [name for name in checked if name.endswith(f".{field}") and name[0].isupper()] == []  # ... no copy
    assert config.to_dict() == data  # the section is the core settings object itself, its JSON names unchanged


def test_the_search_and_generation_sections_are_the_core_settings() -> None:
    config = preset("tiny")
    assert type(config.prover_actor.search) is SearchSettings and type(config.evaluator.search) is SearchSettings
    assert isinstance(config.generator_actor, GenerationSettings)
    with pytest.raises(ConfigError, match=r"^prover_actor\.search\.candidates must be >= 1, got 0$"):
        config.with_overrides(["prover_actor.search.candidates=0"])
    assert config.with_overrides(["prover_actor.search.candidates=1"]).prover_actor.search.candidates == 1


def test_an_experiment_frozen_before_this_refactor_loads_with_the_same_keys() -> None:
    frozen = preset("tiny").to_dict()
    assert set(frozen["prover_actor"]["search"]) == {
        "prover",
        "expansions",
        "timeout_s",
        "candidates",
        "temperature",
        "max_depth",
        "batch_goals",
        "merge_baseline",
        "fill_lemmas",
        "truth_table",
        "rank_baseline",
        "rank_pool",
        "critic",
        "htps",
    }
    assert {
        "count",
        "goal_source",
        "max_steps",
        "min_steps",
        "compose",
        "rollouts_per_batch",
        "temperature",
        "attempts_per_step",
        "selection",
        "heuristic",
        "dedup_window",
        "mix",
        "shard_records",
        "shard_seconds",
        "reload_seconds",
        "max_lag_shards",
        "device",
        "precision",
        "difficulty_conditioning",
        "target_difficulty",
    } == set(frozen["generator_actor"])
    del frozen["prover_actor"]["search"]["merge_baseline"]  # older experiments lack newer settings
    del frozen["prover_actor"]["search"]["critic"]
    for key in ("rank_baseline", "rank_pool", "fill_lemmas", "truth_table"):
        del frozen["prover_actor"]["search"][key], frozen["evaluator"]["search"][key]
    del frozen["prover_actor"]["search"]["htps"], frozen["evaluator"]["search"]["htps"]
    for key in ("critic", "critic_max_examples", "critic_lr"):
        del frozen["prover_trainer"][key]
    del frozen["generator_actor"]["max_lag_shards"]
    del frozen["generator_actor"]["difficulty_conditioning"], frozen["generator_actor"]["target_difficulty"]
    del frozen["generator_actor"]["compose"]
    loaded = ExperimentConfig.from_dict(frozen)
    assert loaded.prover_actor.search.merge_baseline and loaded.generator_actor.max_lag_shards == 16
    assert not loaded.evaluator.search.rank_baseline and loaded.evaluator.search.rank_pool == 32
    assert not loaded.prover_actor.search.truth_table and not loaded.evaluator.search.truth_table
    assert not loaded.generator_actor.difficulty_conditioning and not loaded.generator_actor.compose
    assert loaded.prover_actor.search.critic and loaded.prover_trainer.critic
    assert loaded.prover_actor.search.htps == loaded.evaluator.search.htps == HtpsParameters()
    assert without_new_defaults(loaded.to_dict(), frozen) == frozen


@pytest.mark.parametrize(
    "assignment",
    [
        "prover_trainer.lr=nan",
        "prover_actor.search.timeout_s=inf",
        "rewards.tau=-inf",
        "generator_trainer.entropy_weight=NaN",
        "evaluator.search.temperature=Infinity",
    ],
)
def test_non_finite_floats_are_rejected_naming_the_field(assignment: str) -> None:
    key = assignment.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key} must be a finite number, got "):
        preset("tiny").with_overrides([assignment])
    assert preset("tiny").with_overrides([f"{key}=0.5"]) is not None  # a finite value of the same field is fine


def test_non_finite_floats_are_rejected_at_the_schema_level() -> None:
    with pytest.raises(ConfigError, match="SearchSettings.timeout_s must be a finite number"):
        SearchSettings(timeout_s=float("inf"))
    data = preset("tiny").to_dict()
    data["prover_trainer"]["lr"] = float("nan")
    with pytest.raises(ConfigError, match="prover_trainer.lr must be a finite number"):
        ExperimentConfig.from_dict(data)
    data["prover_trainer"]["lr"] = 1e-3
    assert ExperimentConfig.from_dict(data) == preset("tiny")


def test_every_setting_has_a_help_text_and_a_default() -> None:
    settings = preset("tiny").settings()
    assert len({s.key for s in settings}) == len(settings) > 100
    assert [s.key for s in settings if not s.help] == []
    by_key = {s.key: s for s in settings}
    assert by_key["evaluator.search.timeout_s"].default == 10.0  # the default its parent field declares
    assert by_key["prover_actor.search.timeout_s"].default == 30.0
    assert by_key["prover_actor.search.timeout_s"].value == 3.0


def test_rendered_settings_show_value_help_and_changed_defaults() -> None:
    text = render_settings(preset("tiny").with_overrides(["rewards.tau=0.25"]), "# title")
    lines = text.splitlines()
    assert lines[0] == "# title"
    tau = next(line for line in lines if line.strip().startswith("tau = "))
    assert "upper bound of the rewarded success band" in tau and "(default: 0.5)" in tau
    kind = next(line for line in lines if line.strip().startswith("kind = "))
    assert "kind = hard" in kind and "(default:" not in kind  # unchanged: no default shown
    sections = [line for line in lines if line.startswith("[")]
    assert len(sections) == len(set(sections))  # each section once
    assert "[prover_actor.search]  the search each goal gets" in sections
    assert "[slurm.evaluator]  resources of the evaluator" in sections


def test_placement_changes_and_the_frozen_view() -> None:
    frozen = preset("tiny").to_dict()
    wanted = preset("tiny").with_overrides(["slurm.evaluator.cpus=4", "slurm.qos=high"]).to_dict()
    assert placement_changes(frozen, wanted) == ["slurm.evaluator.cpus: 2 -> 4", "slurm.qos: '' -> 'high'"]
    assert with_placement_of(wanted, frozen) == frozen
    other = preset("tiny").with_overrides(["slurm.evaluator.cpus=4", "seed=3"]).to_dict()
    assert placement_changes(frozen, other) == ["slurm.evaluator.cpus: 2 -> 4"]
    assert with_placement_of(other, frozen) != frozen  # a non-placement change stays visible


def test_check_database_accepts_a_database_with_theorems() -> None:
    assert check_database(DatabaseConfig(path=str(embedded_database_path()))) > 0


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("", "has no theorems"),
        ("$c wff |- $.\n", "has no theorems"),
        ("$c wff $.\n x $p wff $= ? \n", "does not read as a Metamath database"),
        (b"\xff\xfe$c", "database.path"),
    ],
)
def test_check_database_rejects_what_would_crash_every_job(tmp_path, content, message) -> None:
    path = tmp_path / "db.mm"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        check_database(DatabaseConfig(path=str(path)))


def test_check_database_rejects_folders_unreadable_files_and_a_missing_stop_label(tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        check_database(DatabaseConfig(path=str(tmp_path)))
    embedded = str(embedded_database_path())
    with pytest.raises(ConfigError, match="does not read as a Metamath database.*never reached"):
        check_database(DatabaseConfig(path=embedded, stop_at="no-such-label"))
    with pytest.raises(ConfigError, match="has no theorems .* before 'mp2'"):
        check_database(DatabaseConfig(path=embedded, stop_at="mp2"))  # axioms only
    assert check_database(DatabaseConfig(path=embedded, stop_at="a1i")) == 1  # mp2 alone
    monkeypatch.setattr("configs.databases.os.access", lambda path, mode: False)  # as for another user's 0600 file
    with pytest.raises(ConfigError, match="is not readable"):
        check_database(DatabaseConfig(path=embedded))


@pytest.mark.parametrize("key", ["slurm.prover_trainer.partition", "slurm.account", "slurm.qos"])
def test_values_written_into_slurm_scripts_cannot_smuggle_lines_or_shell(key: str) -> None:
    from configs.presets import preset

    for hostile in ("gpu\n#SBATCH --wrap=rm", "gpu; rm -rf ~", "$(id)", "a b", "x" * 200):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            preset("tiny").with_overrides([f"{key}={hostile}"])
    config = preset("tiny").with_overrides([f"{key}=gpu-a100,debug_2"])  # the good twin
    section, _, leaf = key.rpartition(".")
    holder = config
    for part in section.split("."):
        holder = getattr(holder, part)
    assert getattr(holder, leaf) == "gpu-a100,debug_2"


@pytest.mark.parametrize(
    "role", ["generator_actor", "prover_actor", "generator_trainer", "prover_trainer", "evaluator"]
)
def test_every_role_has_a_device_and_a_precision(role: str) -> None:
    config = preset("tiny")
    assert (getattr(config, role).device, getattr(config, role).precision) == ("auto", "fp32")
    for device in ("cpu", "cuda", "cuda:3", "auto"):  # syntax only: the job checks the machine it runs on
        changed = config.with_overrides([f"{role}.device={device}", f"{role}.precision=bf16"])
        assert (getattr(changed, role).device, getattr(changed, role).precision) == (device, "bf16")


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("prover_trainer.device=gpu", "device 'gpu': use auto"),
        ("evaluator.device=cuda:", "evaluator.device 'cuda:': use auto"),
        ("prover_actor.device=cuda:x", "prover_actor.device 'cuda:x'"),
        ("generator_actor.device=cpu:0", "generator_actor.device 'cpu:0'"),
        ("generator_trainer.precision=fp16", "precision"),
    ],
)
def test_bad_devices_and_precisions_are_rejected_naming_the_field(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset("tiny").with_overrides([assignment])
