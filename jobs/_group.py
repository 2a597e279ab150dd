"""A group of data-parallel trainers: collective decisions, gradient averaging, gathering cursors.

A group of one (``count == 1``) needs nothing: every operation is local. A larger group rendezvouses
through ``torch.distributed`` with the usual environment variables (``MASTER_ADDR``, ``MASTER_PORT``,
``RANK``, ``WORLD_SIZE``), which the launcher sets locally and submitit's environment provides on SLURM.
The backend follows the device the group's tensors live on (the trainers' ``device`` setting): nccl when
they are CUDA tensors, gloo otherwise; flags are reduced on that device too. All ranks take the same
decisions (step, publish, stop) by reducing flags, so they stay in lockstep; rank 0 alone publishes.
Gradients are averaged after every backward pass and rank 0's weights are broadcast at the start, so
every rank holds the same weights.
"""

from __future__ import annotations

import datetime
import logging
import os
import zlib
from typing import Any

import torch
import torch.distributed as dist

from core.errors import ConfigError
from core.storage import GROUP_SHARES_BY_RECORD

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(minutes=2)
SHARING = GROUP_SHARES_BY_RECORD  # how a group divides its input, recorded in its checkpoints' metadata


def backend_for(device: torch.device) -> str:
    """The collective backend for tensors on ``device``: nccl for CUDA tensors, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


class Group:
    def __init__(self, rank: int, size: int, device: torch.device | None = None) -> None:
        self.rank = rank
        self.size = size
        self.device = device if device is not None else torch.device("cpu")

    @staticmethod
    def from_environment(rank: int, size: int, device: torch.device | None = None) -> Group:
        """Join the group of ``size`` trainers as ``rank``; its collectives run on ``device`` (default CPU)."""
        device = device if device is not None else torch.device("cpu")
        if size <= 1:
            return Group(0, 1, device)
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise ConfigError(
                    f"a group of {size} trainers needs {name} in the environment "
                    "(the launcher sets it; for a manual run export MASTER_ADDR and MASTER_PORT)"
                )
        if device.type == "cuda":
            torch.cuda.set_device(device)  # nccl's object collectives use the current device
        if not dist.is_initialized():
            backend = backend_for(device)
            dist.init_process_group(backend, rank=rank, world_size=size, timeout=TIMEOUT)
            logger.info("trainer group: rank %d of %d joined (%s, tensors on %s)", rank, size, backend, device)
        return Group(rank, size, device)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def owns(self, stream: str, seq: int, index: int) -> bool:
        """Whether this rank trains on record ``index`` of shard ``seq`` of ``stream``: every rank reads every
        stream, and each record belongs to exactly one rank, by a stable hash of its position."""
        if self.size == 1:
            return True
        return zlib.crc32(f"{stream}/{seq}/{index}".encode()) % self.size == self.rank

    def _reduce_flag(self, flag: bool, op: Any) -> bool:
        if self.size == 1:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(tensor, op=op)
        return bool(tensor.item())

    def all_true(self, flag: bool) -> bool:
        return self._reduce_flag(flag, dist.ReduceOp.MIN if self.size > 1 else None)

    def any_true(self, flag: bool) -> bool:
        return self._reduce_flag(flag, dist.ReduceOp.MAX if self.size > 1 else None)

    def gather_json(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (JSON-like values only)."""
        if self.size == 1:
            return [value]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def grad_sync(self, model: torch.nn.Module) -> None:
        """Average gradients over the group (called between backward and the optimizer step). A parameter
        without a gradient on this rank contributes zeros, so every rank issues the same collectives."""
        for parameter in model.parameters():
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad /= self.size

    def broadcast_model(self, model: torch.nn.Module) -> None:
        """Make every rank start from rank 0's weights."""
        if self.size == 1:
            return
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
