"""benchmarks/learning.py's report on a synthetic experiment folder (no training, no search).

- the equal-steps comparison takes each run's version nearest the smallest final step (or ``--steps``);
- scores come from the runs' evaluator records or the benchmark's own kept evaluations, '-' when neither
  exists and ``--report-only`` forbids measuring;
- the generated-theorem statistics count generated theorems only (not dataset goals);
- per arm, the mean and [min, max] over seeds;
- a finished run is never launched again; an interrupted one is moved aside and run again with its seed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType

import pytest

from configs.databases import resolve_database
from configs.presets import preset
from core.adversarial.records import EvaluationRecord
from core.errors import UsageError
from core.storage import ExperimentRoot, ShardWriter
from tests import sample_records
from tests.benchmarks.scripts import load_benchmark

# run name -> its preset, and the (version, step, test theorems proved of 10) its evaluator measured
RUNS = {
    "prop-adversarial-seed0": ("prop_adversarial", [(0, 0, 3), (1, 100, 5), (2, 200, 7)]),
    "prop-adversarial-seed1": ("prop_adversarial", [(0, 0, 3), (1, 150, 4), (2, 300, 8)]),
    "prop-supervised-seed0": ("prop_supervised", [(0, 0, 3), (1, 200, 6), (2, 400, 9)]),
    "prop-prover-only-seed0": ("prop_prover_only", [(0, 0, 3), (1, 250, 5)]),
}


def load_script() -> ModuleType:
    return load_benchmark("learning")


def evaluation(version: int | str, step: int | None, proved: int) -> dict:
    return EvaluationRecord(
        version=version,
        step=step,
        benchmark="test split",
        time=0.0,
        seconds=1.0,
        total=10,
        proved=proved,
        success_rate=proved / 10,
    ).to_json()


def make_run(out: Path, name: str, preset_name: str, points: list[tuple[int, int, int]]) -> ExperimentRoot:
    config = preset(preset_name)
    config = dataclasses.replace(
        config, database=resolve_database(dataclasses.replace(config.database, path="embedded"))
    )
    root = ExperimentRoot.create_or_open(str(out / name), config.to_dict())
    with ShardWriter(root, "evaluator-00", max_records=1, max_age_s=0) as writer:
        writer.append(evaluation("baseline", None, 2))
        for version, step, proved in points:
            writer.append(evaluation(version, step, proved))
    return root


def add_generations(root: ExperimentRoot) -> None:
    """Three generated theorems of sizes 2, 4, 6 (one proved) and a dataset goal of size 10 (proved)."""
    records = [sample_records.generation(f"g/{i}", source="generator", size=size) for i, size in enumerate((2, 4, 6))]
    records.append(sample_records.generation("g/3", source="dataset", size=10))
    with ShardWriter(root, "generator-actor-00-to-00", max_records=10, max_age_s=60) as writer:
        for record in records:
            writer.append(record.to_json())
    with ShardWriter(root, "prover-actor-00", max_records=10, max_age_s=60) as writer:
        for record, proved in zip(records, (True, False, False, True)):
            writer.append(sample_records.result(record, proved=proved).to_json())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "learning"
    roots = {name: make_run(out, name, *spec) for name, spec in RUNS.items()}
    add_generations(roots["prop-adversarial-seed0"])
    kept = out / "evaluations" / "prop-adversarial-seed0" / "valid-v2.json"  # an evaluation the benchmark made
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps({"proved": 6, "total": 10, "version": 2, "step": 200}))
    return out


def table_rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("prop-", "adversarial"))}


def test_the_report_compares_at_equal_wall_clock_and_at_the_common_step_count(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    assert script.main(["--out", str(folder), "--seeds", "0", "1", "--report-only", "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "the version nearest step 200" in text  # the smallest final step: adversarial seed 0's
    rows = table_rows(text)
    # run, last v@step, test, valid | v@step, test, valid | generated, median size, proved
    assert rows["prop-adversarial-seed0"] == [
        "prop-adversarial-seed0", "v2@200", "7/10", "6/10", "|", "v2@200", "7/10", "6/10", "|", "3", "4", "33.3%",
    ]  # fmt: skip
    assert rows["prop-adversarial-seed1"][1:8] == ["v2@300", "8/10", "-", "|", "v1@150", "4/10", "-"]
    assert rows["prop-supervised-seed0"][1:8] == ["v2@400", "9/10", "-", "|", "v1@200", "6/10", "-"]
    assert rows["prop-prover-only-seed0"][1:8] == ["v1@250", "5/10", "-", "|", "v1@250", "5/10", "-"]
    assert rows["prop-prover-only-seed0"][-3:] == ["-", "-", "-"]  # no generator: no generated theorem
    arm = next(line for line in text.splitlines() if line.startswith("adversarial (2 seeds)"))
    assert "7.5 [7, 8]" in arm and "5.5 [4, 7]" in arm and "6.0 [6, 6]" in arm  # test wall, test steps, valid
    assert "model-free baseline (test split): 2/10" in text


def test_given_steps_choose_the_nearest_versions(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script()
    assert script.main(["--out", str(folder), "--seeds", "0", "--steps", "90", "--splits", "test", "--report-only",
                        "--no-plot"]) == 0  # fmt: skip
    rows = table_rows(capsys.readouterr().out)
    assert rows["prop-adversarial-seed0"][4:6] == ["v1@100", "5/10"]
    assert rows["prop-supervised-seed0"][4:6] == ["v0@0", "3/10"]  # 0 and 200 are as far: the earlier one


def test_nearest_version_and_common_steps() -> None:
    script = load_script()
    assert script.nearest_point({0: 0, 1: 150, 2: 300}, 200) == script.Point(1, 150)
    assert script.nearest_point({0: 0, 1: None}, 5) == script.Point(0, 0)  # a version without a step is skipped
    assert script.nearest_point({}, 5) is None
    assert script.common_steps([script.Point(2, 300), None, script.Point(1, 120), script.Point(3, None)]) == 120
    assert script.common_steps([None]) is None


def test_a_missing_folder_and_bad_minutes_are_refused(tmp_path: Path) -> None:
    script = load_script()
    with pytest.raises(UsageError, match="no experiment folder"):
        script.main(["--out", str(tmp_path / "none"), "--report-only"])
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path), "--minutes", "0"])


def test_a_finished_run_is_kept_and_an_interrupted_one_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = load_script()
    commands: list[list[str]] = []
    monkeypatch.setattr(script, "execute", lambda command, log: commands.append(command))
    out = tmp_path / "learning"
    finished, interrupted = script.Run("supervised", 0), script.Run("adversarial", 1)
    for run in (finished, interrupted):
        (out / run.name).mkdir(parents=True)
    script.done_marker(out, finished).parent.mkdir()
    script.done_marker(out, finished).write_text("{}")
    for run in (finished, interrupted):
        script.launch(out, run, Path("db.mm"), Path("init"), 2.0, ["evaluator.max_theorems=5"])
    [command] = commands
    assert command[command.index("--preset") + 1] == "prop_adversarial"
    assert command[command.index("--exp") + 1] == str(out / interrupted.name)
    assert "seed=1" in command and "evaluator.max_theorems=5" in command and "retention.keep_all=true" in command
    assert [p.name for p in out.glob("prop-adversarial-seed1.interrupted-*")]  # the interrupted run kept aside
    assert script.done_marker(out, interrupted).exists()
