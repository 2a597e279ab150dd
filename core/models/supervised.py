"""Supervised training of a prover or a generator on the proofs of a database split, and its command line.

    model, vocab, stats = train_prover_on_database(db, size="small", formats=("backward",), time_limit_s=1200)
    model, vocab, stats = train_generator_on_database(db, size="tiny", steps=200)

The pieces: :func:`build_vocabulary` (in :mod:`core.models.formats`), :func:`database_examples`, and from
:mod:`core.models.training` :func:`~core.models.training.new_model` and
:func:`~core.models.training.train_examples` (the one training loop on seeded length-bucketed batches, with
AdamW, warmup then cosine decay over the steps or the time budget, whichever ends first, and progress logs).
A time budget is wall-clock seconds, or CPU seconds of the process (``cpu_limit_s``, ``--cpu-minutes``:
the fair measure on a shared machine, where a wall-clock budget buys less work when others compete).

Command line (writes a checkpoint file that ``python -m jobs.prove --checkpoint CKPT.safetensors`` loads)::

    python -m core.models.supervised DATABASE.mm --out CKPT.safetensors [--kind prover|generator] [--size small]
        [--dropout P] [--minutes 20] [--cpu-minutes 20] [--steps N] [--formats backward [forward ...]] [--batch-size 32]
        [--lr 1e-3] [--split train] [--seed 0] [--augment N] [--found-proofs SUMMARY.json ...] [--device cpu|cuda]
        [--log-every 100] [--threads N]

``--found-proofs`` learns, besides the database's proofs, the proofs a search found (``python -m jobs.prove
DATABASE.mm --split train --json SUMMARY.json``) that take a step the database's proof does not: each is
checked by the kernel and learned as a second proof of its theorem, under the same held-out hygiene (offline
expert iteration; measured on prop.mm in the README). Every flag is checked before the database is read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from core.errors import AdvproverError, ConfigError, UsageError, report
from core.metamath.database import Database
from core.metamath.prooftree import ProofTree
from core.models.augment import Augmentation
from core.models.decoding import target_logprobs
from core.models.examples import Example, ExampleSet, build_examples
from core.models.formats import CONDITIONING, Codec, build_vocabulary
from core.models.training import Budget, TrainStats, check_batching, check_schedule, new_model, train_examples
from core.models.transformer import ModelConfig, Seq2Seq
from core.models.vocab import Vocabulary

logger = logging.getLogger(__name__)

DEFAULT_FORMATS = {"prover": ("backward",), "generator": ("generator",)}


@dataclass
class SupervisedStats:
    """What a supervised run did: examples (per format, skipped ones by reason), training, validation."""

    kind: str = "prover"
    formats: tuple[str, ...] = ()
    size: str = "small"
    parameters: int = 0
    theorems: int = 0
    examples: int = 0
    by_format: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    train: TrainStats = field(default_factory=TrainStats)
    valid_examples: int = 0
    valid_nll: float = float("nan")
    device: str = "cpu"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["formats"] = list(self.formats)
        data["train"]["losses"] = [list(x) for x in self.train.losses]
        return data


# --- the pieces ------------------------------------------------------------------------------------


def database_examples(
    db: Database,
    vocab: Vocabulary,
    config: ModelConfig,
    *,
    formats: Sequence[str] = ("backward",),
    split: str = "train",
    conditioning: Sequence[str] = (),
    augmentation: Augmentation | None = None,
    found: Mapping[str, Sequence[ProofTree]] | None = None,
) -> ExampleSet:
    """The examples of ``formats`` from the proofs of ``split``, encoded within ``config``'s limits
    (with ``augmentation``'s substitution instances of each proof: :mod:`core.models.augment`, and the
    ``found`` proofs that differ from the database's: :func:`core.models.examples.build_examples`)."""
    return build_examples(db, Codec.for_model(vocab, config), formats=formats, split=split,
                          conditioning=conditioning, augmentation=augmentation, found=found)  # fmt: skip


def mean_nll(model: Seq2Seq, examples: Sequence[Example], batch_size: int = 64) -> float:
    """The mean per-token negative log-likelihood (``<EOS>`` included) of ``examples`` under ``model``."""
    if not examples:
        return float("nan")
    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(examples), batch_size):
                batch = examples[start : start + batch_size]
                logp, mask = target_logprobs(model, [s for s, _ in batch], [t for _, t in batch])
                total -= float(logp.sum())
                tokens += int(mask.sum())
    finally:
        model.train(was_training)
    return total / max(tokens, 1)


# --- the plain functions ---------------------------------------------------------------------------


def train_on_database(
    db: Database,
    *,
    kind: str,
    size: str = "small",
    split: str = "train",
    formats: Sequence[str] | None = None,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 1e-3,
    warmup_steps: int = 100,
    time_limit_s: float | None = None,
    cpu_limit_s: float | None = None,
    seed: int = 0,
    log_every: int = 100,
    device: torch.device | str | None = None,
    vocab: Vocabulary | None = None,
    model: Seq2Seq | None = None,
    conditioning: Sequence[str] = (),
    validate: bool = True,
    augmentation: Augmentation | None = None,
    found: Mapping[str, Sequence[ProofTree]] | None = None,
    **model_overrides: Any,
) -> tuple[Seq2Seq, Vocabulary, SupervisedStats]:
    """Train a new model (or continue ``model``, whose ``vocab`` must then be given) on ``db``'s ``split``.

    Stops after ``steps`` steps, ``time_limit_s`` wall-clock seconds or ``cpu_limit_s`` seconds of CPU
    time of training, whichever first (building the examples is not counted). With
    ``validate``, the mean token NLL on the ``valid`` split's examples is measured at the end.
    ``augmentation`` adds substitution instances of the training proofs (never to the validation examples);
    ``found`` adds the proofs a search found that differ from the database's (label -> trees).
    """
    if kind not in DEFAULT_FORMATS:
        raise ConfigError(f"unknown model kind {kind!r}; choose prover or generator")
    if model is not None and vocab is None:
        raise ConfigError("train_on_database: continuing a model needs its vocabulary (vocab=...)")
    formats = tuple(formats or DEFAULT_FORMATS[kind])
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    vocab = vocab or build_vocabulary(db)
    model = (model or new_model(vocab, size, seed=seed, **model_overrides)).to(device)
    examples = database_examples(db, vocab, model.config, formats=formats, split=split, conditioning=conditioning,
                                 augmentation=augmentation, found=found)  # fmt: skip
    if not examples.examples:
        raise ConfigError(f"{db.path}: the {split} split gives no {'/'.join(formats)} example to train on")
    stats = SupervisedStats(kind=kind, formats=formats, size=size, parameters=model.num_parameters(),
                            theorems=len(examples.theorems), examples=len(examples.examples),
                            by_format=dict(examples.by_format), skipped=dict(examples.counters),
                            device=str(device))  # fmt: skip
    logger.info("training a %s %s (%d parameters) on %s: %d examples (%s), on %s", size, kind, stats.parameters,
                db.path, stats.examples, ", ".join(f"{k} {v}" for k, v in stats.by_format.items()), device)  # fmt: skip
    stats.train = train_examples(model, examples.examples, steps=steps, batch_size=batch_size, lr=lr,
                                 warmup_steps=warmup_steps, time_limit_s=time_limit_s, cpu_limit_s=cpu_limit_s,
                                 seed=seed, log_every=log_every, device=device)  # fmt: skip
    if validate and split != "valid":
        valid = database_examples(db, vocab, model.config, formats=formats, split="valid", conditioning=conditioning)
        stats.valid_examples = len(valid.examples)
        stats.valid_nll = mean_nll(model, valid.examples)
        logger.info("validation: mean token NLL %.4f on %d examples", stats.valid_nll, stats.valid_examples)
    return model.eval(), vocab, stats


def train_prover_on_database(
    db: Database,
    *,
    size: str = "small",
    split: str = "train",
    formats: Sequence[str] = ("backward",),
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 1e-3,
    time_limit_s: float | None = None,
    seed: int = 0,
    log_every: int = 100,
    **options: Any,
) -> tuple[Seq2Seq, Vocabulary, SupervisedStats]:
    """A prover trained on ``db``'s ``split`` (``options``: see :func:`train_on_database`)."""
    return train_on_database(db, kind="prover", size=size, split=split, formats=formats, steps=steps,
                             batch_size=batch_size, lr=lr, time_limit_s=time_limit_s, seed=seed,
                             log_every=log_every, **options)  # fmt: skip


def train_generator_on_database(
    db: Database,
    *,
    size: str = "small",
    split: str = "train",
    formats: Sequence[str] = ("generator",),
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 1e-3,
    time_limit_s: float | None = None,
    seed: int = 0,
    log_every: int = 100,
    **options: Any,
) -> tuple[Seq2Seq, Vocabulary, SupervisedStats]:
    """A generator trained on ``db``'s ``split`` (``options``: see :func:`train_on_database`)."""
    return train_on_database(db, kind="generator", size=size, split=split, formats=formats, steps=steps,
                             batch_size=batch_size, lr=lr, time_limit_s=time_limit_s, seed=seed,
                             log_every=log_every, **options)  # fmt: skip


# --- command line ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.models.supervised",
        allow_abbrev=False,
        description="train a prover or generator on the proofs of a database split",
    )
    parser.add_argument("database", help="the .mm file whose proofs to learn from")
    parser.add_argument("--out", required=True, help="the checkpoint file to write (for jobs.prove --checkpoint)")
    parser.add_argument("--kind", choices=sorted(DEFAULT_FORMATS), default="prover")
    parser.add_argument("--size", default="small", help="model size: tiny, small or base (default small)")
    parser.add_argument("--dropout", type=float, help="dropout probability while training (default: the size's)")
    parser.add_argument(
        "--formats",
        nargs="+",
        help="formats to learn (default: backward for a prover, generator "
        "for a generator); e.g. --formats backward forward",
    )
    parser.add_argument("--minutes", type=float, help="wall-clock training budget (default: none)")
    parser.add_argument(
        "--cpu-minutes",
        type=float,
        help="training budget in CPU time of this process, all "
        "threads counted (fair on a shared machine; default: none)",
    )
    parser.add_argument("--steps", type=int, help="most optimiser steps (default 2000; unbounded with a time budget)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--split", default="train", help="split whose proofs to learn (default train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", type=int, default=0, help="kernel-checked substitution instances drawn "
                        "per training proof (core.models.augment; default 0: none)")  # fmt: skip
    parser.add_argument("--augment-compound", type=float, default=0.25, help="probability that an instance "
                        "replaces a variable by a formula rather than by a variable (default 0.25)")  # fmt: skip
    parser.add_argument("--found-proofs", nargs="+", default=[], metavar="SUMMARY.json", help="search summaries "
                        "(jobs.prove --split train --json) whose proofs that differ from the database's are "
                        "learned too, kernel-checked, as second proofs of their theorems (default: none)")  # fmt: skip
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; on a busy "
                                                    "machine fewer threads than cores is often faster)")  # fmt: skip
    return parser


FLAGS = {  # the library's name of a setting (ConfigError.field) -> the flag that sets it
    "size": "--size", "dropout": "--dropout", "steps": "--steps", "batch_size": "--batch-size", "lr": "--lr",
    "warmup_steps": "--warmup-steps", "log_every": "--log-every", "copies": "--augment",
    "compound": "--augment-compound", "seed": "--seed",
}  # fmt: skip


@contextmanager
def reported_by_flag() -> Iterator[None]:
    """Re-raise a :class:`ConfigError` whose field a flag sets as one that names the flag (the user typed the
    flag, not the library's field); any other error passes unchanged."""
    try:
        yield
    except ConfigError as error:
        flag = FLAGS.get(error.field or "")
        if flag is None:
            raise
        raise ConfigError(f"{flag}: {error}", field=error.field) from error


def check_training_flags(args: argparse.Namespace) -> Augmentation:
    """Every value the library would refuse later, refused now, before the database is read (by the library's
    own checks, so the rules live in one place); returns the command line's :class:`Augmentation`."""
    with reported_by_flag():
        ModelConfig.check_named(args.size, **({} if args.dropout is None else {"dropout": args.dropout}))
        if args.steps is not None:
            Budget(args.steps)
        check_schedule(args.lr, args.warmup_steps)
        check_batching(args.batch_size, args.log_every)
        return Augmentation(copies=args.augment, compound=args.augment_compound, seed=args.seed)


def read_found_proofs(paths: Sequence[str]) -> dict[str, list[ProofTree]]:
    """label -> the proof trees of the search summaries at ``paths`` (``--found-proofs``), in order; a file that
    is missing, not JSON or not a summary with proofs is refused naming it."""
    from core.search.evaluation import found_proofs  # the summaries' format; the library above needs no search

    found: dict[str, list[ProofTree]] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                summary = json.load(file)
        except FileNotFoundError:
            raise UsageError(f"--found-proofs {path}: no such file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"--found-proofs {path}: not JSON ({error}); give a jobs.prove --json summary") from None
        for label, tree in found_proofs(summary, where=f"--found-proofs {path}").items():
            found.setdefault(label, []).append(tree)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.metamath.reader import read_database
    from core.models.checkpoint import save_policy_file
    from core.models.devices import check_device
    from core.storage.checkpoints import WEIGHTS_SUFFIX

    try:
        for flag, value in (("--minutes", args.minutes), ("--cpu-minutes", args.cpu_minutes)):
            if value is not None and not value > 0:
                raise ConfigError(f"{flag} must be positive (got {value})")
        check_device(args.device)
        if not args.out.endswith(WEIGHTS_SUFFIX):
            raise ConfigError(f"--out {args.out}: checkpoint files are safetensors; name it *{WEIGHTS_SUFFIX}")
        if args.threads is not None:
            if args.threads < 1:
                raise ConfigError(f"--threads must be >= 1 (got {args.threads})")
            torch.set_num_threads(args.threads)
        formats = [f for item in args.formats or () for f in item.split(",") if f] or None
        augmentation = check_training_flags(args)
        timed = args.minutes is not None or args.cpu_minutes is not None
        steps = args.steps if args.steps is not None else (10**9 if timed else 2000)
        if not os.path.isfile(args.database):  # a wrong command line (exit 2), not an invalid database (exit 1)
            raise UsageError(f"{args.database}: no such file")
        found = read_found_proofs(args.found_proofs)
        db = read_database(args.database)
        model, vocab, stats = train_on_database(
            db, kind=args.kind, size=args.size, split=args.split, formats=formats, steps=steps,
            batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
            time_limit_s=args.minutes * 60 if args.minutes is not None else None,
            cpu_limit_s=args.cpu_minutes * 60 if args.cpu_minutes is not None else None, seed=args.seed,
            log_every=args.log_every, device=args.device, augmentation=augmentation, found=found,
            **({} if args.dropout is None else {"dropout": args.dropout}),
        )  # fmt: skip
        extra = {"database": str(args.database), "split": args.split, "size": args.size,
                 "supervised": stats.to_json(), "conditioning": list(CONDITIONING)}  # fmt: skip
        save_policy_file(args.out, model, vocab, args.kind, extra, formats=stats.formats)
    except (AdvproverError, OSError) as error:
        return report(error)
    print(f"wrote {args.out}: {stats.kind} {stats.size}, {stats.train.steps} steps in {stats.train.seconds:.0f} s "
          f"(stopped by {stats.train.stopped_by}), "
          f"final loss {stats.train.final_loss:.4f}, valid NLL {stats.valid_nll:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
