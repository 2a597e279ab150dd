"""Token <-> id mapping for the policy models: special tokens, math symbols and assertion labels.

A Metamath label and a math symbol may be spelled the same (a label ``a1`` and a symbol ``a1``), so the
vocabulary keeps three separate *namespaces*: ``special``, ``symbol`` and ``label``. A token is a typed
pair :class:`Token` ``(kind, text)``; callers say which namespace they mean:

    vocab.symbol_id("->"), vocab.label_id("ax-mp"), vocab.special_id("<SUBST>")
    vocab.symbols(["(", "ph", "->", "ps", ")"])            # a list of ids
    vocab.encode([Token("label", "ax-mp"), Token("special", "<SUBST>")])
    vocab.decode(ids)                                     # a list of Token, the inverse of encode

Ids are laid out deterministically: the built-in specials first (``<PAD>`` = 0, ``<BOS>`` = 1, ``<EOS>`` = 2,
matching :class:`core.models.transformer.ModelConfig`'s defaults), then the extra specials in the order
given, then the sorted distinct symbols, then the sorted distinct labels. Labels are therefore one
contiguous range, :attr:`Vocabulary.label_ids`, which is what constrained decoding needs.

An unknown symbol or label encodes to ``<UNK>`` and is counted in :attr:`Vocabulary.unknown` (a clear,
counted outcome, never a crash). The vocabulary is stored with every checkpoint as JSON
(:meth:`Vocabulary.to_dict` / :meth:`Vocabulary.from_dict`, or the string forms ``to_json``/``from_json``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

import torch

from core.errors import ModelError

Kind = Literal["special", "symbol", "label"]
KINDS: tuple[Kind, ...] = ("special", "symbol", "label")

PAD, BOS, EOS, UNK = "<PAD>", "<BOS>", "<EOS>", "<UNK>"
SUBST, END_SUBST, STOP = "<SUBST>", "</SUBST>", "<STOP>"
GOAL, HYP, NODE, SEP = "<GOAL>", "<HYP>", "<NODE>", "<SEP>"
BUILTIN_SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK, SUBST, END_SUBST, STOP, GOAL, HYP, NODE, SEP)

FORMAT = "advprover-vocab/1"


class Token(NamedTuple):
    """A typed token: ``kind`` is ``"special"``, ``"symbol"`` or ``"label"``."""

    kind: Kind
    text: str


class Vocabulary:
    """An immutable, deterministic token <-> id table with separate namespaces (see the module doc)."""

    def __init__(self, specials: Sequence[str], symbols: Sequence[str], labels: Sequence[str]) -> None:
        """Use :meth:`build` (sorts and deduplicates); this takes the exact id order, as stored."""
        if tuple(specials[: len(BUILTIN_SPECIALS)]) != BUILTIN_SPECIALS:
            raise ModelError(f"vocabulary: the specials must start with {' '.join(BUILTIN_SPECIALS)}")
        self._tokens: list[Token] = []
        self._ids: dict[Token, int] = {}
        for kind, texts in zip(KINDS, (specials, symbols, labels)):
            for text in texts:
                self._add(Token(kind, text))
        self.num_specials = len(specials)
        self.label_ids = range(len(self._tokens) - len(labels), len(self._tokens))
        self.unknown: Counter[Token] = Counter()

    def _add(self, token: Token) -> None:
        if not isinstance(token.text, str) or not token.text or token.text != token.text.strip():
            raise ModelError(f"vocabulary: invalid {token.kind} {token.text!r} (empty, not a string or padded)")
        if token in self._ids:
            raise ModelError(f"vocabulary: duplicate {token.kind} {token.text!r}")
        self._ids[token] = len(self._tokens)
        self._tokens.append(token)

    @classmethod
    def build(cls, symbols: Iterable[str], labels: Iterable[str], extra_specials: Sequence[str] = ()) -> Vocabulary:
        """A vocabulary of the distinct ``symbols`` and ``labels`` (sorted), plus conditioning tokens.

        ``extra_specials`` (e.g. ``["<HARD>", "<EASY>"]``) keep their order, after the built-in specials.
        The same inputs, in any order and with any repetition, give the same ids.
        """
        clash = sorted(set(extra_specials) & set(BUILTIN_SPECIALS))
        if clash:
            raise ModelError(f"vocabulary: extra specials {clash} are already built in; drop them")
        return cls(BUILTIN_SPECIALS + tuple(extra_specials), sorted(set(symbols)), sorted(set(labels)))

    # --- lookups ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        counts = Counter(t.kind for t in self._tokens)
        return f"Vocabulary({counts['special']} specials, {counts['symbol']} symbols, {counts['label']} labels)"

    def id(self, token: Token) -> int:
        """The id of ``token``; an unknown one gives ``<UNK>``'s id and is counted in :attr:`unknown`."""
        found = self._ids.get(token)
        if found is None:
            if token.kind not in KINDS:
                raise ModelError(f"vocabulary: unknown token kind {token.kind!r}; use one of {', '.join(KINDS)}")
            if token.kind == "special":
                raise ModelError(f"vocabulary: no special token {token.text!r}; add it with extra_specials")
            self.unknown[token] += 1
            return self.unk_id
        return found

    def __contains__(self, token: Token) -> bool:
        return token in self._ids

    def special_id(self, name: str) -> int:
        """The id of a special token (an unknown name raises :class:`ModelError`: it is a code bug)."""
        return self.id(Token("special", name))

    def symbol_id(self, symbol: str) -> int:
        return self.id(Token("symbol", symbol))

    def label_id(self, label: str) -> int:
        return self.id(Token("label", label))

    def symbols(self, symbols: Iterable[str]) -> list[int]:
        """The ids of a sequence of math symbols (e.g. a statement)."""
        return [self.id(Token("symbol", s)) for s in symbols]

    def encode(self, tokens: Iterable[Token | tuple[str, str]]) -> list[int]:
        """The ids of typed tokens; see :meth:`decode` for the inverse."""
        return [self.id(Token(*t)) for t in tokens]

    def token(self, token_id: int) -> Token:
        if not 0 <= token_id < len(self._tokens):
            raise ModelError(f"vocabulary: id {token_id} out of range 0..{len(self._tokens) - 1}")
        return self._tokens[token_id]

    def decode(self, ids: Iterable[int]) -> list[Token]:
        return [self.token(int(i)) for i in ids]

    def is_label(self, token_id: int) -> bool:
        return token_id in self.label_ids

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    @property
    def specials(self) -> list[str]:
        return [t.text for t in self._tokens[: self.num_specials]]

    def label_mask(self, labels: Iterable[str] | None = None) -> torch.Tensor:
        """A boolean mask over ids: all labels (``None``) or just ``labels`` (for constrained decoding).

        Labels absent from the vocabulary are counted in :attr:`unknown` and left out of the mask.
        """
        mask = torch.zeros(len(self), dtype=torch.bool)
        if labels is None:
            mask[self.label_ids.start : self.label_ids.stop] = True
            return mask
        for label in labels:
            token_id = self.label_id(label)
            if token_id != self.unk_id:
                mask[token_id] = True
        return mask

    # --- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description, stored with every checkpoint."""
        by_kind: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for token in self._tokens:
            by_kind[token.kind].append(token.text)
        return {"format": FORMAT, "specials": by_kind["special"], "symbols": by_kind["symbol"],
                "labels": by_kind["label"]}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Any) -> Vocabulary:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(f"vocabulary: not a {FORMAT} description (format field missing or different)")
        lists: list[list[str]] = []
        for key in ("specials", "symbols", "labels"):
            value = data.get(key)
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ModelError(f"vocabulary: field {key!r} must be a list of strings")
            lists.append(value)
        return cls(*lists)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ModelError(f"vocabulary: invalid JSON ({error})") from None
        return cls.from_dict(data)
