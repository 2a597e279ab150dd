"""Training a :class:`~core.models.transformer.Seq2Seq` on ``(source_ids, target_ids)`` examples.

:class:`Seq2SeqTrainer` does one optimiser step per call of :meth:`Seq2SeqTrainer.step`, on a list of
examples with optional per-example weights: all 1 for supervised learning (cross-entropy), advantages for
REINFORCE (any sign; zero or negative weights are fine). The loss is

    loss = - sum_i w_i * log p(target_i + <EOS> | source_i) / (number of target tokens, <EOS> included)

so with unit weights it is the mean token cross-entropy. With ``entropy_weight`` > 0 (the generator's
REINFORCE entropy bonus) the loss also subtracts ``entropy_weight * sum of the model's per-position
entropies / (number of target tokens)``, which keeps the policy from collapsing onto one answer. Examples are sorted by length and cut into
micro-batches of at most ``batch_tokens`` padded tokens (gradients accumulate), so the caller chooses the
batch freely. Too-long examples are truncated to the model's limits, counted and warned about (a source
keeps its head; a target keeps its head and loses its ``<EOS>`` term, since it does not end there);
examples with an empty source are skipped and counted. :meth:`Seq2SeqTrainer.state_dict` holds the model, the
AdamW state and the step, so that training resumes exactly (dropout masks aside). For data-parallel
training, ``grad_sync(model)`` runs after the backward passes and before clipping (e.g. an all-reduce
averaging the gradients over the group).

:func:`train_loop` is the one training loop: a step per batch drawn from an iterable, until a stop
condition or the batches end, with progress logged through ``logging``. Every trainer uses it: the
supervised :func:`train_examples` (seeded :func:`length_bucketed_batches`, a cosine schedule over a step
or time :class:`Budget`, see :func:`new_trainer`; used by :mod:`core.models.supervised` and tests), and the
trainer roles (their bootstrap and their stream-fed loop, see :mod:`jobs._trainer`). :func:`new_model`
is the one way to a freshly initialised model.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from core.errors import ConfigError, ModelError
from core.models.decoding import target_logprobs, target_logprobs_and_entropy
from core.models.devices import autocast, default_precision, effective_precision
from core.models.transformer import ModelConfig, Seq2Seq
from core.models.vocab import Vocabulary

logger = logging.getLogger(__name__)

Example = tuple[Sequence[int], Sequence[int]]
Prepared = tuple[list[int], list[int], float, bool]  # source, target, weight, whether <EOS> ends the target
SCHEDULES = ("constant", "inverse_sqrt", "cosine")


class Seq2SeqTrainer:
    """AdamW with warmup then a constant, inverse-square-root or cosine learning rate.

    ``device``: where the model (and so the optimizer state) lives. ``precision``: ``bf16`` runs forward
    passes under bfloat16 autocast on CUDA (falls back to fp32, with a warning, elsewhere), ``fp32`` never
    autocasts; ``None`` is ``bf16`` on CUDA and ``fp32`` elsewhere, silently.
    """

    def __init__(
        self,
        model: Seq2Seq,
        *,
        lr: float = 1e-3,
        warmup_steps: int = 100,
        weight_decay: float = 0.01,
        grad_clip: float = 1.0,
        schedule: str = "inverse_sqrt",
        total_steps: int | None = None,
        min_lr_ratio: float = 0.1,
        batch_tokens: int = 16384,
        device: torch.device | str | None = None,
        grad_sync: Callable[[Seq2Seq], None] | None = None,
        precision: str | None = None,
    ) -> None:
        _check_hyperparameters(lr, warmup_steps, weight_decay, grad_clip, schedule, total_steps, batch_tokens)
        self.model = model.to(device) if device is not None else model
        self.precision = (
            default_precision(self.model.device)
            if precision is None
            else effective_precision(precision, self.model.device, "trainer precision")
        )
        self.lr, self.warmup_steps, self.schedule = lr, warmup_steps, schedule
        self.total_steps, self.min_lr_ratio = total_steps, min_lr_ratio
        self.grad_clip, self.batch_tokens, self.weight_decay = grad_clip, batch_tokens, weight_decay
        self.grad_sync = grad_sync
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        fused = {"fused": True} if self.model.device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), **fused)
        self.steps = 0
        self.truncated = 0
        self.skipped = 0
        self.nonfinite = 0
        self.entropy_weight = 0.0  # the entropy bonus (see the module docstring); >= 0

    def learning_rate(self, step: int | None = None) -> float:
        """The learning rate of optimiser step ``step`` (default: the next one)."""
        step = self.steps if step is None else step
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "inverse_sqrt":
            return self.lr * math.sqrt(max(self.warmup_steps, 1) / (step + 1))
        if self.schedule == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)  # type: ignore[operator]  # cosine requires total_steps
            progress = min((step - self.warmup_steps) / span, 1.0)
            cosine = 0.5 * (1 + math.cos(math.pi * progress))
            return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)
        return self.lr

    def step(
        self, examples: Sequence[Example], weights: Sequence[float] | torch.Tensor | None = None
    ) -> dict[str, float]:
        """One optimiser step on ``examples`` (with per-example ``weights``, default 1).

        Returns ``loss`` (the weighted loss above), ``nll`` (the unweighted mean token cross-entropy),
        ``tokens`` and ``examples`` (those used), ``lr`` and ``grad_norm`` (before clipping).
        """
        weight_list = [1.0] * len(examples) if weights is None else torch.as_tensor(weights).flatten().tolist()
        if len(weight_list) != len(examples):
            raise ModelError(f"trainer.step: {len(weight_list)} weights for {len(examples)} examples")
        if not all(math.isfinite(w) for w in weight_list):
            raise ModelError("trainer.step: weights must be finite numbers (got NaN or infinity)")
        kept = self._prepare(examples, weight_list)
        if not kept:
            raise ModelError("trainer.step: no usable example (all empty or none given)")
        device = self.model.device
        total_tokens = sum(len(tgt) + ends for _, tgt, _, ends in kept)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, nll_sum = 0.0, 0.0
        for batch in self._micro_batches(kept):
            sources, targets, batch_weights, ends = zip(*batch)
            with autocast(device, self.precision):
                if self.entropy_weight:
                    logp, entropy, _ = target_logprobs_and_entropy(self.model, sources, targets)
                else:
                    logp, _ = target_logprobs(self.model, sources, targets)
            if not all(ends):  # drop the <EOS> term of truncated targets
                cut = torch.tensor([len(t) if not e else -1 for t, e in zip(targets, ends)], device=device)
                logp = logp * (torch.arange(logp.shape[1], device=device)[None, :] != cut[:, None])
            per_example = logp.sum(dim=1)
            w = torch.tensor(batch_weights, dtype=per_example.dtype, device=device)
            loss = -(w * per_example).sum() / total_tokens
            if self.entropy_weight:
                loss = loss - self.entropy_weight * entropy.sum() / total_tokens  # the entropy bonus
            loss.backward()
            loss_sum += loss.item()
            nll_sum -= per_example.sum().item()
        if self.grad_sync is not None:
            self.grad_sync(self.model)
        lr = self.learning_rate()
        grad_norm = self._clip()
        if math.isfinite(grad_norm):
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
        else:
            self.nonfinite += 1
            logger.warning("step %d: non-finite gradient norm, update skipped (%d so far)", self.steps,
                           self.nonfinite)  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        return {"loss": loss_sum, "nll": nll_sum / total_tokens, "tokens": float(total_tokens),
                "examples": float(len(kept)), "lr": lr, "grad_norm": grad_norm}  # fmt: skip

    def _clip(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        limit = self.grad_clip if self.grad_clip > 0 else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(params, limit))

    def _prepare(self, examples: Sequence[Example], weights: list[float]) -> list[Prepared]:
        """Truncate to the model's limits (counted, warned) and drop empty sources (counted)."""
        config = self.model.config
        max_src, max_tgt = config.max_source_len, config.max_target_len - 1
        kept = []
        for (src, tgt), w in zip(examples, weights):
            if len(src) == 0:
                self.skipped += 1
                logger.warning("skipped an example with an empty source (%d so far)", self.skipped)
                continue
            if len(src) > max_src or len(tgt) > max_tgt:
                self.truncated += 1
                if _is_power_of_ten(self.truncated):
                    logger.warning(
                        "truncated an example of source/target lengths %d/%d to the model's %d/%d "
                        "(%d truncated so far)", len(src), len(tgt), max_src, max_tgt, self.truncated
                    )  # fmt: skip
            kept.append((list(src[:max_src]), list(tgt[:max_tgt]), float(w), len(tgt) <= max_tgt))
        return kept

    def _micro_batches(self, kept: list[Prepared]) -> Iterator[list[Prepared]]:
        """Length-sorted chunks whose padded size (rows x (source + target length)) fits batch_tokens."""
        kept = sorted(kept, key=lambda e: (len(e[0]), len(e[1])))
        batch: list[Prepared] = []
        longest_src = longest_tgt = 0
        for example in kept:
            src_len, tgt_len = max(longest_src, len(example[0])), max(longest_tgt, len(example[1]) + 1)
            if batch and (len(batch) + 1) * (src_len + tgt_len) > self.batch_tokens:
                yield batch
                batch, src_len, tgt_len = [], len(example[0]), len(example[1]) + 1
            batch.append(example)
            longest_src, longest_tgt = src_len, tgt_len
        if batch:
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Model weights, AdamW state, step and counters (tensors and plain values only)."""
        counters = {"truncated": self.truncated, "skipped": self.skipped, "nonfinite": self.nonfinite}
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "steps": self.steps,
                "counters": counters}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; the hyperparameters stay those given to the constructor."""
        missing = {"model", "optimizer", "steps"} - set(state)
        if missing:
            raise ModelError(f"trainer state lacks {', '.join(sorted(missing))}; is it a Seq2SeqTrainer state?")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group, decay in zip(self.optimizer.param_groups, (self.weight_decay, 0.0)):
            group["weight_decay"] = decay
        self.steps = int(state["steps"])
        counters = state.get("counters", {})
        self.truncated = int(counters.get("truncated", 0))
        self.skipped = int(counters.get("skipped", 0))
        self.nonfinite = int(counters.get("nonfinite", 0))


def check_schedule(lr: float, warmup_steps: int) -> None:
    """Refuse a learning rate or warmup that :class:`Seq2SeqTrainer` would refuse (errors carry ``field``)."""
    if not lr > 0:
        raise ConfigError(f"trainer lr must be positive (got {lr})", field="lr")
    if warmup_steps < 0:
        raise ConfigError(f"trainer warmup_steps must be >= 0 (got {warmup_steps})", field="warmup_steps")


def check_batching(batch_size: int, log_every: int) -> None:
    """Refuse a batch size or logging period that :func:`train_examples` would refuse (errors carry ``field``)."""
    for name, value in (("batch_size", batch_size), ("log_every", log_every)):
        if value < 1:
            raise ConfigError(f"training {name} must be >= 1 (got {value})", field=name)


def _check_hyperparameters(
    lr: float, warmup: int, decay: float, clip: float, schedule: str, total: int | None, batch_tokens: int
) -> None:
    check_schedule(lr, warmup)
    if decay < 0:
        raise ConfigError(f"trainer weight_decay must be >= 0 (got {decay})", field="weight_decay")
    if clip < 0:
        raise ConfigError(f"trainer grad_clip must be >= 0, 0 meaning no clipping (got {clip})", field="grad_clip")
    if schedule not in SCHEDULES:
        raise ConfigError(
            f"trainer schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})", field="schedule"
        )
    if schedule == "cosine" and (total is None or total < 1):
        raise ConfigError("trainer schedule 'cosine' needs total_steps >= 1", field="total_steps")
    if batch_tokens < 1:
        raise ConfigError(f"trainer batch_tokens must be >= 1 (got {batch_tokens})", field="batch_tokens")


def _is_power_of_ten(n: int) -> bool:
    return n > 0 and 10 ** round(math.log10(n)) == n


# --- a fresh model, its training budget and batches -----------------------------------------------


def new_model(vocab: Vocabulary, size: str = "small", *, seed: int = 0, **overrides: Any) -> Seq2Seq:
    """A freshly initialised model of a named size (``tiny``, ``small``, ``base``) for ``vocab``; ``overrides``
    are :class:`ModelConfig` fields (e.g. ``max_source_len``). The same seed gives the same weights."""
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig.named(size, vocab_size=len(vocab), **overrides))


@dataclass
class Budget:
    """When training must end: ``steps``, ``wall_s`` seconds of wall-clock time or ``cpu_s`` seconds of this
    process's CPU time (all threads), whichever comes first. Clocks start with :meth:`start`."""

    steps: int
    wall_s: float | None = None
    cpu_s: float | None = None
    _wall0: float | None = None
    _cpu0: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"training steps must be >= 0 (got {self.steps})", field="steps")
        for name in ("wall_s", "cpu_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"training time budget {name} must be positive (got {value})", field=name)

    def start(self) -> None:
        if self._wall0 is None:
            self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds) since :meth:`start`."""
        if self._wall0 is None:
            return 0.0, 0.0
        return time.perf_counter() - self._wall0, time.process_time() - self._cpu0

    def time_fraction(self) -> float:
        """The larger fraction of the time budgets used (0 without any)."""
        wall, cpu = self.elapsed()
        fractions = [wall / self.wall_s if self.wall_s else 0.0, cpu / self.cpu_s if self.cpu_s else 0.0]
        return max(fractions)

    def exhausted_by(self, steps_done: int) -> str | None:
        """``"steps"``, ``"time"`` or ``"cpu_time"`` once the budget is spent, else ``None``."""
        if steps_done >= self.steps:
            return "steps"
        wall, cpu = self.elapsed()
        if self.wall_s is not None and wall >= self.wall_s:
            return "time"
        if self.cpu_s is not None and cpu >= self.cpu_s:
            return "cpu_time"
        return None


class BudgetedTrainer(Seq2SeqTrainer):
    """A trainer whose cosine decay ends with its :class:`Budget`'s steps or time, whichever comes first."""

    def __init__(self, model: Seq2Seq, *, budget: Budget, **kwargs: Any) -> None:
        super().__init__(model, schedule="cosine", total_steps=max(budget.steps, 1), **kwargs)
        self.budget = budget

    def learning_rate(self, step: int | None = None) -> float:
        step = self.steps if step is None else step
        if step < self.warmup_steps:
            return super().learning_rate(step)
        span = max((self.total_steps or 1) - self.warmup_steps, 1)
        progress = min(max((step - self.warmup_steps) / span, self.budget.time_fraction()), 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


def new_trainer(
    model: Seq2Seq,
    *,
    steps: int,
    lr: float = 1e-3,
    warmup_steps: int = 100,
    time_limit_s: float | None = None,
    cpu_limit_s: float | None = None,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> BudgetedTrainer:
    """AdamW, linear warmup, then cosine decay to 10 % of ``lr`` over ``steps`` or the time budget
    (``time_limit_s`` wall-clock seconds, ``cpu_limit_s`` CPU seconds), whichever ends first.

    The budget's clocks start at the trainer's creation; its :attr:`budget` says when to stop.
    """
    budget = Budget(steps, time_limit_s, cpu_limit_s)
    budget.start()
    return BudgetedTrainer(model, budget=budget, lr=lr, warmup_steps=min(warmup_steps, max(steps // 5, 1)),
                           device=device, **kwargs)  # fmt: skip


def length_bucketed_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless batches of example indices: shuffle, sort pools of 50 batches by length, cut, shuffle batches.

    Every index appears once per pass over ``examples``; batches hold ``batch_size`` indices (the last of a
    pool fewer) of similar lengths, so little of a batch is padding."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
    if not examples:
        raise ModelError("length_bucketed_batches: no examples to batch")
    return _bucketed(examples, batch_size, rng)


def _bucketed(examples: Sequence[Example], batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    pool_size = 50 * batch_size
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), pool_size):
            pool = sorted(order[start : start + pool_size], key=lambda i: (len(examples[i][0]), len(examples[i][1])))
            batches = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
            rng.shuffle(batches)
            yield from batches


# --- the training loop -----------------------------------------------------------------------------


@dataclass
class TrainStats:
    """What :func:`train_loop` did; ``losses`` holds (step, mean loss since the previous entry)."""

    steps: int = 0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    final_loss: float = float("nan")
    losses: list[tuple[int, float]] = field(default_factory=list)
    truncated: int = 0
    stopped_by: str = "steps"


WeightedBatch = tuple[Sequence[Example], Sequence[float] | None]


@dataclass
class _Window:
    """The steps since the last progress line."""

    loss: float = 0.0
    steps: int = 0
    examples: int = 0
    tokens: int = 0
    since: float = field(default_factory=time.perf_counter)


def train_loop(
    trainer: Seq2SeqTrainer,
    batches: Iterable[WeightedBatch],
    *,
    stop: Callable[[int], str | None] | None = None,
    after_step: Callable[[dict[str, float]], None] | None = None,
    log_every: int | None = None,
) -> TrainStats:
    """The one training loop: one :meth:`Seq2SeqTrainer.step` per ``(examples, weights)`` batch drawn from
    ``batches`` (``weights`` None: all 1), until ``stop(steps done)`` names a reason or ``batches`` ends
    (``stopped_by`` then ``"batches"``). ``after_step`` sees each step's result. With ``log_every``, the mean
    loss, the learning rate and the rates are logged every ``log_every`` steps, and a summary at the end."""
    if log_every is not None and log_every < 1:
        raise ConfigError(f"log_every must be >= 1 (got {log_every})")
    stats = TrainStats()
    start, cpu_start, truncated_before = time.perf_counter(), time.process_time(), trainer.truncated
    window = _Window()
    iterator = iter(batches)
    while (reason := stop(stats.steps) if stop is not None else None) is None:
        batch = next(iterator, None)
        if batch is None:
            reason = "batches"
            break
        result = trainer.step(*batch)
        stats.steps += 1
        stats.examples += int(result["examples"])
        stats.tokens += int(result["tokens"])
        stats.final_loss = result["loss"]
        if after_step is not None:
            after_step(result)
        window.loss, window.steps = window.loss + result["loss"], window.steps + 1
        window.examples, window.tokens = (
            window.examples + int(result["examples"]),
            window.tokens + int(result["tokens"]),
        )
        if window.steps == log_every:
            _log_window(stats, window, result["lr"], start, cpu_start)
            window = _Window()
    if window.steps:
        stats.losses.append((stats.steps, window.loss / window.steps))
    stats.stopped_by = reason
    stats.seconds = time.perf_counter() - start
    stats.truncated = trainer.truncated - truncated_before
    if log_every is not None:
        logger.info("trained %d steps in %.1f s wall, %.1f s CPU (%d examples, final loss %.4f, stopped by %s)",
                    stats.steps, stats.seconds, time.process_time() - cpu_start, stats.examples, stats.final_loss,
                    stats.stopped_by)  # fmt: skip
    return stats


def _log_window(stats: TrainStats, window: _Window, lr: float, start: float, cpu_start: float) -> None:
    now = time.perf_counter()
    span = max(now - window.since, 1e-9)
    stats.losses.append((stats.steps, window.loss / window.steps))
    logger.info(
        "step %d loss %.4f lr %.2e | %.2f steps/s %.1f examples/s %.0f tokens/s | %.0f s wall %.0f s CPU",
        stats.steps, window.loss / window.steps, lr, window.steps / span, window.examples / span,
        window.tokens / span, now - start, time.process_time() - cpu_start,
    )  # fmt: skip


def train_examples(
    model: Seq2Seq,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    warmup_steps: int = 100,
    time_limit_s: float | None = None,
    cpu_limit_s: float | None = None,
    seed: int = 0,
    log_every: int = 100,
    device: torch.device | str | None = None,
    **trainer_options: Any,
) -> TrainStats:
    """Supervised cross-entropy training on ``examples`` until ``steps`` or a time budget runs out (see
    :func:`new_trainer`), on seeded length-bucketed batches (:func:`length_bucketed_batches`).

    Logs the mean loss, the learning rate and the rates every ``log_every`` steps. ``stats.stopped_by`` is
    ``steps``, ``time`` (wall clock) or ``cpu_time``. ``trainer_options``: more :class:`Seq2SeqTrainer` settings.
    """
    check_batching(batch_size, log_every)
    if not examples:
        raise ModelError("train_examples: no examples to train on")
    trainer = new_trainer(model, steps=steps, lr=lr, warmup_steps=warmup_steps, time_limit_s=time_limit_s,
                          cpu_limit_s=cpu_limit_s, device=device, **trainer_options)  # fmt: skip
    indices = length_bucketed_batches(examples, batch_size, random.Random(seed))
    batches = (([examples[i] for i in batch], None) for batch in indices)
    return train_loop(trainer, batches, stop=trainer.budget.exhausted_by, log_every=log_every)
