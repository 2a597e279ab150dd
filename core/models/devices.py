"""Checking a ``--device`` named on a command line before any work: it must parse and be present here."""

from __future__ import annotations

from core.errors import UsageError


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
            raise UsageError(f"{flag} {text}: CUDA is not available on this machine (use --device cpu, or leave "
                             f"{flag} out to use a GPU when there is one)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{flag} {text}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{flag} {text}: MPS is not available on this machine (use --device cpu)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{flag} {text}: unsupported device type {device.type!r} (use cpu or cuda)")
    return text
