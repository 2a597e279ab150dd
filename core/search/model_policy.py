"""A :class:`~core.search.policy.Policy` backed by a trained :class:`~core.models.Seq2Seq`, and its checkpoints.

:class:`ModelPolicy` answers a whole batch of queries with one decoder call (chunked only beyond
``max_batch`` sources): backward queries by beam search in the ``backward`` format, forward queries by
beam search (``temperature=None``) or ``k`` samples in the ``forward`` format, generator queries
(``ForwardQuery.goal is None``) in the ``generator`` format, where ``<STOP>`` is a possible answer. The
first generated token is constrained to the labels the query's context allows
(:meth:`~core.metamath.environment.Context.allowed_labels`, plus ``<STOP>`` for the generator); the mask
is computed once per context. For backward queries it is further narrowed (``unifiable_only``, the
default) to the assertions whose conclusion unifies with the goal (:class:`ConclusionIndex`): the
environment would reject any other label, so the beam spends its ``k`` slots on applicable tactics and
their probabilities are renormalised over them.

Outputs that do not decode (see :class:`~core.models.formats.Outcome`) are dropped and counted in
:attr:`ModelPolicy.counters`; so are queries that cannot be encoded (too long, no allowed label known to
the model), which get fewer proposals, possibly none. A backward output's substitutions of variables that
unification fixes are dropped (the format gives only the free ones; counted ``fixed_variable_dropped``).
Proposals with the same tactic are given once (the most likely).

Checkpoints (their format is :mod:`core.models.checkpoint`'s): :func:`load_policy` reads a policy from a
checkpoint file or an experiment root, :func:`policy_from_model` makes one of a model already read.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from core.errors import ConfigError, GrammarError
from core.metamath.database import Database, Statement
from core.metamath.environment import Context, ForwardEnv, Tactic, tactic_key
from core.metamath.index import PatternIndex
from core.metamath.syntax import Grammar, floating_context
from core.models.checkpoint import KINDS, LoadedModel, check_kind_formats, read_model
from core.models.decoding import Candidate, beam_search, sample
from core.models.devices import autocast, decoding_precision, inference_weights
from core.models.formats import Codec, free_variables
from core.models.transformer import Seq2Seq
from core.models.vocab import STOP, Token, Vocabulary
from core.search.policy import STOP as STOP_TACTIC
from core.search.policy import BackwardQuery, ForwardQuery, Proposal

logger = logging.getLogger(__name__)

MASK_CACHE = 512  # contexts whose first-token masks are kept


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ModelPolicy:
    """Proposes tactics with a sequence-to-sequence model (see the module doc).

    ``conditioning``: specials put before every generator source (e.g. ``("<HARD>",)``).
    ``length_penalty``: GNMT length normalisation of beam search (0 ranks by summed log-probability).
    ``max_len``: longest output in tokens (default: the model's limit).
    ``device``: where the model runs (default: CUDA when available). ``precision``: ``bf16`` decodes under
    bfloat16 autocast on CUDA, with a bfloat16 copy of the weights on a CPU with native bfloat16 (fp32, with a
    warning, elsewhere; :func:`core.models.devices.decoding_precision`).
    ``unifiable_only``: restrict a backward query's first token to labels whose conclusion unifies with
    its goal (a query with none gets no proposals, counted as ``no_unifiable_label``).

    ``learned`` marks it for :func:`core.search.merged.with_baseline` (backward searches merge the
    model-free baseline's candidates into its proposals by default).
    """

    learned = True

    def __init__(
        self,
        model: Seq2Seq,
        vocab: Vocabulary,
        *,
        kind: str = "prover",
        formats: Sequence[str] = ("backward",),
        device: torch.device | str | None = None,
        conditioning: Sequence[str] = (),
        length_penalty: float = 0.0,
        max_len: int | None = None,
        max_batch: int = 256,
        seed: int = 0,
        unifiable_only: bool = True,
        precision: str = "fp32",
    ) -> None:
        check_kind_formats(kind, formats)
        if max_batch < 1:
            raise ConfigError(f"ModelPolicy max_batch must be >= 1 (got {max_batch})")
        self.device = torch.device(device) if device is not None else default_device()
        self.precision = decoding_precision(precision, self.device, "policy precision")
        self.model = inference_weights(model.to(self.device), self.device, self.precision).eval()
        self.vocab = vocab
        self.codec = Codec.for_model(vocab, model.config)
        self.kind, self.formats = kind, tuple(formats)
        self.conditioning = tuple(conditioning)
        self.length_penalty, self.max_len, self.max_batch = length_penalty, max_len, max_batch
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.model_calls = 0
        self._masks: OrderedDict[tuple[Any, ...], tuple[object, torch.Tensor | None]] = OrderedDict()
        self._stop_id = vocab.special_id(STOP)
        self.unifiable_only = unifiable_only
        self._indexes: dict[int, tuple[object, ConclusionIndex]] = {}

    @property
    def counters(self) -> Counter[str]:
        """Skipped queries and undecodable outputs, by reason (the codec's counters)."""
        return self.codec.counters

    # --- the Policy interface ------------------------------------------------------------------------

    def propose_backward(self, queries: Sequence[BackwardQuery], k: int) -> list[list[Proposal]]:
        """Up to ``k`` proposals per goal, best first, by one beam search over all the goals."""
        return self._propose(queries, [self.backward_input(q) for q in queries], k, None, allow_stop=False)

    def backward_input(self, query: BackwardQuery) -> tuple[list[int], torch.Tensor] | None:
        """The source ids of a backward query and its allowed first tokens (the labels of its context, only
        those whose conclusion unifies with the goal when ``unifiable_only``); ``None``, counted, when the
        query cannot be encoded or allows no label."""
        hypotheses = [h.statement for h in query.env.theorem.essential]
        source = self.codec.backward_source(query.goal, hypotheses, allow_unknown=True)
        mask = self._first_tokens(query.env, stop=False)
        if mask is None:
            self.counters["no_allowed_label"] += 1
        elif self.unifiable_only:
            mask = mask & self._index(query.env).unifiable_mask(query.env, query.goal)
            if not bool(mask.any()):
                mask = None
                self.counters["no_unifiable_label"] += 1
        return self._usable(source, mask)

    def propose_forward(
        self, queries: Sequence[ForwardQuery], k: int, temperature: float | None = None
    ) -> list[list[Proposal]]:
        """Up to ``k`` distinct proposals per graph: the beam's best, or ``k`` samples at ``temperature``.

        A query without a goal is a generator query: its proposals may include ``STOP``, and an output
        with a good label but a malformed substitution is kept as a partial tactic (counted
        ``partial_substitution``) for the generator to complete from its graph.
        """
        prepared = []
        for query in queries:
            generator = query.goal is None
            source = self.codec.graph_source(
                query.goal, [h.statement for h in query.env.theorem.essential], graph_nodes(query.env),
                conditioning=self.conditioning if generator else (), allow_unknown=True,
            )  # fmt: skip
            mask = self._first_tokens(query.env, stop=generator and query.may_stop, inference_only=query.inference_only)
            if mask is None:
                self.counters["no_allowed_label"] += 1
            prepared.append(self._usable(source, mask))
        return self._propose(queries, prepared, k, temperature, allow_stop=True)

    # --- internals -----------------------------------------------------------------------------------

    def _usable(self, source: list[int] | None, mask: torch.Tensor | None) -> tuple[list[int], torch.Tensor] | None:
        """A query ready to decode, or ``None`` (counted) if it cannot be encoded or has no first token."""
        if source is None:
            self.counters["skipped_query"] += 1
        return (source, mask) if source is not None and mask is not None else None

    def _index(self, env: Context) -> ConclusionIndex:
        cached = self._indexes.get(id(env.db))
        if cached is None:
            cached = (env.db, ConclusionIndex(env.db, env.grammar, self.vocab))
            self._indexes[id(env.db)] = cached
        return cached[1]

    def _first_tokens(self, env: Context, *, stop: bool, inference_only: bool = False) -> torch.Tensor | None:
        """The allowed first tokens of ``env``'s context (cached); ``None`` if the model knows none
        (counted as ``no_allowed_label`` by the callers). ``inference_only``: only the labels of assertions
        with essential hypotheses (and ``STOP`` if ``stop``)."""
        key = (id(env.db), env.theorem.number, env.forbidden, stop, inference_only)
        cached = self._masks.get(key)
        if cached is not None:
            self._masks.move_to_end(key)
        else:
            before = sum(self.vocab.unknown.values())
            labels = env.allowed_labels()
            if inference_only:
                labels = [label for label in labels if env.db.assertion(label).essential]
            mask = self.vocab.label_mask(labels)
            unknown = sum(self.vocab.unknown.values()) - before
            if unknown:
                logger.debug("context of %s: %d allowed labels unknown to the model", env.theorem.label, unknown)
            if stop:
                mask[self._stop_id] = True
            cached = (env.db, mask if bool(mask.any()) else None)  # the db reference keeps id(db) unique
            self._masks[key] = cached
            if len(self._masks) > MASK_CACHE:  # least recently used first: searches run a few contexts at once
                self._masks.popitem(last=False)
        return cached[1]

    def _propose(
        self,
        queries: Sequence[BackwardQuery | ForwardQuery],
        prepared: list[tuple[list[int], torch.Tensor] | None],
        k: int,
        temperature: float | None,
        *,
        allow_stop: bool,
    ) -> list[list[Proposal]]:
        if k < 1:
            raise ConfigError(f"ModelPolicy: k must be >= 1 (got {k})")
        results: list[list[Proposal]] = [[] for _ in queries]
        usable = [(i, item) for i, item in enumerate(prepared) if item is not None]
        for start in range(0, len(usable), self.max_batch):
            chunk = usable[start : start + self.max_batch]
            sources = [item[0] for _, item in chunk]
            masks = torch.stack([item[1] for _, item in chunk])
            for (i, _), candidates in zip(chunk, self._decode(sources, masks, k, temperature)):
                results[i] = self._proposals(
                    queries[i],
                    candidates,
                    allow_stop and queries[i].goal is None and getattr(queries[i], "may_stop", True),
                )
        return results

    def _decode(
        self, sources: list[list[int]], masks: torch.Tensor, k: int, temperature: float | None
    ) -> list[list[Candidate]]:
        self.model_calls += 1
        with autocast(self.device, self.precision):
            if temperature is None:
                return beam_search(self.model, sources, k=k, allowed_first=masks, max_len=self.max_len,
                                   length_penalty=self.length_penalty)  # fmt: skip
            return sample(self.model, sources, n=k, temperature=temperature, allowed_first=masks,
                          max_len=self.max_len, generator=self.generator)  # fmt: skip

    def _proposals(
        self, query: BackwardQuery | ForwardQuery, candidates: list[Candidate], allow_stop: bool
    ) -> list[Proposal]:
        proposals: list[Proposal] = []
        seen: set[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]] = set()
        backward = isinstance(query, BackwardQuery)
        for candidate in candidates:
            generator = isinstance(query, ForwardQuery) and query.goal is None
            decoded = self.codec.decode(candidate.tokens, db=query.env.db, allow_stop=allow_stop, partial=generator)
            if decoded.tactic is None:
                continue
            tactic = STOP_TACTIC if decoded.tactic.label == STOP else decoded.tactic
            if backward:
                tactic = self._free_only(tactic, query.env)
            key = tactic_key(tactic)
            if key not in seen:
                seen.add(key)
                proposals.append(Proposal(tactic, candidate.logprob, decoded.text))
        return proposals

    def _free_only(self, tactic: Tactic, env: Context) -> Tactic:
        """A backward tactic without the variables its conclusion fixes (counted ``fixed_variable_dropped``):
        the backward format gives only the free ones, and unification determines the others."""
        free = set(free_variables(env.db.assertion(tactic.label)))
        if set(tactic.substitution) <= free:
            return tactic
        self.counters["fixed_variable_dropped"] += 1
        return Tactic(tactic.label, {v: e for v, e in tactic.substitution.items() if v in free})


class ConclusionIndex:
    """The provable assertions of a database in a discrimination tree of their conclusions' syntax trees.

    :meth:`unifiable_mask` gives, for a goal, the vocabulary ids of the assertions whose conclusion
    matches the goal's syntax tree (one-way unification, as ``BackwardEnv.apply`` does it). Conclusions
    that do not parse are left out (the environment could not apply them either).
    """

    def __init__(self, db: Database, grammar: Grammar, vocab: Vocabulary) -> None:
        self.size = len(vocab)
        self.index: PatternIndex[int] = PatternIndex()
        for assertion in db.assertions:
            token = Token("label", assertion.label)
            if assertion.typecode != db.provable_typecode or token not in vocab:
                continue
            try:
                tree = grammar.parse(assertion.typecode, assertion.statement[1:], floating_context(assertion.floating))
            except GrammarError:
                continue
            self.index.add(vocab.id(token), tree, {h.label: h.variable for h in assertion.floating})

    def unifiable_mask(self, env: Context, goal: Statement) -> torch.Tensor:
        mask = torch.zeros(self.size, dtype=torch.bool)
        target = env.tree(goal) if goal and goal[0] == env.db.provable_typecode else None
        if target is not None:
            mask[self.index.matches(target)] = True
        return mask


def graph_nodes(env: ForwardEnv) -> list[Statement]:
    """The statements of a forward graph other than the theorem's hypotheses, oldest first."""
    hypotheses = {h.statement for h in env.theorem.essential}
    return [node.statement for node in env.nodes if node.statement not in hypotheses]


# --- checkpoints -----------------------------------------------------------------------------------


def policy_from_model(loaded: LoadedModel, *, device: torch.device | str | None = None, **options: Any) -> ModelPolicy:
    """A :class:`ModelPolicy` of a model read by :mod:`core.models.checkpoint` (``options`` go to the
    constructor)."""
    return ModelPolicy(loaded.model, loaded.vocab, kind=loaded.kind, formats=loaded.formats, device=device, **options)


def load_policy(
    path: str,
    device: torch.device | str | None = None,
    *,
    name: str = "prover",
    version: int | None = None,
    db: Database | None = None,
    **options: Any,
) -> ModelPolicy:
    """The policy in a checkpoint file, or the latest (or ``version``) of checkpoint ``name`` of an
    experiment root; it must be a ``name`` (when ``name`` is a kind) and, given ``db``, know some of its
    labels (:func:`core.models.checkpoint.read_model`). ``options`` go to :class:`ModelPolicy`."""
    loaded = read_model(path, name=name, version=version, kind=name if name in KINDS else None, db=db)
    policy = policy_from_model(loaded, device=device, **options)
    logger.info("loaded %s policy from %s (%d parameters, formats %s, on %s)", policy.kind, path,
                policy.model.num_parameters(), ",".join(policy.formats), policy.device)  # fmt: skip
    return policy
