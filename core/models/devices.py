"""Devices and precision: checking a ``--device`` named on a command line, resolving a role's ``device``
setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) on the machine a job runs on, and its ``precision``.

``auto`` means CUDA when this machine has it, else the CPU. ``precision`` ``bf16`` runs training forward
passes and decoding under ``torch.autocast(dtype=bfloat16)`` on CUDA. On a CPU, training ignores it with a
warning (fp32), so one experiment configuration serves GPU and CPU nodes alike; decoding (a policy's model,
:func:`inference_weights`) runs on a bfloat16 copy of the weights when the CPU computes in bfloat16
natively (AVX512-BF16 or AMX: about 1.5x faster beam search on one core), else in fp32 with a warning.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    import torch

    from core.models.transformer import Seq2Seq

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")


def check_device(text: str | None, flag: str = "--device") -> str | None:
    """``text`` when torch can run on that device here (``None``: the caller's default); else a
    :class:`UsageError` naming the flag, what is wrong and what to do."""
    if text is None:
        return None
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"{flag} {text!r} is not a device torch knows (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"{flag} {text}: CUDA is not available on this machine (use --device cpu, or leave "
                f"{flag} out to use a GPU when there is one)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"{flag} {text}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{flag} {text}: MPS is not available on this machine (use --device cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{flag} {text}: unsupported device type {device.type!r} (use cpu or cuda)")
    return text


def resolve_device(text: str, field: str, *, local_rank: int = 0) -> torch.device:
    """The device a job uses for a ``device`` setting: ``auto`` is ``cuda`` when CUDA is available here,
    else ``cpu``; an unindexed ``cuda`` is ``cuda:local_rank`` modulo this machine's devices (so the ranks of
    a group on one node use different GPUs). A :class:`UsageError` naming ``field`` when that device is not
    available here."""
    import torch

    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(text, flag=field)
    device = torch.device(text)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def effective_precision(precision: str, device: torch.device, field: str = "precision") -> str:
    """``precision`` as it applies on ``device``: ``bf16`` needs CUDA; on another device it falls back to
    ``fp32`` with a warning. A :class:`ConfigError` naming ``field`` for an unknown precision."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{field} {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type != "cuda":
        logger.warning("%s bf16 applies on CUDA only; running in fp32 on %s", field, device)
        return "fp32"
    return precision


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (the ``avx512_bf16`` or ``amx_bf16`` flag of Linux's
    ``/proc/cpuinfo``; False where that file is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def decoding_precision(precision: str, device: torch.device, field: str = "precision") -> str:
    """``precision`` as it applies to decoding on ``device``: ``bf16`` on CUDA, and on a CPU with native
    bfloat16 (:func:`cpu_has_bf16`); elsewhere ``fp32`` with a warning. A :class:`ConfigError` naming
    ``field`` for an unknown precision."""
    if precision == "bf16" and device.type == "cpu":
        if cpu_has_bf16():
            return precision
        logger.warning(
            "%s bf16 needs CUDA or a CPU with native bfloat16 (avx512_bf16 or amx_bf16); decoding in fp32", field
        )
        return "fp32"
    return effective_precision(precision, device, field)


def inference_weights(model: Seq2Seq, device: torch.device, precision: str) -> Seq2Seq:
    """The model a policy decodes with: ``model`` itself, or for ``bf16`` on a CPU a bfloat16 copy (the
    caller's model, which trainers may share, keeps its fp32 weights). ``precision`` as resolved by
    :func:`decoding_precision`."""
    if precision == "bf16" and device.type == "cpu":
        import copy

        import torch

        return copy.deepcopy(model).to(torch.bfloat16)
    return model


def default_precision(device: torch.device) -> str:
    """``bf16`` on CUDA, ``fp32`` elsewhere (what a caller that names no precision gets)."""
    return "bf16" if device.type == "cuda" else "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """bfloat16 autocast for ``bf16`` on CUDA; nothing otherwise (fp32, or a device without bf16 autocast)."""
    import torch

    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
