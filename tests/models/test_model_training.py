"""Seq2SeqTrainer, the one loop (train_loop, train_examples) and its bucketer: real learning, signed weights, exact resumption, truncation."""

from __future__ import annotations

import copy
import logging
import math
import random

import pytest
import torch

from core.errors import ConfigError, ModelError
from core.models.decoding import greedy, score, target_logprobs
from core.models.training import (
    Budget,
    Seq2SeqTrainer,
    check_batching,
    check_schedule,
    length_bucketed_batches,
    train_examples,
    train_loop,
)

EXAMPLES = [([11, 12, 13], [13, 12, 11]), ([14, 15], [15, 14]), ([16, 17, 18, 19], [19, 18, 17, 16])]


def test_a_tiny_model_learns_to_reverse_and_decodes_exactly(trained, reversal, tiny):
    model, stats = trained
    assert stats.steps == 150 and stats.stopped_by == "steps"
    assert stats.losses[-1][1] < stats.losses[0][1] / 10
    sources, targets = [s for s, _ in reversal], [t for _, t in reversal]
    assert [c[0].tokens for c in greedy(model, sources)] == targets
    # Its rejection twin: the same model untrained gets (almost) none right.
    untrained = [c[0].tokens for c in greedy(tiny(), sources)]
    assert sum(u == t for u, t in zip(untrained, targets)) <= 2


def test_negative_weights_lower_the_probability_and_positive_ones_raise_it(tiny):
    for weight, direction in ((1.0, 1), (-1.0, -1)):
        model = tiny()
        trainer = Seq2SeqTrainer(model, lr=3e-3, warmup_steps=0)
        with torch.no_grad():
            before = score(model, [s for s, _ in EXAMPLES], [t for _, t in EXAMPLES])
        for _ in range(5):
            result = trainer.step(EXAMPLES, weights=[weight] * len(EXAMPLES))
            assert math.isfinite(result["loss"]) and math.isfinite(result["grad_norm"])
        with torch.no_grad():
            after = score(model, [s for s, _ in EXAMPLES], [t for _, t in EXAMPLES])
        assert ((after - before) * direction > 0.5).all()


def test_zero_and_mixed_weights_never_produce_nan(tiny):
    model = tiny()
    trainer = Seq2SeqTrainer(model, lr=1e-2, warmup_steps=0, weight_decay=0.0)
    weights_before = copy.deepcopy(model.state_dict())
    result = trainer.step(EXAMPLES, weights=[0.0, 0.0, 0.0])
    assert result["loss"] == 0.0 and result["grad_norm"] == 0.0 and math.isfinite(result["nll"])
    for name, value in model.state_dict().items():  # a zero gradient moves nothing (no decay, no momentum)
        torch.testing.assert_close(value, weights_before[name])
    for _ in range(20):
        result = trainer.step(EXAMPLES, weights=torch.tensor([-50.0, 0.0, 3.0]))
        assert all(math.isfinite(v) for v in result.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_grad_sync_sees_the_gradients_before_the_update(tiny):
    """A data-parallel hook runs once per step between backward and update (here it cancels the update)."""
    model = tiny()
    before = copy.deepcopy(model.state_dict())
    calls = []

    def cancel(synced_model):
        calls.append(synced_model)
        for p in synced_model.parameters():
            p.grad.zero_()

    trainer = Seq2SeqTrainer(model, warmup_steps=0, weight_decay=0.0, grad_sync=cancel)
    assert trainer.step(EXAMPLES)["grad_norm"] == 0.0
    assert calls == [model]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])
    with pytest.raises(ModelError, match="weights must be finite"):
        trainer.step(EXAMPLES, weights=[1.0, float("nan"), 1.0])


def test_micro_batching_gives_the_same_step_as_one_batch(tiny):
    big, small = tiny(), tiny()
    one = Seq2SeqTrainer(big, warmup_steps=0, batch_tokens=10_000).step(EXAMPLES, weights=[1.0, -0.5, 2.0])
    many = Seq2SeqTrainer(small, warmup_steps=0, batch_tokens=8).step(EXAMPLES, weights=[1.0, -0.5, 2.0])
    assert one["loss"] == pytest.approx(many["loss"], rel=1e-5)
    assert one["tokens"] == many["tokens"] == 12
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_a_restored_trainer_continues_exactly(tiny, reversal):
    batches = [reversal[i : i + 8] for i in range(0, 32, 8)]
    model = tiny(seed=0)
    trainer = Seq2SeqTrainer(model, lr=3e-3, warmup_steps=2)
    for batch in batches[:2]:
        trainer.step(batch)
    saved = copy.deepcopy(trainer.state_dict())
    expected = [trainer.step(batch)["loss"] for batch in batches[2:]]

    restored = Seq2SeqTrainer(tiny(seed=5), lr=3e-3, warmup_steps=2)
    fresh = copy.deepcopy(restored)
    restored.load_state_dict(saved)
    assert restored.steps == 2
    assert [restored.step(batch)["loss"] for batch in batches[2:]] == expected
    for a, b in zip(model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)
    # The twin that was not restored does not continue the same way.
    assert [fresh.step(batch)["loss"] for batch in batches[2:]] != expected
    with pytest.raises(ModelError, match="lacks model"):
        restored.load_state_dict({"optimizer": {}, "steps": 1})


def test_too_long_examples_are_truncated_and_counted(tiny, caplog):
    model = tiny(max_source_len=4, max_target_len=4)
    trainer = Seq2SeqTrainer(model, warmup_steps=0)
    long_ones = [([11] * 9, [12] * 2), ([13, 14], [15] * 7)]
    with caplog.at_level(logging.WARNING, logger="core.models.training"):
        result = trainer.step(long_ones + EXAMPLES[:1])
    assert trainer.truncated == 2 and math.isfinite(result["loss"])
    assert result["tokens"] == (2 + 1) + 3 + (3 + 1)  # the truncated target has no <EOS> term
    assert "truncated" in caplog.text
    assert trainer.step(EXAMPLES[:1])["examples"] == 1 and trainer.truncated == 2  # fitting ones are untouched
    # The loss of a truncated target covers its kept tokens only, not an <EOS> that was never there.
    with torch.no_grad():
        logp, _ = target_logprobs(model, [[13, 14]], [[15, 15, 15]])
    result = trainer.step([([13, 14], [15] * 7)])
    assert result["tokens"] == 3
    assert result["loss"] == pytest.approx(-logp[0, :3].sum().item() / 3, rel=1e-5)


def test_empty_sources_are_skipped_and_bad_calls_rejected(tiny):
    trainer = Seq2SeqTrainer(tiny(), warmup_steps=0)
    result = trainer.step([([], [11]), *EXAMPLES])
    assert result["examples"] == 3 and trainer.skipped == 1
    with pytest.raises(ModelError, match="no usable example"):
        trainer.step([([], [11])])
    with pytest.raises(ModelError, match="2 weights for 3 examples"):
        trainer.step(EXAMPLES, weights=[1.0, 1.0])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(lr=0.0), "lr"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(grad_clip=-1.0), "grad_clip"),
        (dict(schedule="linear"), "schedule"),
        (dict(schedule="cosine"), "total_steps"),
        (dict(batch_tokens=0), "batch_tokens"),
    ],
)
def test_bad_hyperparameters_are_named(tiny, kwargs, field):
    with pytest.raises(ConfigError, match=field) as refused:
        Seq2SeqTrainer(tiny(), **kwargs)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "check, args, field",
    [
        (check_schedule, (0.0, 10), "lr"),
        (check_schedule, (1e-3, -1), "warmup_steps"),
        (check_batching, (0, 10), "batch_size"),
        (check_batching, (8, 0), "log_every"),
    ],
)
def test_the_early_checks_refuse_what_training_would_and_name_the_field(check, args, field):
    with pytest.raises(ConfigError, match=field) as refused:
        check(*args)
    assert refused.value.field == field
    good = (1e-3, 0) if check is check_schedule else (1, 1)
    check(*good)  # the smallest accepted values pass


def test_a_bad_budget_names_its_field():
    for kwargs, field in (
        (dict(steps=-1), "steps"),
        (dict(steps=1, wall_s=0.0), "wall_s"),
        (dict(steps=1, cpu_s=-1.0), "cpu_s"),
    ):
        with pytest.raises(ConfigError, match=field) as refused:
            Budget(**kwargs)
        assert refused.value.field == field


def test_learning_rate_schedules(tiny):
    model = tiny()
    warm = Seq2SeqTrainer(model, lr=1.0, warmup_steps=4, schedule="inverse_sqrt")
    assert [warm.learning_rate(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warm.learning_rate(15) == pytest.approx(0.5)
    cosine = Seq2SeqTrainer(model, lr=1.0, warmup_steps=0, schedule="cosine", total_steps=10, min_lr_ratio=0.1)
    assert cosine.learning_rate(0) == pytest.approx(1.0)
    assert cosine.learning_rate(5) == pytest.approx(0.55)
    assert cosine.learning_rate(10) == cosine.learning_rate(99) == pytest.approx(0.1)
    assert Seq2SeqTrainer(model, lr=0.5, warmup_steps=0, schedule="constant").learning_rate(1000) == 0.5


def test_train_examples_stops_at_its_time_limit_and_logs_rates(tiny, reversal, caplog):
    with caplog.at_level(logging.INFO, logger="core.models.training"):
        stats = train_examples(tiny(), reversal, steps=10_000, batch_size=8, log_every=1, time_limit_s=0.3)
    assert stats.stopped_by == "time" and 0 < stats.steps < 10_000
    assert stats.examples == 8 * stats.steps and stats.tokens > stats.examples
    assert "examples/s" in caplog.text and "tokens/s" in caplog.text
    with pytest.raises(ModelError, match="no examples"):
        train_examples(tiny(), [], steps=1)


def test_precision_bf16_falls_back_to_fp32_off_cuda_and_unknown_ones_are_rejected(tiny, caplog) -> None:
    from core.errors import ConfigError

    assert Seq2SeqTrainer(tiny(), device="cpu").precision == "fp32"  # no precision named: fp32 on a CPU
    with caplog.at_level("WARNING"):
        assert Seq2SeqTrainer(tiny(), device="cpu", precision="bf16").precision == "fp32"
    assert "bf16 applies on CUDA only" in caplog.text
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        Seq2SeqTrainer(tiny(), precision="fp8")


# --- the one bucketer and the one loop -------------------------------------------------------------


def test_bucketed_batches_cover_every_example_once_per_pass_in_length_order():
    examples = [([1] * n, [2] * (n % 3 + 1)) for n in range(1, 24)]
    batches = length_bucketed_batches(examples, 5, random.Random(0))
    first_pass = [next(batches) for _ in range(5)]  # 23 examples: four batches of 5 and one of 3
    assert sorted(i for batch in first_pass for i in batch) == list(range(23))
    assert sorted(map(len, first_pass)) == [3, 5, 5, 5, 5]
    for batch in first_pass:  # one pool: each batch is a run of the length-sorted order
        assert [len(examples[i][0]) for i in batch] == sorted(len(examples[i][0]) for i in batch)
    again = length_bucketed_batches(examples, 5, random.Random(0))
    assert [next(again) for _ in range(5)] == first_pass  # seeded: the same batches
    assert sorted(i for batch in (next(batches) for _ in range(5)) for i in batch) == list(range(23))  # pass 2


def test_bucketed_batches_refuse_no_examples_and_bad_sizes():
    with pytest.raises(ModelError, match="no examples"):
        length_bucketed_batches([], 4, random.Random(0))  # refused at the call, not at the first batch
    with pytest.raises(ConfigError, match="batch_size"):
        length_bucketed_batches(EXAMPLES, 0, random.Random(0))


def test_the_loop_steps_once_per_batch_until_stopped_or_out_of_batches(tiny):
    trainer = Seq2SeqTrainer(tiny(), lr=1e-3, warmup_steps=0)
    seen: list[float] = []
    stats = train_loop(trainer, [(EXAMPLES, None)] * 3, after_step=lambda result: seen.append(result["loss"]))
    assert (stats.steps, stats.stopped_by, trainer.steps) == (3, "batches", 3) and len(seen) == 3
    assert stats.examples == 9 and stats.final_loss == seen[-1] and stats.losses == [(3, sum(seen) / 3)]
    stopped = train_loop(trainer, iter(lambda: (EXAMPLES[:1], [0.5]), None),
                         stop=lambda done: "enough" if done == 2 else None)  # fmt: skip
    assert (stopped.steps, stopped.stopped_by, trainer.steps) == (2, "enough", 5)
    with pytest.raises(ConfigError, match="log_every"):
        train_loop(trainer, [], log_every=0)
