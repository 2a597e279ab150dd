"""The vocabulary: deterministic ids, separate namespaces, unknown tokens counted, JSON round trips."""

from __future__ import annotations

import json

import pytest
import torch

from core.errors import ModelError
from core.models.vocab import BUILTIN_SPECIALS, Token, Vocabulary

SYMBOLS = ["(", ")", "->", "ph", "ps", "wff", "|-", "a1"]
LABELS = ["ax-mp", "ax-1", "a1", "wi", "mp2"]


def test_ids_are_deterministic_whatever_the_input_order():
    first = Vocabulary.build(SYMBOLS, LABELS)
    second = Vocabulary.build(reversed(SYMBOLS + SYMBOLS), iter(sorted(LABELS, reverse=True)))
    assert first == second
    assert first.to_dict() == second.to_dict()
    assert [first.token(i) for i in range(len(first))] == [second.token(i) for i in range(len(second))]


def test_special_tokens_come_first_at_fixed_ids():
    vocab = Vocabulary.build(SYMBOLS, LABELS, extra_specials=["<HARD>", "<EASY>"])
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.specials == [*BUILTIN_SPECIALS, "<HARD>", "<EASY>"]
    for i, name in enumerate(vocab.specials):
        assert vocab.special_id(name) == i
    assert len(vocab) == len(BUILTIN_SPECIALS) + 2 + len(SYMBOLS) + len(LABELS)


def test_a_label_and_a_symbol_with_the_same_spelling_stay_distinct():
    vocab = Vocabulary.build(SYMBOLS, LABELS)
    assert vocab.symbol_id("a1") != vocab.label_id("a1")
    assert vocab.token(vocab.symbol_id("a1")) == Token("symbol", "a1")
    assert vocab.token(vocab.label_id("a1")) == Token("label", "a1")
    assert vocab.is_label(vocab.label_id("a1")) and not vocab.is_label(vocab.symbol_id("a1"))


def test_encode_decode_round_trip():
    vocab = Vocabulary.build(SYMBOLS, LABELS)
    tokens = [
        Token("label", "ax-mp"),
        Token("special", "<SUBST>"),
        Token("symbol", "ph"),
        Token("symbol", "->"),
        Token("symbol", "a1"),
        Token("special", "</SUBST>"),
        Token("label", "a1"),
    ]
    ids = vocab.encode(tokens)
    assert vocab.decode(ids) == tokens
    assert vocab.encode([("symbol", "ph"), ("label", "wi")]) == [vocab.symbol_id("ph"), vocab.label_id("wi")]
    assert vocab.symbols(["(", "ph", ")"]) == [vocab.symbol_id(s) for s in ["(", "ph", ")"]]
    assert not vocab.unknown


def test_unknown_symbols_and_labels_become_unk_and_are_counted():
    vocab = Vocabulary.build(SYMBOLS, LABELS)
    ids = vocab.symbols(["ph", "ch", "ch", "th"])
    assert ids == [vocab.symbol_id("ph"), vocab.unk_id, vocab.unk_id, vocab.unk_id]
    assert vocab.label_id("nolabel") == vocab.unk_id
    assert vocab.unknown == {Token("symbol", "ch"): 2, Token("symbol", "th"): 1, Token("label", "nolabel"): 1}
    # The label namespace does not leak into symbols: "ax-mp" is no symbol.
    assert vocab.symbol_id("ax-mp") == vocab.unk_id


def test_an_unknown_special_is_a_code_error():
    vocab = Vocabulary.build(SYMBOLS, LABELS)
    with pytest.raises(ModelError, match="<NOPE>"):
        vocab.special_id("<NOPE>")
    with pytest.raises(ModelError, match="out of range"):
        vocab.token(len(vocab))
    with pytest.raises(ModelError, match="unknown token kind 'sym'"):
        vocab.encode([("sym", "ph")])


def test_json_round_trip_keeps_every_id():
    vocab = Vocabulary.build(SYMBOLS, LABELS, extra_specials=["<HARD>"])
    text = vocab.to_json()
    again = Vocabulary.from_json(text)
    assert again == vocab
    assert [again.token(i) for i in range(len(again))] == [vocab.token(i) for i in range(len(vocab))]
    assert again.label_ids == vocab.label_ids
    assert Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format="other/1"), "format"),
        (lambda d: d.update(symbols="ph ps"), "symbols"),
        (lambda d: d["labels"].append("ax-mp"), "duplicate label"),
        (lambda d: d["specials"].pop(0), "specials must start"),
        (lambda d: d["symbols"].append(""), "invalid symbol"),
    ],
)
def test_a_damaged_description_is_rejected(mutate, message):
    data = Vocabulary.build(SYMBOLS, LABELS).to_dict()
    mutate(data)
    with pytest.raises(ModelError, match=message):
        Vocabulary.from_dict(data)


def test_invalid_json_and_bad_extra_specials_are_rejected():
    with pytest.raises(ModelError, match="invalid JSON"):
        Vocabulary.from_json("{not json")
    with pytest.raises(ModelError, match="already built in"):
        Vocabulary.build(SYMBOLS, LABELS, extra_specials=["<EOS>"])
    with pytest.raises(ModelError, match="duplicate special"):
        Vocabulary.build(SYMBOLS, LABELS, extra_specials=["<X>", "<X>"])


def test_label_ids_and_label_masks_cover_exactly_the_labels():
    vocab = Vocabulary.build(SYMBOLS, LABELS)
    assert sorted(vocab.token(i).text for i in vocab.label_ids) == sorted(LABELS)
    assert all(vocab.token(i).kind == "label" for i in vocab.label_ids)
    every = vocab.label_mask()
    assert every.dtype == torch.bool and every.shape == (len(vocab),)
    assert every.nonzero().flatten().tolist() == list(vocab.label_ids)
    some = vocab.label_mask(["ax-mp", "wi", "missing"])
    assert some.nonzero().flatten().tolist() == sorted([vocab.label_id("ax-mp"), vocab.label_id("wi")])
    assert vocab.unknown[Token("label", "missing")] == 1
