"""A small pre-LayerNorm transformer encoder-decoder, with a key/value cache for fast decoding.

:class:`ModelConfig` is a frozen, validated dataclass saved as JSON beside the weights; named sizes:

- ``tiny``: for tests (milliseconds per step);
- ``small``: for CPU runs (about 6M parameters plus embeddings: d_model 256, 3 + 3 layers);
- ``base``: for GPUs (d_model 512, 6 + 6 layers).

:class:`Seq2Seq` is the model. Training calls ``model(src, tgt_in)`` for logits over all positions;
decoding calls :meth:`Seq2Seq.encode` once, :meth:`Seq2Seq.start_decoding` to build a
:class:`DecoderCache` (cross-attention keys/values computed once per source), then
:meth:`Seq2Seq.decode_step` once per generated token. All rows of a cache advance in lockstep; rows come
in *groups* of equal size sharing one source (the beams or samples of that source), so the
cross-attention of a group is a single attention of ``group`` queries over one memory.

Padding masks are boolean with ``True`` at *padding* positions (PyTorch's ``key_padding_mask``
convention); when omitted they are computed from ``config.pad_id``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError, ModelError

POSITIONALS = ("learned", "sinusoidal")


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a :class:`Seq2Seq`; ``max_target_len`` counts the ``<BOS>`` fed to the decoder."""

    vocab_size: int
    d_model: int = 256
    n_heads: int = 4
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    d_ff: int = 1024
    dropout: float = 0.0
    max_source_len: int = 1024
    max_target_len: int = 256
    positional: str = "learned"
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kinds: dict[str, type | tuple[type, ...]] = {"float": (int, float), "str": str}
            wanted = kinds.get(str(field.type), int)
            if isinstance(value, bool) or not isinstance(value, wanted):
                self._bad(field.name, value, f"must be of type {field.type}")
        positive = ("vocab_size", "d_model", "n_heads", "d_ff", "max_source_len", "max_target_len")
        for name in positive:
            if getattr(self, name) < 1:
                self._bad(name, getattr(self, name), "must be at least 1")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            if getattr(self, name) < 1:
                self._bad(name, getattr(self, name), "must be at least 1")
        if self.max_target_len < 2:
            self._bad("max_target_len", self.max_target_len, "must be at least 2 (<BOS> and one token)")
        if self.d_model % self.n_heads:
            self._bad("n_heads", self.n_heads, f"must divide d_model={self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            self._bad("dropout", self.dropout, "must lie in [0, 1)")
        if self.positional not in POSITIONALS:
            self._bad("positional", self.positional, f"must be one of {', '.join(POSITIONALS)}")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                self._bad(name, getattr(self, name), f"must lie in 0..vocab_size-1={self.vocab_size - 1}")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            self._bad("pad_id", self.pad_id, "pad_id, bos_id and eos_id must be distinct")

    @staticmethod
    def _bad(name: str, value: Any, why: str) -> None:
        raise ConfigError(f"ModelConfig.{name} {why} (got {value!r})", field=name)

    @classmethod
    def named(cls, name: str, *, vocab_size: int, **overrides: Any) -> ModelConfig:
        """A named size (``tiny``, ``small``, ``base``) for ``vocab_size`` tokens, with field overrides."""
        if name not in NAMED_SIZES:
            raise ConfigError(
                f"ModelConfig: unknown size {name!r}; choose one of {', '.join(NAMED_SIZES)}", field="size"
            )
        return cls(vocab_size=vocab_size, **{**NAMED_SIZES[name], **overrides})

    @classmethod
    def check_named(cls, name: str, **overrides: Any) -> None:
        """Refuse what :meth:`named` would refuse for ``name`` and ``overrides``, before any vocabulary exists
        (a command line checks its flags before reading the database)."""
        cls.named(name, vocab_size=3, **overrides)  # the fewest tokens a model has: <PAD>, <BOS>, <EOS>

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"ModelConfig: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown field(s) {', '.join(unknown)}")
        if "vocab_size" not in data:
            raise ConfigError("ModelConfig.vocab_size is missing")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"ModelConfig: invalid JSON ({error})") from None
        return cls.from_dict(data)


NAMED_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=64,
                 max_source_len=256, max_target_len=64),
    "small": dict(d_model=256, n_heads=4, n_encoder_layers=3, n_decoder_layers=3, d_ff=1024),
    "base": dict(d_model=512, n_heads=8, n_encoder_layers=6, n_decoder_layers=6, d_ff=2048, dropout=0.1),
}  # fmt: skip


# --- building blocks -------------------------------------------------------------------------------


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D/H)."""
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) -> (B, T, H*Dh)."""
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return _heads(q, self.n_heads), _heads(k, self.n_heads), _heads(v, self.n_heads)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False, dropout: float = 0.0
    ) -> torch.Tensor:
        q, k, v = self.project(x)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout)
        return self.out(_merge(y))


class CrossAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.q = nn.Linear(config.d_model, config.d_model, bias=False)
        self.kv = nn.Linear(config.d_model, 2 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(memory).chunk(2, dim=-1)
        return _heads(k, self.n_heads), _heads(v, self.n_heads)

    def forward(
        self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, dropout: float = 0.0
    ) -> torch.Tensor:
        """``x``: (B, T, D) queries over ``k``, ``v``: (B, H, S, Dh); ``mask``: (B, 1, 1, S), True = attend."""
        q = _heads(self.q(x), self.n_heads)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.out(_merge(y))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.d_model, config.d_ff)
        self.down = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attn, self.mlp = SelfAttention(config), MLP(config)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        x = x + F.dropout(self.attn(self.ln1(x), mask=mask, dropout=p), p, self.training)
        return x + F.dropout(self.mlp(self.ln2(x)), p, self.training)


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(config.d_model) for _ in range(3))
        self.self_attn, self.cross_attn, self.mlp = SelfAttention(config), CrossAttention(config), MLP(config)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass over whole targets (causal; padding only ever follows real tokens)."""
        p = self.dropout if self.training else 0.0
        x = x + F.dropout(self.self_attn(self.ln1(x), causal=True, dropout=p), p, self.training)
        x = x + F.dropout(self.cross_attn(self.ln2(x), k, v, mask, dropout=p), p, self.training)
        return x + F.dropout(self.mlp(self.ln3(x)), p, self.training)


# --- the cache ------------------------------------------------------------------------------------


class DecoderCache:
    """Decoding state: per decoder layer, cross keys/values per source and self keys/values per row.

    Rows are ``num_groups * group`` (row ``r`` decodes source ``r // group``); ``length`` tokens have been
    fed so far, at positions ``0 .. length-1`` of every row, and at most ``capacity`` can be. The
    self-attention buffers start small and double when full, so memory follows the actual lengths.
    """

    def __init__(
        self,
        cross: list[tuple[torch.Tensor, torch.Tensor]],
        memory_mask: torch.Tensor,
        group: int,
        capacity: int,
        n_heads: int,
    ) -> None:
        self.cross = cross
        self.memory_mask = memory_mask  # (G, 1, 1, S), True = attend
        self.group = group
        self.capacity = capacity
        self.length = 0
        like = cross[0][0]
        shape = (like.shape[0] * group, n_heads, min(capacity, 32), like.shape[-1])
        self.keys = [like.new_empty(shape) for _ in cross]
        self.values = [like.new_empty(shape) for _ in cross]
        self._spare_keys: list[torch.Tensor] = []  # reorder_rows's gather targets (same shapes)
        self._spare_values: list[torch.Tensor] = []

    @property
    def num_groups(self) -> int:
        return self.memory_mask.shape[0]

    @property
    def num_rows(self) -> int:
        return self.keys[0].shape[0]

    def reserve(self, positions: int) -> None:
        """Make room for ``positions`` positions (at most ``capacity``)."""
        if positions > self.capacity:
            raise ModelError(f"decoder cache is full ({self.capacity} positions)")
        size = self.keys[0].shape[2]
        if positions > size:
            self._copy_rows(None, min(max(2 * size, positions), self.capacity))

    def select_groups(self, groups: torch.Tensor) -> None:
        """Keep only the sources at indices ``groups`` (in that order), with all their rows."""
        rows = (groups[:, None] * self.group + torch.arange(self.group, device=groups.device)).flatten()
        self.cross = [(k.index_select(0, groups), v.index_select(0, groups)) for k, v in self.cross]
        self.memory_mask = self.memory_mask.index_select(0, groups)
        self.reorder_rows(rows)

    def reorder_rows(self, rows: torch.Tensor) -> None:
        """Make row ``i`` a copy of old row ``rows[i]`` (beam search); group structure must be kept.

        Beam search calls this at every step: the rows are gathered into spare buffers of the same shape,
        which then swap places with the current ones, so a step allocates nothing.
        """
        if rows.shape[0] != self.num_rows:
            self._copy_rows(rows, self.keys[0].shape[2])
            return
        for buffers, spares in ((self.keys, self._spare_keys), (self.values, self._spare_values)):
            for i, old in enumerate(buffers):
                spare = spares[i] if i < len(spares) else None
                if spare is None or spare.shape != old.shape:
                    spare = old.new_empty(old.shape)
                torch.index_select(old, 0, rows, out=spare)
                buffers[i] = spare
                if i < len(spares):
                    spares[i] = old
                else:
                    spares.append(old)

    def _copy_rows(self, rows: torch.Tensor | None, size: int) -> None:
        """New buffers of ``size`` positions holding the filled positions of ``rows`` (None: all rows)."""
        t = self.length
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                kept = old[:, :, :t] if rows is None else old[:, :, :t].index_select(0, rows)
                new = old.new_empty((kept.shape[0], old.shape[1], size, old.shape[3]))
                new[:, :, :t] = kept
                buffers[i] = new


# --- the model ------------------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class Positions(nn.Module):
    """Learned or fixed sinusoidal position embeddings for up to ``length`` positions."""

    def __init__(self, length: int, dim: int, kind: str) -> None:
        super().__init__()
        self.learned = kind == "learned"
        if self.learned:
            self.table = nn.Parameter(torch.randn(length, dim) * dim**-0.5)
        else:
            self.register_buffer("table", sinusoidal_positions(length, dim) * dim**-0.5, persistent=False)

    def forward(self, start: int, length: int) -> torch.Tensor:
        return self.table[start : start + length]


class Seq2Seq(nn.Module):
    """Pre-LayerNorm transformer encoder-decoder with a tied output embedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed = nn.Embedding(config.vocab_size, d)
        self.src_pos = Positions(config.max_source_len, d, config.positional)
        self.tgt_pos = Positions(config.max_target_len, d, config.positional)
        self.encoder = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(config) for _ in range(config.n_decoder_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.apply(self._init)

    @property
    def decoder_layers(self) -> Sequence[DecoderLayer]:
        """The decoder's layers, typed (iterating a ``ModuleList`` yields plain modules)."""
        return cast("Sequence[DecoderLayer]", self.decoder)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=module.embedding_dim**-0.5)

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @staticmethod
    def _check_length(length: int, limit: int, what: str) -> None:
        if length > limit:
            raise ModelError(f"{what} of length {length} exceeds the model's limit {limit}; truncate or filter it")

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S) token ids -> (B, S, D) memory. Every source needs at least one non-padding token."""
        self._check_length(src.shape[1], self.config.max_source_len, "source")
        pad = src == self.config.pad_id if src_pad_mask is None else src_pad_mask
        mask = ~pad[:, None, None, :]
        x = self.embed(src) + self.src_pos(0, src.shape[1])
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(self.dec_norm(h), self.embed.weight)

    def forward(
        self, src: torch.Tensor, tgt_in: torch.Tensor, src_pad_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher forcing: (B, S) sources and (B, T) decoder inputs (``<BOS>`` first) -> (B, T, V) logits."""
        pad = src == self.config.pad_id if src_pad_mask is None else src_pad_mask
        return self.teacher_forced(self.cross_keys_values(self.encode(src, pad)), pad, tgt_in)

    def cross_keys_values(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each decoder layer's cross-attention keys and values over ``memory`` (B, H, S, Dh)."""
        return [layer.cross_attn.keys_values(memory) for layer in self.decoder_layers]

    def teacher_forced(
        self,
        cross: list[tuple[torch.Tensor, torch.Tensor]],
        src_pad_mask: torch.Tensor,
        tgt_in: torch.Tensor,
        source_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) decoder inputs over encoded sources (:meth:`cross_keys_values`) -> (B, T, V) logits. Row
        ``i`` reads source ``i``, or source ``source_index[i]`` when given (many targets against few sources,
        each encoded once)."""
        self._check_length(tgt_in.shape[1], self.config.max_target_len, "target")
        pad = src_pad_mask if source_index is None else src_pad_mask[source_index]
        mask = ~pad[:, None, None, :]
        x = self.embed(tgt_in) + self.tgt_pos(0, tgt_in.shape[1])
        for layer, (k, v) in zip(self.decoder_layers, cross):
            if source_index is not None:
                k, v = k[source_index], v[source_index]
            x = layer(x, k, v, mask)
        return self.logits(x)

    def start_decoding(
        self, memory: torch.Tensor, src_pad_mask: torch.Tensor, *, group: int = 1, capacity: int | None = None
    ) -> DecoderCache:
        """A cache decoding ``group`` rows per source of ``memory`` for up to ``capacity`` steps."""
        capacity = self.config.max_target_len if capacity is None else capacity
        self._check_length(capacity, self.config.max_target_len, "decoding capacity")
        cross = self.cross_keys_values(memory)
        mask = ~src_pad_mask[:, None, None, :]
        return DecoderCache(cross, mask, group, capacity, self.config.n_heads)

    def decode_step(self, tokens: torch.Tensor, cache: DecoderCache) -> torch.Tensor:
        """Feed one token per row, (N,), at position ``cache.length``; returns (N, V) next-token logits."""
        t = cache.length
        cache.reserve(t + 1)
        n, g = tokens.shape[0], cache.num_groups
        x = (self.embed(tokens) + self.tgt_pos(t, 1))[:, None, :]  # (N, 1, D)
        for i, layer in enumerate(self.decoder_layers):
            q, k, v = layer.self_attn.project(layer.ln1(x))  # (N, H, 1, Dh)
            cache.keys[i][:, :, t : t + 1] = k
            cache.values[i][:, :, t : t + 1] = v
            y = F.scaled_dot_product_attention(q, cache.keys[i][:, :, : t + 1], cache.values[i][:, :, : t + 1])
            x = x + layer.self_attn.out(_merge(y))
            # Cross attention: the rows of a group are `group` queries over their source's memory.
            h = layer.ln2(x).view(g, n // g, -1)
            ck, cv = cache.cross[i]
            x = x + layer.cross_attn(h, ck, cv, cache.memory_mask).view(n, 1, -1)
            x = x + layer.mlp(layer.ln3(x))
        cache.length = t + 1
        return self.logits(x[:, 0])
