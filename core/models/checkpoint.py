"""The checkpoint format of a model: writing, reading, its configuration and vocabulary, the trainer's state.

Every model checkpoint goes through this module, and this module goes through :mod:`core.storage` for
every file (it never opens one itself). A checkpoint is

* the model's **weights**: a ``.safetensors`` file whose header metadata holds the *policy metadata*
  (:func:`policy_meta`: ``policy_format``, ``kind``, ``formats``, ``model_config``, ``vocabulary``, plus
  the caller's keys, e.g. a trainer's step and cursors), so that one file is a self-contained policy;
* for a published version of a trainer, its **trainer state** (optimizer state, step, counters: what
  :meth:`core.models.training.Seq2SeqTrainer.state_dict` gives, minus the weights) in a separate extras
  file that actors never read (:func:`load_version` vs :func:`load_trainer_version`).

A prover checkpoint may hold a **goal critic** (:class:`core.models.critic.GoalCritic`) beside the policy:
its tensors among the weights, named with the prefix ``critic.``, and its configuration in the metadata key
``critic``. It is read with the policy (:attr:`LoadedModel.critic`; None when the checkpoint has none). A
checkpoint whose metadata names a critic whose tensors are missing, do not fit or are not finite, or
whose weights hold ``critic.`` tensors without that metadata, is refused with a CheckpointError naming the
critic: it is never silently read as a policy without one.

Legacy checkpoints (``.pt``, format 1, with the trainer state under :data:`LEGACY_TRAINER_KEY` among the
weights) load the same way: weights only for actors and ``jobs.prove``, the trainer state for a resumed
trainer.

Loading checks what would otherwise fail later or silently: the metadata is a policy's, the kind is the
one asked for, the weights fit the stored configuration and are finite; with a database, that the model's
vocabulary knows some of its labels (:func:`check_database_coverage`: a partly covered database works,
unknown tokens encode as ``<UNK>`` and unknown labels are never proposed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import CheckpointError, ConfigError, ModelError
from core.metamath.database import Database
from core.models.critic import CRITIC_PREFIX, GoalCritic, critic_from_state
from core.models.formats import FORMATS, provable_labels
from core.models.transformer import ModelConfig, Seq2Seq
from core.models.vocab import Token, Vocabulary
from core.storage import CheckpointInfo, CheckpointStore, load_checkpoint, save_checkpoint_file

logger = logging.getLogger(__name__)

KINDS = ("prover", "generator")
POLICY_FORMAT = "advprover-policy/1"
RESERVED_META = ("policy_format", "kind", "formats", "model_config", "vocabulary", "critic")
CRITIC_META = "critic"  # the metadata key of a prover checkpoint's critic configuration
LEGACY_TRAINER_KEY = "__trainer__"  # where format-1 checkpoints kept the trainer state, among the weights


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a checkpoint (in eval mode), its vocabulary and policy metadata."""

    model: Seq2Seq
    vocab: Vocabulary
    meta: dict[str, Any]
    where: str
    critic: GoalCritic | None = None  # the goal critic published with the policy, if any

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "prover"))

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self.meta.get("formats", ("backward",)))


# --- writing -----------------------------------------------------------------------------------


def check_kind_formats(kind: str, formats: Sequence[str]) -> None:
    """ConfigError unless ``kind`` is a policy kind and ``formats`` a non-empty subset of the formats."""
    if kind not in KINDS:
        raise ConfigError(f"policy kind {kind!r} is unknown; choose one of {', '.join(KINDS)}")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"policy formats {list(formats)!r} must be a non-empty subset of {', '.join(FORMATS)}")


def policy_meta(
    model: Seq2Seq,
    vocab: Vocabulary,
    kind: str,
    extra: dict[str, Any] | None = None,
    *,
    formats: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The metadata of a policy checkpoint: ``kind``, ``formats`` (default: ``backward`` for a prover,
    ``generator`` for a generator), ``model_config`` and ``vocabulary`` (JSON), plus the keys of ``extra``
    (which must not reuse those names)."""
    formats = tuple(formats) if formats is not None else (("backward",) if kind == "prover" else ("generator",))
    check_kind_formats(kind, formats)
    if model.config.vocab_size != len(vocab):
        raise ModelError(f"model vocab_size {model.config.vocab_size} differs from the vocabulary's {len(vocab)}")
    clash = sorted(set(extra or {}) & set(RESERVED_META))
    if clash:
        raise ConfigError(f"policy metadata: extra keys may not set {', '.join(clash)}")
    return {"policy_format": POLICY_FORMAT, "kind": kind, "formats": list(formats),
            "model_config": model.config.to_dict(), "vocabulary": vocab.to_dict(), **(extra or {})}  # fmt: skip


def model_weights(model: Seq2Seq, critic: GoalCritic | None = None) -> dict[str, torch.Tensor]:
    """The model's weights, detached, on the CPU; with ``critic``, its weights too (prefixed ``critic.``)."""
    weights = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    if critic is not None:
        weights.update({CRITIC_PREFIX + name: t.detach().cpu() for name, t in critic.state_dict().items()})
    return weights


def with_critic(meta: dict[str, Any], critic: GoalCritic | None) -> dict[str, Any]:
    """``meta`` with the critic's configuration under ``critic`` (unchanged without a critic)."""
    return meta if critic is None else {**meta, CRITIC_META: critic.config()}


def save_policy_file(
    path: str,
    model: Seq2Seq,
    vocab: Vocabulary,
    kind: str,
    extra: dict[str, Any] | None = None,
    *,
    formats: Sequence[str] | None = None,
    critic: GoalCritic | None = None,
) -> None:
    """Write a self-contained ``.safetensors`` policy file (weights, metadata in its header; the goal
    ``critic`` too, if given)."""
    meta = with_critic(policy_meta(model, vocab, kind, extra, formats=formats), critic)
    save_checkpoint_file(path, model_weights(model, critic), meta)


def publish_version(
    store: CheckpointStore,
    model: Seq2Seq,
    vocab: Vocabulary,
    kind: str,
    extra: dict[str, Any] | None = None,
    *,
    formats: Sequence[str] | None = None,
    trainer_state: dict[str, Any] | None = None,
    critic: GoalCritic | None = None,
) -> CheckpointInfo:
    """Publish the next version of ``store``: the weights with their metadata (the goal ``critic``'s too, if
    given), and the trainer state (a :meth:`Seq2SeqTrainer.state_dict`; its copy of the weights is left out)
    in the extras file. Tensors are written from CPU copies, so that a version loads on any device."""
    meta = with_critic(policy_meta(model, vocab, kind, extra, formats=formats), critic)
    extras = {k: on_cpu(v) for k, v in trainer_state.items() if k != "model"} if trainer_state is not None else None
    return store.publish(model_weights(model, critic), meta, extras)


def on_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists, tuples) copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


# --- reading -------------------------------------------------------------------------------------


def model_from_weights(
    tensors: dict[str, Any],
    meta: dict[str, Any],
    *,
    where: str = "checkpoint",
    device: torch.device | str | None = None,
) -> tuple[Seq2Seq, Vocabulary]:
    """The model (in eval mode, on ``device``, default CPU) and vocabulary of weights and policy metadata."""
    if meta.get("policy_format") != POLICY_FORMAT:
        raise CheckpointError(
            f"{where}: not a policy checkpoint (its metadata has no policy_format "
            f"{POLICY_FORMAT!r}); write it with core.models.checkpoint"
        )
    try:
        config = ModelConfig.from_dict(meta["model_config"])
        vocab = Vocabulary.from_dict(meta["vocabulary"])
        check_kind_formats(meta.get("kind", "prover"), meta.get("formats", ("backward",)))
    except (KeyError, TypeError, ConfigError, ModelError) as error:
        raise CheckpointError(f"{where}: unusable policy metadata ({error})") from None
    if config.vocab_size != len(vocab):
        raise CheckpointError(f"{where}: model vocab_size {config.vocab_size} but {len(vocab)} vocabulary tokens")
    check_finite(tensors, where)
    model = Seq2Seq(config)
    try:
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(CRITIC_PREFIX)})
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(f"{where}: weights do not fit the stored model configuration ({detail})") from None
    return model.to(device or "cpu").eval(), vocab


def critic_from_weights(
    tensors: dict[str, Any],
    meta: dict[str, Any],
    *,
    where: str = "checkpoint",
    device: torch.device | str | None = None,
) -> GoalCritic | None:
    """The goal critic (in eval mode, on ``device``) a checkpoint holds beside its policy, None if it holds
    none; CheckpointError naming the critic if its metadata and tensors do not make one (see the module
    docstring). The tensors must have passed :func:`check_finite`."""
    own = {k[len(CRITIC_PREFIX) :]: v for k, v in tensors.items() if k.startswith(CRITIC_PREFIX)}
    config = meta.get(CRITIC_META)
    if config is None and not own:
        return None
    if config is None:
        raise CheckpointError(
            f"{where}: the weights hold critic tensors but the metadata no critic configuration; "
            "the checkpoint is damaged: use another version"
        )
    if not own:
        raise CheckpointError(
            f"{where}: the metadata names a critic but the weights hold no critic tensors; "
            "the checkpoint is damaged: use another version"
        )
    try:
        critic = critic_from_state(config, own)
    except ConfigError as error:
        raise CheckpointError(f"{where}: unusable critic ({error})") from None
    return critic.to(device or "cpu").eval()


def check_finite(tensors: dict[str, Any], where: str) -> None:
    """CheckpointError naming the first tensor with a NaN or an infinity (a diverged model)."""
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{where}: weights {name} are not finite (NaN or infinity: the model diverged); use an earlier version"
            )


def check_kind(loaded: LoadedModel, kind: str | None) -> None:
    """CheckpointError if ``kind`` is given and the checkpoint holds another kind of model."""
    if kind is not None and loaded.kind != kind:
        raise CheckpointError(
            f"{loaded.where}: a {loaded.kind} checkpoint, but a {kind} is needed here; "
            f"give a {kind} checkpoint (an experiment's checkpoints/{kind}/ versions)"
        )


def read_model(
    source: str,
    *,
    name: str = "prover",
    version: int | None = None,
    kind: str | None = None,
    db: Database | None = None,
    device: torch.device | str | None = None,
) -> LoadedModel:
    """The model in a checkpoint file (``.safetensors``, or a legacy ``.pt``), or the latest (or
    ``version``) of checkpoint ``name`` of an experiment root; checked to be of ``kind`` and, given
    ``db``, to know some of its labels (see :func:`check_database_coverage`)."""
    tensors, meta = load_checkpoint(source, name, version, map_location="cpu")
    model, vocab = model_from_weights(tensors, meta, where=source, device=device)
    critic = critic_from_weights(tensors, meta, where=source, device=device)
    loaded = LoadedModel(model, vocab, meta, source, critic)
    check_kind(loaded, kind)
    if db is not None:
        check_database_coverage(vocab, db, where=source)
    return loaded


def load_version(
    store: CheckpointStore,
    version: int | None = None,
    *,
    fallback: bool | None = None,
    device: torch.device | str | None = None,
) -> tuple[LoadedModel, CheckpointInfo]:
    """A published version's model (weights only: the trainer state is not read) and its critic, if it has
    one, as an actor needs them.
    ``fallback``: see :meth:`CheckpointStore.load` (a damaged version gives the newest older one)."""
    tensors, info = store.load(version, fallback=fallback)
    where = f"{store.name} v{info.version} ({info.path})"
    model, vocab = model_from_weights(tensors, info.meta, where=where, device=device)
    loaded = LoadedModel(
        model, vocab, info.meta, where, critic_from_weights(tensors, info.meta, where=where, device=device)
    )
    check_kind(loaded, store.name if store.name in KINDS else None)
    return loaded, info


def load_trainer_version(
    store: CheckpointStore, version: int | None = None
) -> tuple[LoadedModel, dict[str, Any] | None, CheckpointInfo]:
    """A published version's model and trainer state (for :meth:`Seq2SeqTrainer.load_state_dict`, weights
    included; None if the version has none), as a resumed trainer needs them; falls back like
    :func:`load_version` when ``version`` is None."""
    tensors, extras, info = store.load_with_extras(version)
    where = f"{store.name} v{info.version} ({info.path})"
    model, vocab = model_from_weights(tensors, info.meta, where=where)
    loaded = LoadedModel(model, vocab, info.meta, where, critic_from_weights(tensors, info.meta, where=where))
    check_kind(loaded, store.name if store.name in KINDS else None)
    trainer = (extras or {}).get(LEGACY_TRAINER_KEY, extras)
    if not trainer:
        return loaded, None, info
    return loaded, {"model": model.state_dict(), **trainer}, info


# --- the vocabulary and the database -------------------------------------------------------------


def database_coverage(vocab: Vocabulary, db: Database) -> tuple[int, int]:
    """(labels of ``db``'s provable assertions the vocabulary knows, labels of its provable assertions): a
    vocabulary holds only those (:func:`core.models.formats.provable_labels`), never a syntax axiom's."""
    labels = provable_labels(db)
    return sum(Token("label", label) in vocab for label in labels), len(labels)


def check_database_coverage(vocab: Vocabulary, db: Database, *, where: str) -> None:
    """CheckpointError if the model knows none of ``db``'s labels (it was trained on another database and
    could propose nothing); a warning if it knows only some (those are the only ones it proposes)."""
    known, total = database_coverage(vocab, db)
    if total and not known:
        raise CheckpointError(
            f"{where}: the model knows none of the {total} labels of {db.path}: it was trained "
            "on another database; train one on this database (python -m core.models.supervised)"
        )
    if known < total:
        logger.warning(
            "%s: the model knows %d of the %d labels of %s (trained on another database?); the others "
            "are never proposed, unknown symbols read as <UNK>",
            where,
            known,
            total,
            db.path,
        )
