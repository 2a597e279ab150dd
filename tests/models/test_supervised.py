"""Supervised training from a database: the plain functions, the time budget, the command line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
import torch

from core.errors import ConfigError
from core.metamath import read_database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import BackwardEnv
from core.metamath.splits import split_theorems
from core.models.augment import Augmentation
from core.models.examples import AUGMENT_INSTANCES
from core.models.supervised import (
    database_examples,
    main,
    mean_nll,
    reported_by_flag,
    train_generator_on_database,
    train_on_database,
    train_prover_on_database,
)  # fmt: skip
from core.models.training import new_model, new_trainer
from core.search.baseline import BaselinePolicy
from core.search.evaluation import evaluate
from core.search.model_policy import load_policy
from core.search.policy import BackwardQuery
from core.search.runner import SearchSettings
from tests.torch_threads import one_torch_thread


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models train fastest on one thread (and do not fight other processes for the cores)."""
    with one_torch_thread():
        yield


def test_a_prover_trained_on_the_database_lowers_its_loss_and_logs_progress(db, caplog):
    with caplog.at_level(logging.INFO):
        model, vocab, stats = train_prover_on_database(db, size="tiny", steps=60, batch_size=64, lr=5e-3,
                                                       log_every=20, device="cpu")  # fmt: skip
    assert stats.kind == "prover" and stats.formats == ("backward",) and stats.train.steps == 60
    assert stats.theorems == len(split_theorems(db)["train"]) and stats.examples == stats.by_format["backward"]
    first, last = stats.train.losses[0][1], stats.train.losses[-1][1]
    assert last < 0.6 * first
    assert stats.valid_examples > 0 and stats.valid_nll < first
    assert any("examples/s" in r.getMessage() for r in caplog.records)
    # The rejection twin: the untrained model's validation NLL is much worse.
    valid = database_examples(db, vocab, model.config, split="valid").examples
    assert mean_nll(new_model(vocab, "tiny", seed=0), valid) > stats.valid_nll + 0.5
    assert not model.training


def test_a_generator_learns_the_generator_format(db):
    _model, _vocab, stats = train_generator_on_database(db, size="tiny", steps=5, batch_size=16, device="cpu",
                                                      validate=False)  # fmt: skip
    assert stats.kind == "generator" and stats.formats == ("generator",) and stats.by_format["generator"] > 0
    assert stats.examples > stats.theorems  # one STOP example per theorem at least, plus the steps


def test_the_time_budget_stops_training_and_decays_the_learning_rate(db):
    model, _vocab, stats = train_prover_on_database(db, size="tiny", steps=10**6, batch_size=8, time_limit_s=1.5,
                                                   device="cpu", validate=False)  # fmt: skip
    assert stats.train.stopped_by == "time" and 0 < stats.train.steps < 10**6
    _, _, by_cpu = train_prover_on_database(db, size="tiny", steps=10**6, batch_size=8, cpu_limit_s=1.0,
                                            device="cpu", validate=False)  # fmt: skip
    assert by_cpu.train.stopped_by == "cpu_time" and 0 < by_cpu.train.steps < 10**6
    trainer = new_trainer(model, steps=10**6, lr=1e-3, warmup_steps=0, time_limit_s=0.2)
    early = trainer.learning_rate()
    time.sleep(0.25)
    assert early > 0.9e-3 and trainer.learning_rate() == pytest.approx(1e-4)  # cosine floor: 10 %
    assert trainer.budget.exhausted_by(0) == "time"
    # CPU time does not pass while sleeping, and does while computing.
    by_cpu = new_trainer(model, steps=10**6, lr=1e-3, warmup_steps=0, cpu_limit_s=0.2)
    time.sleep(0.25)
    assert by_cpu.budget.exhausted_by(0) is None and by_cpu.learning_rate() > 0.9e-3
    deadline = time.process_time() + 0.25
    while time.process_time() < deadline:
        pass
    assert by_cpu.budget.exhausted_by(0) == "cpu_time" and by_cpu.learning_rate() == pytest.approx(1e-4)
    unbounded = new_trainer(model, steps=10**6, lr=1e-3, warmup_steps=0)
    assert unbounded.learning_rate() == pytest.approx(1e-3, rel=1e-3)


def test_bad_arguments_are_refused(db):
    with pytest.raises(ConfigError, match="kind"):
        from core.models.supervised import train_on_database

        train_on_database(db, kind="oracle")
    with pytest.raises(ConfigError, match="sideways"):
        train_prover_on_database(db, size="tiny", formats=("sideways",), steps=1)
    with pytest.raises(ConfigError, match="huge"):
        train_prover_on_database(db, size="huge", steps=1)


def test_the_command_line_writes_a_checkpoint_that_loads_as_a_policy(db, tmp_path, capsys):
    out = tmp_path / "prover.safetensors"
    code = main([str(embedded_database_path()), "--out", str(out), "--size", "tiny", "--steps", "3",
                 "--formats", "backward,forward", "--device", "cpu", "--threads", "1"])  # fmt: skip
    assert code == 0 and out.is_file()
    assert f"wrote {out}" in capsys.readouterr().out
    policy = load_policy(str(out), device="cpu")
    assert policy.kind == "prover" and policy.formats == ("backward", "forward")
    theorem = split_theorems(db)["test"][0]
    answers = policy.propose_backward([BackwardQuery(BackwardEnv(db, theorem), theorem.statement)], k=2)
    assert len(answers) == 1  # an untrained model may propose nothing usable, but it answers


def test_the_dropout_flag_trains_with_it_and_the_checkpoint_keeps_it(tmp_path):
    out = tmp_path / "prover.safetensors"
    code = main([str(embedded_database_path()), "--out", str(out), "--size", "tiny", "--steps", "2",
                 "--dropout", "0.25", "--device", "cpu", "--threads", "1"])  # fmt: skip
    assert code == 0
    assert load_policy(str(out), device="cpu").model.config.dropout == 0.25


def test_the_augment_flag_trains_on_kernel_checked_instances_too(db, tmp_path, caplog):
    plain = train_on_database(db, kind="prover", size="tiny", steps=1, validate=False)[2]
    augmented = train_on_database(db, kind="prover", size="tiny", steps=1, validate=False,
                                  augmentation=Augmentation(copies=4))[2]  # fmt: skip
    assert plain.skipped.get(AUGMENT_INSTANCES, 0) == 0 and augmented.skipped[AUGMENT_INSTANCES] > plain.theorems
    assert augmented.examples > 2 * plain.examples and augmented.theorems == plain.theorems
    out = tmp_path / "prover.safetensors"
    caplog.set_level(logging.INFO)
    code = main([str(embedded_database_path()), "--out", str(out), "--size", "tiny", "--steps", "1",
                 "--augment", "4", "--device", "cpu", "--threads", "1"])  # fmt: skip
    assert code == 0 and out.is_file()
    assert f"{augmented.examples} examples" in caplog.text


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--device", "cuda"],
            "--device cuda: CUDA is not available",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--device", "gpu"],
            "--device 'gpu' is not a device",
        ),
        (["missing.mm", "--out", "x.safetensors"], "missing.mm"),
        ([str(embedded_database_path()), "--out", "x.safetensors", "--minutes", "0"], "--minutes"),
        ([str(embedded_database_path()), "--out", "x.safetensors", "--cpu-minutes", "-1"], "--cpu-minutes"),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--size", "huge"],
            "--size: ModelConfig: unknown size 'huge'",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--dropout", "1.5"],
            "--dropout: ModelConfig.dropout must lie in [0, 1) (got 1.5)",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--steps", "-1"],
            "--steps: training steps must be >= 0",
        ),
        ([str(embedded_database_path()), "--out", "x.safetensors", "--lr", "0"], "--lr: trainer lr must be positive"),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--warmup-steps", "-1"],
            "--warmup-steps: trainer warmup_steps must be >= 0 (got -1)",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--batch-size", "0"],
            "--batch-size: training batch_size must be >= 1 (got 0)",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--log-every", "0"],
            "--log-every: training log_every must be >= 1 (got 0)",
        ),
        (["missing.mm", "--out", "x.safetensors", "--lr", "-1"], "--lr: trainer lr must be positive"),
        ([str(embedded_database_path()), "--out", "x.pt", "--steps", "1"], "name it *.safetensors"),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--augment", "-1"],
            "--augment: augmentation copies must be an integer >= 0 (got -1)",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--augment-compound", "2"],
            "--augment-compound: augmentation compound must be between 0 and 1 (got 2.0)",
        ),
        (
            [str(embedded_database_path()), "--out", "x.safetensors", "--seed", "-3"],
            "--seed: augmentation seed must be an integer >= 0 (got -3)",
        ),
    ],
)
def test_the_command_line_reports_bad_input_without_a_traceback(tmp_path, capsys, caplog, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    caplog.set_level(logging.INFO)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "examples:" not in caplog.text  # refused before any work: no database read, no example built
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "x.pt").exists()


def test_only_an_error_about_a_flag_set_field_is_reworded_under_the_flag():
    with pytest.raises(ConfigError) as reworded, reported_by_flag():
        raise ConfigError("trainer lr must be positive (got 0)", field="lr")
    assert str(reworded.value) == "--lr: trainer lr must be positive (got 0)" and reworded.value.field == "lr"
    for field in (None, "weight_decay"):  # no flag sets it: the library's own words pass unchanged
        with pytest.raises(ConfigError) as unchanged, reported_by_flag():
            raise ConfigError("as the library said", field=field)
        assert str(unchanged.value) == "as the library said" and unchanged.value.field == field


def test_found_proofs_from_a_search_summary_are_learned_too(tmp_path, caplog, monkeypatch):
    db = read_database(embedded_database_path())
    settings = SearchSettings(expansions=16, candidates=32)
    summary = evaluate(db, [db.assertion("imim1i")], BaselinePolicy(db, seed=0), settings, include_proofs=True)
    (tmp_path / "found.json").write_text(json.dumps(summary))
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    common = [str(embedded_database_path()), "--size", "tiny", "--steps", "1", "--device", "cpu", "--threads", "1"]
    assert main([*common, "--out", "plain.safetensors"]) == 0
    plain = int(caplog.text.split(" examples (")[0].rsplit(" ", 1)[1])
    caplog.clear()
    assert main([*common, "--out", "more.safetensors", "--found-proofs", "found.json"]) == 0
    more = int(caplog.text.split(" examples (")[0].rsplit(" ", 1)[1])
    assert more > plain and "'found_proofs': 1" in caplog.text  # the exact examples: tests/models/test_examples.py


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "--found-proofs found.json: no such file"),
        ("{not json", "--found-proofs found.json: not JSON"),
        ('{"total": 0}', "--found-proofs found.json: not a search summary"),
        ('{"theorems": [{"label": "syl", "proved": true}]}', "syl is proved but its proof is missing"),
    ],
)
def test_bad_found_proofs_are_refused_before_any_work(tmp_path, capsys, caplog, monkeypatch, content, message):
    if content is not None:
        (tmp_path / "found.json").write_text(content)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    args = [str(embedded_database_path()), "--out", "x.safetensors", "--found-proofs", "found.json"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "examples:" not in caplog.text
    assert not (tmp_path / "x.safetensors").exists()
