"""The Metamath sequence formats: what the prover and generator models read and write (see docs/FORMATS.md).

Three formats share one vocabulary (:func:`build_vocabulary`: the database's math symbols, the labels of
its provable assertions, the specials):

- ``backward``  source ``<BACKWARD> <GOAL> goal <HYP> hyp1 <HYP> hyp2 ...``
                target ``LABEL <SUBST> var expr </SUBST> ...`` for the variables unification with the goal
                leaves free (:func:`free_variables`), in the assertion's frame order;
- ``forward``   source ``<FORWARD> <GOAL> goal <HYP> hyp1 ... <NODE> newest ... <NODE> oldest``
                target ``LABEL <SUBST> var expr </SUBST> ...`` with every variable of the assertion;
- ``generator`` source ``<GENERATOR> [conditioning] <HYP> hyp1 ... <NODE> newest ... <NODE> oldest`` (no goal)
                target a forward tactic or ``<STOP>``.

Every source starts with its format's token, so one model can learn several formats (a forward source
with an empty graph would otherwise read exactly like a backward one). Statements are written with their
typecode (``|- ( ph -> ph )``); substituted expressions without it. Graph nodes (proven statements other
than the hypotheses) are written newest first; when the source would exceed the model's limit the oldest
nodes are dropped (counted as ``graph_capped``).

A :class:`Codec` turns statements and tactics into token ids under a model's length limits, and ids back
into tactics. Nothing here raises on bad data: an input it cannot encode gives ``None`` and a counted
:class:`Outcome` in :attr:`Codec.counters`; a model output it cannot read gives a :class:`Decoded` with
``tactic=None`` and the outcome saying why (also counted).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from core.errors import ModelError
from core.metamath.database import Assertion, Database, Statement
from core.metamath.environment import Tactic
from core.models.transformer import ModelConfig
from core.models.vocab import END_SUBST, GOAL, HYP, NODE, STOP, SUBST, UNK, Token, Vocabulary

FORMATS: tuple[str, ...] = ("backward", "forward", "generator")
BACKWARD, FORWARD, GENERATOR = "<BACKWARD>", "<FORWARD>", "<GENERATOR>"
FORMAT_TOKENS: tuple[str, ...] = (BACKWARD, FORWARD, GENERATOR)
CONDITIONING: tuple[str, ...] = ("<EASY>", "<MEDIUM>", "<HARD>")
STOP_TACTIC = Tactic(STOP)


class Outcome(str, enum.Enum):
    """Why an input could not be encoded or an output could not be decoded (keys of the counters)."""

    OK = "ok"
    STOP = "stop"
    # encoding
    UNKNOWN_SYMBOL = "unknown_symbol"
    SOURCE_TOO_LONG = "source_too_long"
    TARGET_TOO_LONG = "target_too_long"
    TARGET_UNKNOWN_LABEL = "target_unknown_label"
    GRAPH_CAPPED = "graph_capped"  # not a failure: the oldest graph nodes were left out
    # decoding
    EMPTY = "empty_output"
    UNK_TOKEN = "unk_in_output"
    NOT_A_LABEL = "first_token_not_a_label"
    UNKNOWN_LABEL = "unknown_label"
    BAD_SUBST = "bad_subst_structure"
    UNKNOWN_VARIABLE = "unknown_variable"
    DUPLICATE_VARIABLE = "duplicate_variable"
    UNEXPECTED_STOP = "unexpected_stop"
    PARTIAL = "partial_substitution"  # not a failure: a label and the well-formed start of its substitution


class Decoded(NamedTuple):
    """A model output read back: the tactic (``STOP_TACTIC`` for ``<STOP>``) or ``None``, and why."""

    tactic: Tactic | None
    outcome: Outcome
    text: str

    @property
    def ok(self) -> bool:
        return self.tactic is not None


# --- the vocabulary --------------------------------------------------------------------------------


def build_vocabulary(db: Database, conditioning: Sequence[str] = CONDITIONING) -> Vocabulary:
    """Every math symbol of ``db``, the labels of its provable-typecode assertions, and the specials.

    The extra specials are the format tokens (``<BACKWARD> <FORWARD> <GENERATOR>``), then
    ``conditioning``: the specials a generator source may carry after its format token (default: the
    difficulty tokens ``<EASY> <MEDIUM> <HARD>``); they are part of every vocabulary so that a model can be
    conditioned later without changing its embedding table.
    """
    specials = FORMAT_TOKENS + tuple(conditioning)
    return Vocabulary.build(db.constants | db.variables, provable_labels(db), extra_specials=specials)


def provable_labels(db: Database) -> list[str]:
    """The labels of ``db``'s provable-typecode assertions: the only labels a vocabulary holds (a model never
    proposes a syntax axiom)."""
    return [a.label for a in db.assertions if a.typecode == db.provable_typecode]


def free_variables(assertion: Assertion) -> list[str]:
    """The variables unification with the conclusion leaves free (as ``BackwardEnv.free_variables``)."""
    in_conclusion = set(assertion.statement)
    return [v for v in assertion.variables if v not in in_conclusion]


# --- token sequences (texts) -----------------------------------------------------------------------


def _symbols(statement: Sequence[str]) -> list[Token]:
    return [Token("symbol", s) for s in statement]


def _sections(marker: str, statements: Sequence[Statement]) -> list[Token]:
    tokens: list[Token] = []
    for statement in statements:
        tokens.append(Token("special", marker))
        tokens.extend(_symbols(statement))
    return tokens


def backward_source_tokens(goal: Statement, hypotheses: Sequence[Statement]) -> list[Token]:
    """``<BACKWARD> <GOAL> goal <HYP> hyp1 <HYP> hyp2 ...``."""
    return [Token("special", BACKWARD), Token("special", GOAL), *_symbols(goal), *_sections(HYP, hypotheses)]


def graph_header_tokens(
    goal: Statement | None, hypotheses: Sequence[Statement], conditioning: Sequence[str] = ()
) -> list[Token]:
    """The part of a forward (``goal`` given) or generator (``goal=None``) source before the nodes."""
    if goal is not None:
        head = [Token("special", FORWARD), *(Token("special", c) for c in conditioning)]
        head += [Token("special", GOAL), *_symbols(goal)]
    else:
        head = [Token("special", GENERATOR), *(Token("special", c) for c in conditioning)]
    return head + _sections(HYP, hypotheses)


def graph_source_tokens(
    goal: Statement | None,
    hypotheses: Sequence[Statement],
    nodes: Sequence[Statement],
    conditioning: Sequence[str] = (),
    max_len: int | None = None,
) -> tuple[list[Token], int]:
    """A forward/generator source and how many (oldest) nodes were left out to fit ``max_len`` tokens.

    ``nodes`` are in graph order (oldest first) and are written newest first. The header alone may
    exceed ``max_len``: the caller checks.
    """
    tokens = graph_header_tokens(goal, hypotheses, conditioning)
    for kept, statement in enumerate(reversed(nodes)):
        if max_len is not None and len(tokens) + 1 + len(statement) > max_len:
            return tokens, len(nodes) - kept
        tokens.append(Token("special", NODE))
        tokens.extend(_symbols(statement))
    return tokens, 0


def tactic_tokens(tactic: Tactic, variables: Sequence[str]) -> list[Token]:
    """``LABEL <SUBST> var expr </SUBST> ...`` for ``variables`` (in that order), or ``<STOP>``.

    Every variable listed must be in the tactic's substitution (a :class:`ModelError` otherwise).
    """
    if tactic.label == STOP:
        return [Token("special", STOP)]
    tokens = [Token("label", tactic.label)]
    for variable in variables:
        expression = tactic.substitution.get(variable)
        if expression is None:
            raise ModelError(f"tactic {tactic.label} has no substitution for {variable!r}")
        tokens += [Token("special", SUBST), Token("symbol", variable), *_symbols(expression)]
        tokens.append(Token("special", END_SUBST))
    return tokens


def parse_tactic_tokens(
    tokens: Sequence[Token], *, db: Database | None = None, allow_stop: bool = False, partial: bool = False
) -> tuple[Tactic | None, Outcome]:
    """The inverse of :func:`tactic_tokens` (any variable order), or ``None`` and why.

    With ``db``, the label must name an assertion of ``db`` and each variable be one of its variables.
    With ``partial``, an output whose label is good but whose substitution goes wrong keeps the label
    and the substitution's well-formed start (``Outcome.PARTIAL``): the generator completes it from its
    graph (:func:`core.adversarial.generation.complete_tactic`), so that the model's choice of assertion is used.
    """
    if not tokens:
        return None, Outcome.EMPTY
    if any(t.kind == "special" and t.text == UNK for t in tokens):
        if not (partial and tokens[0].kind == "label"):
            return None, Outcome.UNK_TOKEN
        tokens = tokens[: next(i for i, t in enumerate(tokens) if t.kind == "special" and t.text == UNK)]
        tactic, outcome = parse_tactic_tokens(tokens, db=db, allow_stop=allow_stop, partial=True)
        return tactic, Outcome.PARTIAL if tactic is not None else outcome
    first = tokens[0]
    if first == Token("special", STOP):
        if not allow_stop:
            return None, Outcome.UNEXPECTED_STOP
        return (STOP_TACTIC, Outcome.STOP) if len(tokens) == 1 else (None, Outcome.BAD_SUBST)
    if first.kind != "label":
        return None, Outcome.NOT_A_LABEL
    variables: set[str] | None = None
    if db is not None:
        assertion = db.labels.get(first.text)
        if not isinstance(assertion, Assertion):
            return None, Outcome.UNKNOWN_LABEL
        variables = set(assertion.variables)
    substitution: dict[str, tuple[str, ...]] = {}
    i = 1
    while i < len(tokens):
        problem = _substitution_problem(tokens, i, variables, substitution)
        if problem is not None:
            return (Tactic(first.text, substitution), Outcome.PARTIAL) if partial else (None, problem)
        end = tokens.index(Token("special", END_SUBST), i + 2)
        substitution[tokens[i + 1].text] = tuple(t.text for t in tokens[i + 2 : end])
        i = end + 1
    return Tactic(first.text, substitution), Outcome.OK


def _substitution_problem(
    tokens: Sequence[Token], i: int, variables: set[str] | None, substitution: dict[str, tuple[str, ...]]
) -> Outcome | None:
    """What is wrong with the substitution entry starting at ``tokens[i]`` (``<SUBST> var symbols <END>``)."""
    if tokens[i] != Token("special", SUBST) or i + 1 >= len(tokens) or tokens[i + 1].kind != "symbol":
        return Outcome.BAD_SUBST
    variable = tokens[i + 1].text
    end = i + 2
    while end < len(tokens) and tokens[end].kind == "symbol":
        end += 1
    if end == len(tokens) or tokens[end] != Token("special", END_SUBST):
        return Outcome.BAD_SUBST
    if variables is not None and variable not in variables:
        return Outcome.UNKNOWN_VARIABLE
    if variable in substitution:
        return Outcome.DUPLICATE_VARIABLE
    return None


def tokens_text(tokens: Sequence[Token]) -> str:
    """Tokens as one space-separated string (what :attr:`Decoded.text` and proposals carry)."""
    return " ".join(t.text for t in tokens)


# --- ids under a model's limits --------------------------------------------------------------------


class Codec:
    """Encodes sources and targets to ids within a model's limits and decodes outputs, counting failures.

    ``max_source_len`` is the model's ``max_source_len``; ``max_target_len`` the number of target tokens a
    model takes (its ``max_target_len - 1``: the decoder also reads ``<BOS>``). :meth:`for_model` derives
    both from a :class:`ModelConfig`.
    """

    def __init__(self, vocab: Vocabulary, *, max_source_len: int, max_target_len: int) -> None:
        if max_source_len < 1 or max_target_len < 1:
            raise ModelError(f"codec limits must be >= 1 (got {max_source_len}, {max_target_len})")
        self.vocab = vocab
        self.max_source_len = max_source_len
        self.max_target_len = max_target_len
        self.counters: Counter[str] = Counter()

    @classmethod
    def for_model(cls, vocab: Vocabulary, config: ModelConfig) -> Codec:
        if config.vocab_size != len(vocab):
            raise ModelError(f"model vocab_size {config.vocab_size} differs from the vocabulary's {len(vocab)} "
                             "tokens: the checkpoint and vocabulary do not belong together")  # fmt: skip
        return cls(vocab, max_source_len=config.max_source_len, max_target_len=config.max_target_len - 1)

    def count(self, outcome: Outcome, n: int = 1) -> None:
        self.counters[outcome.value] += n

    # --- sources ---

    def source_ids(self, tokens: Sequence[Token], *, allow_unknown: bool = False) -> list[int] | None:
        """Ids of a source; ``None`` (counted) if too long, or if it has an unknown symbol and not
        ``allow_unknown`` (then the symbol becomes ``<UNK>``, still counted)."""
        if len(tokens) > self.max_source_len:
            self.count(Outcome.SOURCE_TOO_LONG)
            return None
        unknown = [t for t in tokens if t not in self.vocab]
        if unknown:
            self.count(Outcome.UNKNOWN_SYMBOL)
            if not allow_unknown:
                return None
        return self.vocab.encode(tokens)

    def backward_source(
        self, goal: Statement, hypotheses: Sequence[Statement], *, allow_unknown: bool = False
    ) -> list[int] | None:
        return self.source_ids(backward_source_tokens(goal, hypotheses), allow_unknown=allow_unknown)

    def graph_source(
        self,
        goal: Statement | None,
        hypotheses: Sequence[Statement],
        nodes: Sequence[Statement],
        *,
        conditioning: Sequence[str] = (),
        allow_unknown: bool = False,
    ) -> list[int] | None:
        """A forward (``goal`` given) or generator (``goal=None``) source, oldest nodes capped to fit."""
        for name in conditioning:
            if Token("special", name) not in self.vocab:
                raise ModelError(f"conditioning token {name!r} is not in the vocabulary; its specials are "
                                 f"{' '.join(self.vocab.specials)}")  # fmt: skip
        tokens, dropped = graph_source_tokens(goal, hypotheses, nodes, conditioning, self.max_source_len)
        if dropped:
            self.count(Outcome.GRAPH_CAPPED)
        return self.source_ids(tokens, allow_unknown=allow_unknown)

    # --- targets ---

    def target(self, tactic: Tactic, variables: Sequence[str]) -> list[int] | None:
        """Ids of a tactic's target (or ``<STOP>``); ``None`` (counted) if unknown tokens or too long."""
        tokens = tactic_tokens(tactic, variables)
        if tokens[0].kind == "label" and tokens[0] not in self.vocab:
            self.count(Outcome.TARGET_UNKNOWN_LABEL)
            return None
        if any(t not in self.vocab for t in tokens):
            self.count(Outcome.UNKNOWN_SYMBOL)
            return None
        if len(tokens) > self.max_target_len:
            self.count(Outcome.TARGET_TOO_LONG)
            return None
        return self.vocab.encode(tokens)

    def backward_target(self, tactic: Tactic, assertion: Assertion) -> list[int] | None:
        return self.target(tactic, free_variables(assertion))

    def forward_target(self, tactic: Tactic, assertion: Assertion) -> list[int] | None:
        return self.target(tactic, assertion.variables)

    def stop_target(self) -> list[int]:
        return [self.vocab.special_id(STOP)]

    # --- outputs ---

    def decode(
        self, ids: Sequence[int], *, db: Database | None = None, allow_stop: bool = False, partial: bool = False
    ) -> Decoded:
        """A model output (ids without ``<BOS>``/``<EOS>``) as a tactic; failures (and partial tactics, see
        :func:`parse_tactic_tokens`) counted by outcome."""
        try:
            tokens = self.vocab.decode(ids)
        except ModelError:
            self.count(Outcome.BAD_SUBST)
            return Decoded(None, Outcome.BAD_SUBST, " ".join(map(str, ids)))
        tactic, outcome = parse_tactic_tokens(tokens, db=db, allow_stop=allow_stop, partial=partial)
        if tactic is None or outcome is Outcome.PARTIAL:
            self.count(outcome)
        return Decoded(tactic, outcome, tokens_text(tokens))
