"""The Metamath sequence formats: vocabulary, exact sources, round trips, counted failures."""

from __future__ import annotations

import pytest

from core.errors import ModelError
from core.metamath import read_database
from core.metamath.embedded import embedded_database_path
from core.metamath.environment import Tactic
from core.models.formats import (
    CONDITIONING,
    STOP_TACTIC,
    Codec,
    Outcome,
    backward_source_tokens,
    build_vocabulary,
    free_variables,
    graph_source_tokens,
    parse_tactic_tokens,
    tactic_tokens,
    tokens_text,
)  # fmt: skip
from core.models.vocab import Token


@pytest.fixture(scope="module")
def vocab(db):
    return build_vocabulary(db)


def codec(vocab, source=64, target=32) -> Codec:
    return Codec(vocab, max_source_len=source, max_target_len=target)


def s(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def test_the_vocabulary_has_every_symbol_the_provable_labels_and_the_conditioning_tokens(db, vocab):
    assert all(Token("symbol", x) in vocab for x in db.constants | db.variables)
    assert Token("label", "ax-mp") in vocab and Token("label", "mp2") in vocab
    assert Token("label", "wi") not in vocab and Token("label", "wph") not in vocab  # syntax, floating
    assert Token("label", "mp2.1") not in vocab  # an essential hypothesis is not a tactic
    assert vocab.specials[-len(CONDITIONING) - 3 :] == ["<BACKWARD>", "<FORWARD>", "<GENERATOR>", *CONDITIONING]
    assert build_vocabulary(db) == vocab  # deterministic


def test_sources_are_written_exactly_as_documented():
    backward = backward_source_tokens(s("|- ch"), [s("|- ph"), s("|- ( ph -> ch )")])
    assert tokens_text(backward) == "<BACKWARD> <GOAL> |- ch <HYP> |- ph <HYP> |- ( ph -> ch )"
    forward, dropped = graph_source_tokens(s("|- ch"), [s("|- ph")], [s("|- ps"), s("|- ( ps -> ch )")])
    assert dropped == 0
    assert tokens_text(forward) == "<FORWARD> <GOAL> |- ch <HYP> |- ph <NODE> |- ( ps -> ch ) <NODE> |- ps"
    generator, _ = graph_source_tokens(None, [s("|- ph")], [s("|- ps")], conditioning=["<HARD>"])
    assert tokens_text(generator) == "<GENERATOR> <HARD> <HYP> |- ph <NODE> |- ps"


def test_long_graphs_keep_their_newest_nodes(vocab):
    nodes = [s("|- ph"), s("|- ps"), s("|- ( ph -> ps )")]
    tokens, dropped = graph_source_tokens(None, [], nodes, max_len=11)
    assert dropped == 1 and tokens_text(tokens) == "<GENERATOR> <NODE> |- ( ph -> ps ) <NODE> |- ps"
    small = codec(vocab, source=11)
    ids = small.graph_source(None, [], nodes)
    assert ids is not None and len(ids) <= 11 and small.counters[Outcome.GRAPH_CAPPED.value] == 1
    # The header alone does not fit: the source is refused and counted.
    assert small.graph_source(s("|- ( ( ph -> ps ) -> ( ph -> ps ) )"), [], nodes) is None
    assert small.counters[Outcome.SOURCE_TOO_LONG.value] == 1


@pytest.mark.parametrize("label", ["ax-mp", "syl", "ax-2", "mp2"])
def test_tactics_round_trip_through_tokens_and_ids(db, vocab, label):
    assertion = db.assertion(label)
    full = {v: s(f"( {v} -> -. ph )") for v in assertion.variables}
    for variables in (free_variables(assertion), assertion.variables):
        tactic = Tactic(label, {v: full[v] for v in variables})
        tokens = tactic_tokens(tactic, variables)
        assert parse_tactic_tokens(tokens, db=db) == (tactic, Outcome.OK)
        c = codec(vocab)
        ids = c.target(tactic, variables)
        decoded = c.decode(ids, db=db)
        assert decoded.tactic == tactic and decoded.outcome is Outcome.OK and decoded.text == tokens_text(tokens)
    assert free_variables(db.assertion("ax-mp")) == ["ph"] and free_variables(db.assertion("ax-2")) == []


def test_stop_round_trips_only_where_allowed(vocab):
    c = codec(vocab)
    assert c.decode(c.stop_target(), allow_stop=True).tactic == STOP_TACTIC
    assert c.decode(c.stop_target()).outcome is Outcome.UNEXPECTED_STOP
    assert c.counters == {Outcome.UNEXPECTED_STOP.value: 1}


def _ids(vocab, text: str) -> list[int]:
    """Output text to ids: <...> specials, @label, anything else a symbol."""
    tokens = []
    for word in text.split():
        if word.startswith("<") and word.endswith(">") and len(word) > 2:
            tokens.append(Token("special", word))
        elif word.startswith("@"):
            tokens.append(Token("label", word[1:]))
        else:
            tokens.append(Token("symbol", word))
    return vocab.encode(tokens)


@pytest.mark.parametrize(
    "text, outcome",
    [
        ("", Outcome.EMPTY),
        ("<UNK>", Outcome.UNK_TOKEN),
        ("@ax-mp <SUBST> ph <UNK> </SUBST>", Outcome.UNK_TOKEN),
        ("ph <SUBST> ph ps </SUBST>", Outcome.NOT_A_LABEL),
        ("<SUBST> ph ps </SUBST>", Outcome.NOT_A_LABEL),
        ("@ax-mp <SUBST> ph ps", Outcome.BAD_SUBST),
        ("@ax-mp ph ps </SUBST>", Outcome.BAD_SUBST),
        ("@ax-mp <SUBST> </SUBST>", Outcome.BAD_SUBST),
        ("@ax-mp <SUBST> ph <SUBST> ps </SUBST>", Outcome.BAD_SUBST),
        ("@ax-mp <SUBST> ph ps </SUBST> @syl", Outcome.BAD_SUBST),
        ("<STOP> @ax-mp", Outcome.BAD_SUBST),
        ("@ax-mp <SUBST> th ps </SUBST>", Outcome.UNKNOWN_VARIABLE),
        ("@ax-mp <SUBST> ph ps </SUBST> <SUBST> ph ch </SUBST>", Outcome.DUPLICATE_VARIABLE),
    ],
)
def test_malformed_outputs_are_counted_never_raised(db, vocab, text, outcome):
    c = codec(vocab)
    decoded = c.decode(_ids(vocab, text), db=db, allow_stop=True)
    assert decoded.tactic is None and decoded.outcome is outcome and not decoded.ok
    assert c.counters == {outcome.value: 1}


@pytest.mark.parametrize(
    "text, substitution",
    [
        ("@ax-mp <SUBST> ph <UNK> </SUBST>", {}),
        ("@ax-mp <SUBST> ph ps", {}),
        ("@ax-mp <SUBST> ph ps </SUBST> <SUBST> ps", {"ph": ("ps",)}),
        ("@ax-mp <SUBST> ph ps </SUBST> <SUBST> th ch </SUBST>", {"ph": ("ps",)}),
        ("@ax-mp <SUBST> ph ps </SUBST> <SUBST> ph ch </SUBST>", {"ph": ("ps",)}),
        ("@ax-mp <SUBST> ph ps </SUBST> <SUBST> ps <UNK> </SUBST>", {"ph": ("ps",)}),
    ],
)
def test_partial_decoding_keeps_the_label_and_the_well_formed_start(db, vocab, text, substitution):
    c = codec(vocab)
    decoded = c.decode(_ids(vocab, text), db=db, partial=True)
    assert decoded.tactic == Tactic("ax-mp", substitution) and decoded.outcome is Outcome.PARTIAL
    assert c.counters == {Outcome.PARTIAL.value: 1}
    strict = codec(vocab).decode(_ids(vocab, text), db=db)  # the twin: without partial, nothing is kept
    assert strict.tactic is None and strict.outcome is not Outcome.PARTIAL


@pytest.mark.parametrize("text", ["", "<UNK>", "<UNK> @ax-mp", "ph <SUBST> ph ps </SUBST>", "<SUBST> ph ps"])
def test_partial_decoding_still_needs_a_label_first(db, vocab, text):
    decoded = codec(vocab).decode(_ids(vocab, text), db=db, partial=True)
    assert decoded.tactic is None and decoded.outcome is not Outcome.PARTIAL


def test_partial_decoding_still_needs_a_known_label(db, vocab):
    other = read_database(embedded_database_path(), stop_at="syl")
    decoded = codec(vocab).decode(_ids(vocab, "@syl <SUBST> ps"), db=other, partial=True)
    assert decoded.tactic is None and decoded.outcome is Outcome.UNKNOWN_LABEL


def test_a_well_formed_tactic_decodes_ok_with_partial_too(db, vocab):
    decoded = codec(vocab).decode(_ids(vocab, "@ax-mp <SUBST> ph ps </SUBST>"), db=db, partial=True)
    assert decoded.tactic == Tactic("ax-mp", {"ph": ("ps",)}) and decoded.outcome is Outcome.OK


def test_an_unknown_label_is_only_detected_against_a_database(db, vocab):
    other = read_database(embedded_database_path(), stop_at="syl")  # a1i exists, syl does not
    ids = _ids(vocab, "@syl <SUBST> ps ph </SUBST>")
    assert codec(vocab).decode(ids, db=db).ok
    c = codec(vocab)
    assert c.decode(ids, db=other).outcome is Outcome.UNKNOWN_LABEL and c.counters[Outcome.UNKNOWN_LABEL.value] == 1
    assert codec(vocab).decode(ids).ok  # without a database, any label of the vocabulary reads


def test_unknown_symbols_and_long_sequences_give_counted_outcomes(vocab):
    c = codec(vocab, source=9, target=6)
    assert c.backward_source(s("|- ( ph -> xx )"), []) is None
    assert c.counters[Outcome.UNKNOWN_SYMBOL.value] == 1
    ids = c.backward_source(s("|- ( ph -> xx )"), [], allow_unknown=True)
    assert ids is not None and vocab.unk_id in ids and c.counters[Outcome.UNKNOWN_SYMBOL.value] == 2
    assert c.backward_source(s("|- ( ph -> ( ps -> ph ) )"), []) is None
    assert c.counters[Outcome.SOURCE_TOO_LONG.value] == 1
    long = Tactic("ax-mp", {"ph": s("( ph -> ( ps -> ph ) )")})
    assert c.target(long, ["ph"]) is None and c.counters[Outcome.TARGET_TOO_LONG.value] == 1
    assert c.target(Tactic("nosuch", {}), []) is None and c.counters[Outcome.TARGET_UNKNOWN_LABEL.value] == 1
    # The accepted twins: the same shapes within the limits.
    assert c.backward_source(s("|- ( ph -> ph )"), []) is not None
    assert c.target(Tactic("ax-mp", {"ph": s("ph")}), ["ph"]) is not None


def test_a_conditioning_token_must_be_in_the_vocabulary(vocab):
    with pytest.raises(ModelError, match="<NOPE>"):
        codec(vocab).graph_source(None, [], [], conditioning=["<NOPE>"])
    assert codec(vocab).graph_source(None, [s("|- ph")], [], conditioning=["<EASY>"])[1] == vocab.special_id("<EASY>")


def test_a_codec_refuses_a_model_of_another_vocabulary(vocab):
    from core.models.transformer import ModelConfig

    with pytest.raises(ModelError, match="vocab_size"):
        Codec.for_model(vocab, ModelConfig.named("tiny", vocab_size=len(vocab) + 1))
    config = ModelConfig.named("tiny", vocab_size=len(vocab))
    c = Codec.for_model(vocab, config)
    assert (c.max_source_len, c.max_target_len) == (config.max_source_len, config.max_target_len - 1)
