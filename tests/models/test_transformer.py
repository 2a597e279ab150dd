"""ModelConfig validation and JSON; Seq2Seq shapes, padding, and the key/value cache against the full pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.errors import ConfigError, ModelError
from core.models.decoding import pad_sequences
from core.models.transformer import NAMED_SIZES, ModelConfig, Seq2Seq

VOCAB_SIZE = 24  # the toy vocabulary of conftest.py


def test_named_sizes_are_valid_and_sized_as_documented():
    counts = {name: Seq2Seq(ModelConfig.named(name, vocab_size=1000)).num_parameters() for name in NAMED_SIZES}
    assert counts["tiny"] < 200_000
    assert 3_000_000 <= counts["small"] <= 8_000_000
    assert counts["base"] > 30_000_000
    assert ModelConfig.named("small", vocab_size=10, d_model=128).d_model == 128


def test_unknown_size_is_rejected():
    with pytest.raises(ConfigError, match="unknown size 'huge'") as refused:
        ModelConfig.named("huge", vocab_size=10)
    assert refused.value.field == "size"


def test_check_named_refuses_what_named_refuses_without_a_vocabulary():
    for size in NAMED_SIZES:
        ModelConfig.check_named(size)
    ModelConfig.check_named("tiny", dropout=0.1)
    for name, overrides, field in [("huge", {}, "size"), ("tiny", {"dropout": 1.5}, "dropout"),
                                   ("small", {"n_heads": 3}, "n_heads")]:  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            ModelConfig.check_named(name, **overrides)
        assert refused.value.field == field


@pytest.mark.parametrize(
    "field, value",
    [
        ("vocab_size", 0),
        ("d_model", -8),
        ("n_heads", 3),  # does not divide d_model
        ("n_encoder_layers", 0),
        ("n_decoder_layers", 0),
        ("d_ff", 0),
        ("dropout", 1.0),
        ("max_source_len", 0),
        ("max_target_len", 1),
        ("positional", "rotary"),
        ("pad_id", 99),
        ("eos_id", 1.5),
        ("d_model", True),
        ("bos_id", 0),  # equal to pad_id
    ],
)
def test_bad_fields_are_named(field, value):
    good = ModelConfig.named("tiny", vocab_size=VOCAB_SIZE)
    expected_field = "pad_id" if field == "bos_id" else field
    with pytest.raises(ConfigError, match=f"ModelConfig.{expected_field} ") as refused:
        dataclasses.replace(good, **{field: value})
    assert refused.value.field == expected_field


def test_config_json_round_trip_and_rejections():
    config = ModelConfig.named("small", vocab_size=321, positional="sinusoidal")
    assert ModelConfig.from_json(config.to_json()) == config
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown field.*d_modle"):
        ModelConfig.from_dict({**config.to_dict(), "d_modle": 3})
    with pytest.raises(ConfigError, match="vocab_size is missing"):
        ModelConfig.from_dict({"d_model": 32})
    with pytest.raises(ConfigError, match="invalid JSON"):
        ModelConfig.from_json("{")
    with pytest.raises(ConfigError, match="ModelConfig.n_heads"):
        ModelConfig.from_dict({**config.to_dict(), "n_heads": 5})


def test_forward_shapes(tiny):
    model = tiny()
    src, pad = pad_sequences([[11, 12, 13], [14]], 0)
    logits = model(src, torch.tensor([[1, 15], [1, 16]]), pad)
    assert logits.shape == (2, 2, VOCAB_SIZE)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_cached_decoding_matches_the_full_forward_pass(positional, tiny):
    """Feeding the targets one token at a time through the cache gives the teacher-forced logits.

    40 positions: the cache starts with room for 32 and must grow on the way.
    """
    model = tiny(positional=positional, n_decoder_layers=2).eval()
    sources = [[11, 12, 13, 14, 15], [16, 17], [18, 19, 20]]
    targets = torch.randint(0, VOCAB_SIZE, (3, 40), generator=torch.Generator().manual_seed(0))
    targets[:, 0] = 1
    src, pad = pad_sequences(sources, 0)
    with torch.no_grad():
        full = model(src, targets, pad)
        cache = model.start_decoding(model.encode(src, pad), pad)
        steps = torch.stack([model.decode_step(targets[:, t], cache) for t in range(targets.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_cached_decoding_with_groups_and_reordered_rows(tiny):
    """Groups of rows share a source; reordering rows (as beams do) carries their history along."""
    model = tiny(n_decoder_layers=2).eval()
    sources = [[11, 12, 13, 14], [15, 16]]
    rows = torch.tensor([[1, 20, 21, 22], [1, 13, 14, 15], [1, 17, 17, 17], [1, 18, 19, 11]])  # 2 rows/source
    src, pad = pad_sequences(sources, 0)
    with torch.no_grad():
        full = model(src.repeat_interleave(2, 0), rows, pad.repeat_interleave(2, 0))
        cache = model.start_decoding(model.encode(src, pad), pad, group=2, capacity=4)
        model.decode_step(rows[:, 0], cache)
        model.decode_step(rows[:, 1], cache)
        swap = torch.tensor([1, 0, 3, 2])
        cache.reorder_rows(swap)
        logits = [model.decode_step(rows[swap, t], cache) for t in (2, 3)]
    torch.testing.assert_close(torch.stack(logits, 1), full[swap, 2:], atol=1e-5, rtol=1e-4)
    # Dropping the first source keeps the second one's rows intact.
    with torch.no_grad():
        cache = model.start_decoding(model.encode(src, pad), pad, group=2, capacity=4)
        model.decode_step(rows[:, 0], cache)
        cache.select_groups(torch.tensor([1]))
        second = model.decode_step(rows[2:, 1], cache)
    torch.testing.assert_close(second, full[2:, 1], atol=1e-5, rtol=1e-4)


def test_a_source_gives_the_same_logits_alone_and_in_a_padded_batch(tiny):
    model = tiny().eval()
    alone, alone_pad = pad_sequences([[11, 12]], 0)
    batch, batch_pad = pad_sequences([[11, 12], [13, 14, 15, 16, 17, 18, 19]], 0)
    tgt = torch.tensor([[1, 20, 21]])
    with torch.no_grad():
        single = model(alone, tgt, alone_pad)
        padded = model(batch, tgt.repeat(2, 1), batch_pad)[:1]
        unmasked = model(batch, tgt.repeat(2, 1), torch.zeros_like(batch_pad))[:1]
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(unmasked, single, atol=1e-3)  # the mask is what makes them equal


def test_too_long_inputs_and_a_full_cache_raise_model_errors(tiny):
    model = tiny(max_source_len=4, max_target_len=3).eval()
    with pytest.raises(ModelError, match="source of length 5 exceeds"):
        model.encode(torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(ModelError, match="target of length 4 exceeds"):
        model(torch.ones(1, 2, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    src, pad = pad_sequences([[11]], 0)
    with torch.no_grad():
        cache = model.start_decoding(model.encode(src, pad), pad, capacity=1)
        model.decode_step(torch.tensor([1]), cache)
        with pytest.raises(ModelError, match="cache is full"):
            model.decode_step(torch.tensor([11]), cache)
