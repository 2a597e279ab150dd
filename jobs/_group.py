"""A group of data-parallel trainers: collective decisions, gradient averaging, gathering cursors.

A group of one (``count == 1``) needs nothing: every operation is local. A larger group rendezvouses
through ``torch.distributed`` with the usual environment variables (``MASTER_ADDR``, ``MASTER_PORT``,
``RANK``, ``WORLD_SIZE``), which the launcher sets locally and submitit's environment provides on SLURM;
gloo on CPU, nccl on GPU. All ranks take the same decisions (step, publish, stop) by reducing flags, so
they stay in lockstep; rank 0 alone publishes.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as dist

from core.errors import ConfigError

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(minutes=2)


class Group:
    def __init__(self, rank: int, size: int) -> None:
        self.rank = rank
        self.size = size

    @staticmethod
    def from_environment(rank: int, size: int) -> "Group":
        if size <= 1:
            return Group(0, 1)
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise ConfigError(f"a group of {size} trainers needs {name} in the environment "
                                  "(the launcher sets it; for a manual run export MASTER_ADDR and MASTER_PORT)")
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, rank=rank, world_size=size, timeout=TIMEOUT)
            logger.info("trainer group: rank %d of %d joined (%s)", rank, size, backend)
        return Group(rank, size)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def _reduce_flag(self, flag: bool, op: Any) -> bool:
        if self.size == 1:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32)
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
        """Average gradients over the group (called between backward and the optimizer step)."""
        for parameter in model.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
                parameter.grad /= self.size

    def broadcast_model(self, model: torch.nn.Module) -> None:
        """Make every rank start from rank 0's weights."""
        if self.size == 1:
            return
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
