"""Greedy, sampling and beam search: agreement with each other and with score, constraints, limits."""

from __future__ import annotations

import pytest
import torch

from core.errors import ModelError
from core.models.decoding import DecodeStats, beam_search, greedy, measure, sample, score, score_shared

SOURCES = [[11, 12, 13], [14, 15, 16, 17, 18, 19], [20, 21], [22, 23, 11, 12]]


def assert_scores_agree(model, sources, results, allowed_first=None):
    flat_sources = [src for src, cands in zip(sources, results) for _ in cands]
    flat = [c for cands in results for c in cands]
    allowed = None
    if allowed_first is not None:
        allowed = [a for a, cands in zip(allowed_first, results) for _ in cands]
    with torch.no_grad():
        scored = score(model, flat_sources, [c.tokens for c in flat], allowed_first=allowed)
    torch.testing.assert_close(scored, torch.tensor([c.logprob for c in flat]), atol=1e-4, rtol=1e-5)


def test_the_trained_model_decodes_the_reversal_in_every_mode(trained, reversal):
    model, _ = trained
    sources = [src for src, _ in reversal]
    expected = [tgt for _, tgt in reversal]
    assert [c[0].tokens for c in greedy(model, sources)] == expected
    assert [c[0].tokens for c in beam_search(model, sources, k=4)] == expected
    assert [c[0].tokens for c in sample(model, sources, n=3, temperature=0.05)] == expected


@pytest.mark.parametrize("which", ["trained", "untrained"])
def test_greedy_equals_beam_search_with_one_beam(which, trained, untrained):
    model = trained[0] if which == "trained" else untrained
    by_greedy = greedy(model, SOURCES, max_len=12)
    by_beam = beam_search(model, SOURCES, k=1, max_len=12)
    assert [c[0].tokens for c in by_beam] == [c[0].tokens for c in by_greedy]
    torch.testing.assert_close(
        torch.tensor([c[0].logprob for c in by_beam]), torch.tensor([c[0].logprob for c in by_greedy])
    )


@pytest.mark.parametrize("which", ["trained", "untrained"])
def test_beam_search_returns_k_distinct_sorted_candidates_at_least_as_good_as_greedy(which, trained, untrained):
    model = trained[0] if which == "trained" else untrained
    by_greedy = greedy(model, SOURCES, max_len=10)
    by_beam = beam_search(model, SOURCES, k=6, max_len=10)
    for cands, best in zip(by_beam, by_greedy):
        assert len(cands) == 6
        assert len({tuple(c.tokens) for c in cands}) == 6
        logprobs = [c.logprob for c in cands]
        assert logprobs == sorted(logprobs, reverse=True)
        assert logprobs[0] >= best[0].logprob - 1e-5
        assert all(len(c.tokens) <= 10 for c in cands)
    assert_scores_agree(model, SOURCES, by_beam)


def test_length_penalty_ranks_by_normalised_score_and_favours_longer_candidates(trained):
    model, _ = trained
    plain = beam_search(model, SOURCES, k=4)
    normalised = beam_search(model, SOURCES, k=4, length_penalty=2.0)
    for cands in normalised:
        ranks = [c.logprob / ((5 + len(c.tokens) + 1) / 6) ** 2.0 for c in cands]
        assert ranks == sorted(ranks, reverse=True)
    mean_length = lambda results: sum(len(c.tokens) for cands in results for c in cands) / 16  # noqa: E731
    assert mean_length(normalised) > mean_length(plain)
    assert_scores_agree(model, SOURCES, normalised)


def test_low_temperature_sampling_is_greedy_and_high_temperature_is_diverse(untrained):
    by_greedy = greedy(untrained, SOURCES, max_len=8)
    generator = torch.Generator().manual_seed(0)
    cold = sample(untrained, SOURCES, n=5, temperature=1e-3, max_len=8, generator=generator)
    hot = sample(untrained, SOURCES, n=20, temperature=3.0, max_len=8, generator=generator)
    for cold_cands, hot_cands, best in zip(cold, hot, by_greedy):
        assert len(cold_cands) == 5 and all(c.tokens == best[0].tokens for c in cold_cands)
        assert len(hot_cands) == 20 and len({tuple(c.tokens) for c in hot_cands}) >= 15
        assert [c.logprob for c in hot_cands] == sorted((c.logprob for c in hot_cands), reverse=True)
    assert_scores_agree(untrained, SOURCES, hot)


def test_sampling_is_reproducible_with_a_seeded_generator(untrained):
    def draw(seed):
        return sample(untrained, SOURCES, n=4, max_len=6, generator=torch.Generator().manual_seed(seed))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_a_batch_decodes_like_its_sources_one_by_one(untrained):
    """Padding, pruning of finished sources and grouping must not leak between sources."""
    for decode, kwargs in ((greedy, {}), (beam_search, {"k": 3})):
        together = decode(untrained, SOURCES, max_len=9, **kwargs)
        alone = [decode(untrained, [src], max_len=9, **kwargs)[0] for src in SOURCES]
        for a, b in zip(together, alone):
            assert [c.tokens for c in a] == [c.tokens for c in b]
            torch.testing.assert_close(torch.tensor([c.logprob for c in a]), torch.tensor([c.logprob for c in b]))


def test_the_first_token_constraint_is_respected_in_every_mode(trained, reversal):
    model, _ = trained
    sources = [src for src, _ in reversal[:4]]
    allowed = [[13, 14], None, torch.arange(24) >= 20, {11}]
    allowed_sets = [{13, 14}, set(range(24)), set(range(20, 24)), {11}]
    generator = torch.Generator().manual_seed(0)
    for results in (
        greedy(model, sources, allowed_first=allowed),
        beam_search(model, sources, k=3, allowed_first=allowed),
        sample(model, sources, n=6, temperature=2.0, allowed_first=allowed, generator=generator),
    ):
        for cands, ok in zip(results, allowed_sets):
            assert all(c.tokens and c.tokens[0] in ok for c in cands)
        assert_scores_agree(model, sources, results, allowed_first=allowed)
    # The unconstrained source still decodes its reversal; a constrained one had to start otherwise.
    unconstrained = greedy(model, sources)
    constrained = greedy(model, sources, allowed_first=allowed)
    assert constrained[1] == unconstrained[1]
    first_tokens = [reversal[i][1][0] for i in range(4)]
    changed = [i for i in (0, 2, 3) if first_tokens[i] not in allowed_sets[i]]
    assert changed and all(constrained[i][0].tokens != reversal[i][1] for i in changed)


def test_a_mask_for_every_source_and_a_single_mask_are_accepted(trained):
    model, _ = trained
    mask = torch.zeros(24, dtype=torch.bool)
    mask[[15, 16]] = True
    for allowed in (mask, mask.expand(len(SOURCES), -1)):
        assert all(c[0].tokens[0] in (15, 16) for c in greedy(model, SOURCES, allowed_first=allowed))


def test_a_constraint_excluding_everything_is_a_clear_error(trained):
    model, _ = trained
    nothing = [None, [], None, None]
    for decode in (greedy, sample, lambda m, s, **kw: beam_search(m, s, k=2, **kw)):
        with pytest.raises(ModelError, match="source 1 exclude every token"):
            decode(model, SOURCES, allowed_first=nothing)
    with pytest.raises(ModelError, match="source 0 exclude every token"):
        score(model, SOURCES[:1], [[11]], allowed_first=torch.zeros(24, dtype=torch.bool))
    with pytest.raises(ModelError, match="2 entries for 4 sources"):
        greedy(model, SOURCES, allowed_first=[None, None])
    with pytest.raises(ModelError, match="outside"):
        greedy(model, SOURCES, allowed_first=[[99], None, None, None])


def test_max_len_ends_every_candidate_and_is_scored_honestly(untrained):
    for results in (
        greedy(untrained, SOURCES, max_len=2),
        beam_search(untrained, SOURCES, k=5, max_len=2),
        sample(untrained, SOURCES, n=4, max_len=2, temperature=3.0),
    ):
        assert all(len(c.tokens) <= 2 for cands in results for c in cands)
        assert_scores_agree(untrained, SOURCES, results)
    with pytest.raises(ModelError, match="max_len must lie in 1..63"):
        greedy(untrained, SOURCES, max_len=64)


def test_bad_sources_are_clear_errors(untrained):
    with pytest.raises(ModelError, match="source 1 is empty"):
        greedy(untrained, [[11], []])
    with pytest.raises(ModelError, match="source 0 has 300 tokens"):
        beam_search(untrained, [[11] * 300], k=2)
    with pytest.raises(ModelError, match="token id outside"):
        sample(untrained, [[11, 24]])
    with pytest.raises(ModelError, match="no sources"):
        greedy(untrained, [])
    with pytest.raises(ModelError, match="target 0 has 64 tokens"):
        score(untrained, [[11]], [[11] * 64])
    with pytest.raises(ModelError, match="temperature must be positive"):
        sample(untrained, SOURCES, temperature=0.0)


def test_score_is_differentiable_and_decoding_restores_training_mode(untrained):
    untrained.train()
    greedy(untrained, SOURCES, max_len=3)
    assert untrained.training
    total = score(untrained, SOURCES[:2], [[11, 12], []]).sum()
    total.backward()
    assert untrained.embed.weight.grad is not None and torch.isfinite(untrained.embed.weight.grad).all()


def test_measure_counts_the_rows_fed_through_the_decoder(untrained):
    tokens, seconds = measure(greedy, untrained, SOURCES[:1], max_len=5)
    assert seconds > 0 and 1 <= tokens <= 6
    stats = DecodeStats()
    beam_search(untrained, SOURCES, k=3, max_len=5, stats=stats)
    assert stats.steps >= 1 and stats.tokens <= stats.steps * 3 * len(SOURCES)
    tokens, _ = measure(beam_search, untrained, SOURCES, k=3, max_len=5)
    assert tokens == stats.tokens


def test_scoring_many_targets_against_shared_sources_agrees_with_repeated_sources(untrained):
    sources = SOURCES[:3]
    targets = [[11, 12], [13], [14, 15, 16, 17, 18, 19, 20], [], [12, 11, 13], [17]]
    source_of = [0, 0, 1, 1, 2, 2]
    allowed = [[11, 13, 14], [11, 13, 14], [13, 14, 12], [13, 14, 12], [12, 17], [12, 17]]
    shared = score_shared(untrained, sources, targets, source_of, allowed_first=allowed)
    with torch.no_grad():
        repeated = score(untrained, [sources[i] for i in source_of], targets, allowed_first=allowed)
    torch.testing.assert_close(torch.tensor(shared), repeated, atol=1e-5, rtol=1e-5)
    unmasked = score_shared(untrained, sources, targets, source_of)
    assert not torch.allclose(torch.tensor(shared), torch.tensor(unmasked))  # the mask renormalises the first token
    assert score_shared(untrained, sources, [], []) == []


def test_scoring_against_shared_sources_refuses_a_target_without_its_source(untrained):
    with pytest.raises(ModelError, match="source_of must give each of the 2 targets a source in 0..1"):
        score_shared(untrained, SOURCES[:2], [[11], [12]], [0, 2])
    with pytest.raises(ModelError, match="source_of must give each"):
        score_shared(untrained, SOURCES[:2], [[11], [12]], [0])
