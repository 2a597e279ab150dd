"""Batched decoding with a :class:`~core.models.transformer.Seq2Seq`: greedy, sampling, beam search, scoring.

Every decoder takes a batch of *sources* (lists of token ids of varying lengths; padding is done here)
and returns, per source, a list of :class:`Candidate` ``(tokens, logprob)`` sorted best first:

- ``tokens`` are the generated ids, without ``<BOS>`` and without the final ``<EOS>``;
- ``logprob`` is the summed log-probability of ``tokens + [<EOS>]`` under the model at temperature 1,
  i.e. exactly what :func:`score` returns for the same source and tokens (up to float rounding);
- ``max_len`` bounds ``len(tokens)`` (default: ``config.max_target_len - 1``); a sequence reaching it is
  ended with ``<EOS>``, whose true log-probability is counted, so every candidate is complete.

Constrained decoding: ``allowed_first`` restricts the FIRST generated token (e.g. to the labels available
in a goal's context): the other first tokens get probability zero and the first-step distribution is
renormalised over the allowed ones, both in decoding and in :func:`score`. It is either a boolean tensor
(V,) for all sources or (B, V), or a list with one entry per source: ``None`` (no constraint), a boolean
(V,) tensor, or an iterable of allowed ids. A source whose allowed set is empty raises
:class:`~core.errors.ModelError`.

All modes run the model once over the sources, then one cached decoder step per token; finished sources
leave the batch. :func:`measure` times a decoder for benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from core.errors import ModelError
from core.models.transformer import Seq2Seq

AllowedFirst = torch.Tensor | Sequence[torch.Tensor | Iterable[int] | None] | None


class Candidate(NamedTuple):
    tokens: list[int]
    logprob: float


@dataclass
class DecodeStats:
    """Work done by a decoder: ``steps`` decoder calls over ``tokens`` rows in all (rows x steps)."""

    steps: int = 0
    tokens: int = 0


# --- batching --------------------------------------------------------------------------------------


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``seqs`` into (B, L) ids and a (B, L) mask that is True at padding positions."""
    length = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in seqs])
    pad = torch.arange(length)[None, :] >= lengths[:, None]
    return ids.to(device), pad.to(device)


def check_sources(model: Seq2Seq, sources: Sequence[Sequence[int]]) -> None:
    """Raise :class:`ModelError` naming the first source that is empty, too long or has a bad id."""
    if not sources:
        raise ModelError("decoding: no sources given")
    config = model.config
    for i, src in enumerate(sources):
        if not src:
            raise ModelError(f"source {i} is empty; a source needs at least one token")
        if len(src) > config.max_source_len:
            raise ModelError(
                f"source {i} has {len(src)} tokens, more than the model's max_source_len "
                f"{config.max_source_len}; filter or truncate it first"
            )
        if min(src) < 0 or max(src) >= config.vocab_size:
            raise ModelError(f"source {i} has a token id outside 0..{config.vocab_size - 1}")


def first_token_mask(
    allowed_first: AllowedFirst, batch: int, vocab_size: int, device: torch.device
) -> torch.Tensor | None:
    """``allowed_first`` (see the module doc) as a (batch, vocab_size) boolean tensor, or ``None``."""
    if allowed_first is None:
        return None
    if isinstance(allowed_first, torch.Tensor):
        mask = allowed_first.to(device=device, dtype=torch.bool)
        mask = mask.expand(batch, -1) if mask.dim() == 1 else mask
    else:
        if len(allowed_first) != batch:
            raise ModelError(f"allowed_first has {len(allowed_first)} entries for {batch} sources")
        mask = torch.stack([_allowed_row(item, vocab_size) for item in allowed_first]).to(device)
    if mask.shape != (batch, vocab_size):
        raise ModelError(f"allowed_first mask has shape {tuple(mask.shape)}, expected ({batch}, {vocab_size})")
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ModelError(f"the allowed first tokens of source {empty[0]} exclude every token; nothing can be decoded")
    return mask


def _allowed_row(item: torch.Tensor | Iterable[int] | None, vocab_size: int) -> torch.Tensor:
    if item is None:
        return torch.ones(vocab_size, dtype=torch.bool)
    if isinstance(item, torch.Tensor) and item.dtype == torch.bool:
        if item.shape != (vocab_size,):
            raise ModelError(f"an allowed_first mask has shape {tuple(item.shape)}, expected ({vocab_size},)")
        return item.cpu()
    ids = torch.as_tensor(list(item), dtype=torch.long)
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ModelError(f"allowed_first has a token id outside 0..{vocab_size - 1}")
    row = torch.zeros(vocab_size, dtype=torch.bool)
    row[ids] = True
    return row


def _max_len(model: Seq2Seq, max_len: int | None) -> int:
    limit = model.config.max_target_len - 1
    if max_len is None:
        return limit
    if not 1 <= max_len <= limit:
        raise ModelError(f"max_len must lie in 1..{limit} (the model's max_target_len - 1), got {max_len}")
    return max_len


@contextmanager
def _inference(model: Seq2Seq) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd, restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _encode(model: Seq2Seq, sources: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    check_sources(model, sources)
    src, pad = pad_sequences(sources, model.config.pad_id, model.device)
    return model.encode(src, pad), pad


# --- greedy and sampling ---------------------------------------------------------------------------


def greedy(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    *,
    max_len: int | None = None,
    allowed_first: AllowedFirst = None,
    stats: DecodeStats | None = None,
) -> list[list[Candidate]]:
    """The most likely next token at every step: one candidate per source."""
    return _sample(model, sources, 1, None, max_len, allowed_first, None, stats)


def sample(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    *,
    n: int = 1,
    temperature: float = 1.0,
    max_len: int | None = None,
    allowed_first: AllowedFirst = None,
    generator: torch.Generator | None = None,
    stats: DecodeStats | None = None,
) -> list[list[Candidate]]:
    """``n`` independent samples per source from softmax(logits / temperature), sorted by logprob.

    Samples may repeat. ``logprob`` is under the model at temperature 1 (see the module doc).
    ``generator`` (on the model's device) makes sampling reproducible.
    """
    if n < 1:
        raise ModelError(f"sample: n must be at least 1, got {n}")
    if not temperature > 0:
        raise ModelError(f"sample: temperature must be positive, got {temperature} (use greedy for 0)")
    return _sample(model, sources, n, temperature, max_len, allowed_first, generator, stats)


def _sample(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    n: int,
    temperature: float | None,
    max_len: int | None,
    allowed_first: AllowedFirst,
    generator: torch.Generator | None,
    stats: DecodeStats | None,
) -> list[list[Candidate]]:
    """Shared loop of greedy (``temperature`` None) and sampling: ``n`` rows per source, in lockstep."""
    config, device = model.config, model.device
    max_len = _max_len(model, max_len)
    allowed = first_token_mask(allowed_first, len(sources), config.vocab_size, device)
    results: list[list[Candidate]] = [[] for _ in sources]
    with _inference(model):
        memory, pad = _encode(model, sources)
        cache = model.start_decoding(memory, pad, group=n, capacity=max_len + 1)
        rows = len(sources) * n
        row_ids = torch.arange(rows, device=device)  # original row (source * n + j) of each live row
        tokens = torch.full((rows,), config.bos_id, device=device)
        out = torch.full((rows, max_len), config.pad_id, device=device)
        logprob = torch.zeros(rows, device=device)
        length = torch.full((rows,), max_len, device=device)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        for t in range(max_len + 1):
            _count(stats, cache.num_rows)
            logits = model.decode_step(tokens, cache).float()
            if t == 0 and allowed is not None:
                vocab = logits.shape[-1]
                logits = logits.view(-1, n, vocab).masked_fill(~allowed[:, None, :], -torch.inf).view(-1, vocab)
            logp = F.log_softmax(logits, dim=-1)
            if t == max_len:
                next_tokens = torch.full_like(tokens, config.eos_id)
            elif temperature is None:
                next_tokens = logp.argmax(dim=-1)
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                next_tokens = torch.multinomial(probs, 1, generator=generator)[:, 0]
            step_logp = logp.gather(1, next_tokens[:, None])[:, 0]
            logprob += torch.where(done, 0.0, step_logp)
            ended = ~done & (next_tokens == config.eos_id)
            length = torch.where(ended, t, length)
            done |= ended
            if t < max_len:
                out[:, t] = torch.where(done, config.pad_id, next_tokens)
            tokens = next_tokens
            finished_groups = done.view(-1, n).all(dim=1)
            if finished_groups.any():
                _collect(results, finished_groups, n, row_ids, out, length, logprob)
                keep = (~finished_groups).nonzero().flatten()
                if len(keep) == 0:
                    break
                cache.select_groups(keep)
                live = (keep[:, None] * n + torch.arange(n, device=device)).flatten()
                row_ids, tokens, out, logprob, length, done = (
                    x[live] for x in (row_ids, tokens, out, logprob, length, done)
                )
    return [sorted(cands, key=lambda c: -c.logprob) for cands in results]


def _collect(
    results: list[list[Candidate]],
    finished_groups: torch.Tensor,
    n: int,
    row_ids: torch.Tensor,
    out: torch.Tensor,
    length: torch.Tensor,
    logprob: torch.Tensor,
) -> None:
    rows = (finished_groups.nonzero().flatten()[:, None] * n + torch.arange(n, device=out.device)).flatten()
    for row, tokens, size, lp in zip(
        row_ids[rows].tolist(), out[rows].tolist(), length[rows].tolist(), logprob[rows].tolist()
    ):
        results[row // n].append(Candidate(tokens[:size], lp))


def _count(stats: DecodeStats | None, rows: int) -> None:
    if stats is not None:
        stats.steps += 1
        stats.tokens += rows


# --- beam search -----------------------------------------------------------------------------------


def beam_search(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    *,
    k: int,
    max_len: int | None = None,
    allowed_first: AllowedFirst = None,
    length_penalty: float = 0.0,
    stats: DecodeStats | None = None,
) -> list[list[Candidate]]:
    """Up to ``k`` distinct candidates per source, best first (fewer only if fewer sequences exist).

    Candidates are ranked by ``logprob / ((5 + L) / 6) ** length_penalty`` with ``L = len(tokens) + 1``
    (GNMT's normalisation; the default 0 ranks by summed log-probability, which favours short outputs).
    As in the usual formulation, a hypothesis ending with ``<EOS>`` is kept only if it ranks among the
    step's top ``k`` extensions, and the ``k`` best other extensions carry on (so ``k = 1`` is greedy).
    A source stops when its ``k``-th best finished score beats every live beam's best reachable score
    (exact: log-probabilities only decrease).
    """
    if k < 1:
        raise ModelError(f"beam_search: k must be at least 1, got {k}")
    if length_penalty < 0:
        raise ModelError(f"beam_search: length_penalty must be >= 0, got {length_penalty}")
    config, device, vocab = model.config, model.device, model.config.vocab_size
    max_len = _max_len(model, max_len)
    allowed = first_token_mask(allowed_first, len(sources), vocab, device)

    def penalty(size: int) -> float:
        return ((5.0 + size + 1) / 6.0) ** length_penalty

    finished: list[list[tuple[float, Candidate]]] = [[] for _ in sources]
    with _inference(model):
        memory, pad = _encode(model, sources)
        cache = model.start_decoding(memory, pad, group=k, capacity=max_len + 1)
        active = torch.arange(len(sources), device=device)  # original source of each live group
        scores = torch.full((len(sources), k), -torch.inf, device=device)
        scores[:, 0] = 0.0
        tokens = torch.full((len(sources) * k,), config.bos_id, device=device)
        seqs = torch.empty((len(sources) * k, 0), dtype=torch.long, device=device)
        ranks = torch.arange(2 * k, device=device)
        for t in range(max_len + 1):
            _count(stats, cache.num_rows)
            groups = len(active)
            logits = model.decode_step(tokens, cache).float().view(groups, k, vocab)
            if t == 0 and allowed is not None:
                logits = logits.masked_fill(~allowed[:, None, :], -torch.inf)
            logp = F.log_softmax(logits, dim=-1)
            if t == max_len:  # only <EOS> may follow a full-length sequence
                eos = logp[..., config.eos_id].clone()
                logp = torch.full_like(logp, -torch.inf)
                logp[..., config.eos_id] = eos
            top, index = (scores[:, :, None] + logp).view(groups, k * vocab).topk(2 * k, dim=1)
            origin, token = index // vocab, index % vocab
            is_eos = token == config.eos_id
            ended = is_eos & (ranks < k) & torch.isfinite(top)
            if ended.any():
                source_of = active.tolist()
                for g, j in ended.nonzero().tolist():
                    prefix = seqs[g * k + int(origin[g, j])].tolist()
                    logprob = float(top[g, j])
                    finished[source_of[g]].append((logprob / penalty(len(prefix)), Candidate(prefix, logprob)))
            carry = ~is_eos & (torch.cumsum(~is_eos, dim=1) <= k)  # the k best non-<EOS> extensions
            scores = top[carry].view(groups, k)
            rows = (torch.arange(groups, device=device)[:, None] * k + origin[carry].view(groups, k)).flatten()
            tokens = token[carry]
            seqs = torch.cat([seqs[rows], tokens[:, None]], dim=1)
            cache.reorder_rows(rows)
            stop = _beams_done(finished, active.tolist(), scores[:, 0].tolist(), k, penalty(max_len))
            if any(stop):
                keep = torch.tensor([not s for s in stop], device=device).nonzero().flatten()
                if len(keep) == 0:
                    break
                cache.select_groups(keep)
                live = (keep[:, None] * k + torch.arange(k, device=device)).flatten()
                active, scores, tokens, seqs = active[keep], scores[keep], tokens[live], seqs[live]
    return [[c for _, c in sorted(f, key=lambda x: -x[0])[:k]] for f in finished]


def _beams_done(
    finished: list[list[tuple[float, Candidate]]],
    sources: list[int],
    best_live: list[float],
    k: int,
    lp_max: float,
) -> list[bool]:
    """Per live group: no live beam left, or its k best finished scores beat any reachable score."""
    stop = []
    for source, best in zip(sources, best_live):
        if best == -float("inf"):
            stop.append(True)
            continue
        done = sorted((s for s, _ in finished[source]), reverse=True)
        # A live beam's logprob only decreases and its normaliser is at most lp_max.
        stop.append(len(done) >= k and done[k - 1] >= best / lp_max)
    return stop


# --- scoring ---------------------------------------------------------------------------------------


def target_logprobs(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    allowed_first: AllowedFirst = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced per-token log-probs of ``targets + [<EOS>]``: (B, T) values (0 at padding) and mask.

    Runs in the caller's grad and train/eval mode (training builds its losses on it).
    """
    logits, tgt_out, mask = _target_logits(model, sources, targets, allowed_first)
    distribution = F.log_softmax(logits, dim=-1)
    logp = distribution.gather(-1, tgt_out[..., None])[..., 0]
    return torch.where(mask, logp, 0.0), mask


def target_logprobs_and_entropy(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    allowed_first: AllowedFirst = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`target_logprobs`, with the entropy of the model's distribution at each target position
    (B, T; 0 at padding) between the log-probs and the mask."""
    logits, tgt_out, mask = _target_logits(model, sources, targets, allowed_first)
    distribution = F.log_softmax(logits, dim=-1)
    logp = distribution.gather(-1, tgt_out[..., None])[..., 0]
    probabilities = distribution.exp()
    entropy = -(probabilities * torch.where(probabilities > 0, distribution, 0.0)).sum(dim=-1)
    return torch.where(mask, logp, 0.0), torch.where(mask, entropy, 0.0), mask


def _target_logits(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    allowed_first: AllowedFirst,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced logits (B, T, V), first positions masked by ``allowed_first``; the target ids (B, T) and
    the mask of real positions."""
    config, device = model.config, model.device
    check_sources(model, sources)
    if len(targets) != len(sources):
        raise ModelError(f"{len(targets)} targets for {len(sources)} sources")
    _check_targets(model, targets)
    src, src_pad = pad_sequences(sources, config.pad_id, device)
    tgt_in, _ = pad_sequences([[config.bos_id, *t] for t in targets], config.pad_id, device)
    tgt_out, tgt_pad = pad_sequences([[*t, config.eos_id] for t in targets], config.pad_id, device)
    logits = model(src, tgt_in, src_pad).float()
    allowed = first_token_mask(allowed_first, len(targets), config.vocab_size, device)
    if allowed is not None and torch.is_grad_enabled():
        first = logits[:, :1].masked_fill(~allowed[:, None, :], -torch.inf)
        logits = torch.cat([first, logits[:, 1:]], dim=1)
    elif allowed is not None:
        logits[:, 0].masked_fill_(~allowed, -torch.inf)  # no autograd: in place, not a copy of every position
    return logits, tgt_out, ~tgt_pad


def _check_targets(model: Seq2Seq, targets: Sequence[Sequence[int]]) -> None:
    config = model.config
    for i, target in enumerate(targets):
        if target and (min(target) < 0 or max(target) >= config.vocab_size):
            raise ModelError(f"target {i} has a token id outside 0..{config.vocab_size - 1}")
    too_long = [i for i, t in enumerate(targets) if len(t) >= config.max_target_len]
    if too_long:
        raise ModelError(
            f"target {too_long[0]} has {len(targets[too_long[0]])} tokens; the model takes at most "
            f"max_target_len - 1 = {config.max_target_len - 1}"
        )


def score(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    *,
    allowed_first: AllowedFirst = None,
) -> torch.Tensor:
    """(B,) summed log-probs of ``targets[i] + [<EOS>]`` given ``sources[i]``; differentiable under grad.

    Agrees with the ``logprob`` of decoded candidates (same ``allowed_first``, same renormalisation).
    """
    logits, tgt_out, mask = _target_logits(model, sources, targets, allowed_first)
    return _summed_logprobs(logits, tgt_out, mask)


def _summed_logprobs(logits: torch.Tensor, tgt_out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logp = logits.gather(-1, tgt_out[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)
    return torch.where(mask, logp, 0.0).sum(dim=1)


def score_shared(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    source_of: Sequence[int],
    *,
    allowed_first: AllowedFirst = None,
) -> list[float]:
    """:func:`score` for many targets against few sources, without autograd: target ``i`` given
    ``sources[source_of[i]]`` (``allowed_first`` per target). Each source is encoded once, and the targets
    are decoded in buckets of similar length (powers of two), so a long target does not pad every short one.
    """
    if len(source_of) != len(targets) or any(not 0 <= i < len(sources) for i in source_of):
        raise ModelError(f"source_of must give each of the {len(targets)} targets a source in 0..{len(sources) - 1}")
    if not targets:
        return []
    config, device = model.config, model.device
    _check_targets(model, targets)
    allowed = first_token_mask(allowed_first, len(targets), config.vocab_size, device)
    values = [0.0] * len(targets)
    with _inference(model):
        memory, pad = _encode(model, sources)
        cross = model.cross_keys_values(memory)
        buckets: dict[int, list[int]] = {}
        for i, target in enumerate(targets):
            buckets.setdefault((len(target) + 1).bit_length(), []).append(i)
        for rows in buckets.values():
            tgt_in, _ = pad_sequences([[config.bos_id, *targets[i]] for i in rows], config.pad_id, device)
            tgt_out, tgt_pad = pad_sequences([[*targets[i], config.eos_id] for i in rows], config.pad_id, device)
            index = torch.tensor([source_of[i] for i in rows], dtype=torch.long, device=device)
            logits = model.teacher_forced(cross, pad, tgt_in, index).float()
            if allowed is not None:
                logits[:, 0].masked_fill_(~allowed[rows], -torch.inf)
            for i, value in zip(rows, _summed_logprobs(logits, tgt_out, ~tgt_pad).tolist()):
                values[i] = value
    return values


# --- benchmarking ----------------------------------------------------------------------------------


def measure(
    decoder: Callable[..., list[list[Candidate]]],
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    **kwargs: Any,
) -> tuple[int, float]:
    """Run ``decoder(model, sources, **kwargs)`` once: (decoder tokens evaluated, seconds).

    Tokens count every row fed through the decoder (all beams or samples), so tokens / seconds is the
    decoder's throughput.
    """
    stats = DecodeStats()
    start = time.perf_counter()
    decoder(model, sources, stats=stats, **kwargs)
    return stats.tokens, time.perf_counter() - start
