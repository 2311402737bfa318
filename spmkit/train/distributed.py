"""Process-group setup and the small collective helpers tasks use during evaluation.

The engine calls :func:`init_distributed` once per process. Under ``torch.distributed.run`` (which
sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) it joins the process group (nccl on CUDA, gloo on CPU);
alone it is a world of one and every collective is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process stands: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes (in place) and return it."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (picklable), in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def broadcast_buffers(self, module: torch.nn.Module, src: int = 0) -> None:
        """Copy rank ``src``'s buffers (e.g. BatchNorm statistics) to every process, as DDP does per forward."""
        if self.distributed:
            for buf in module.buffers():
                dist.broadcast(buf, src=src)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group started by the launcher (if any) and pick this process's device.

    ``device`` is ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sync_batchnorm(model: torch.nn.Module, ctx: DistContext, enabled: bool) -> str | None:
    """Turn ``model``'s BatchNorm layers into ``SyncBatchNorm`` in place (same parameters and buffers, so
    optimizer, EMA and checkpoints are unaffected) when ``enabled`` and training runs in several CUDA
    processes; returns what was done (or why not), ``None`` when there was nothing to decide."""
    if not enabled or not ctx.distributed:
        return None
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
           and not isinstance(m, torch.nn.SyncBatchNorm)]
    if not bns:
        return None
    if ctx.device.type != "cuda":
        return f"sync_bn: SyncBatchNorm needs CUDA; {len(bns)} BatchNorm layers keep per-process statistics on {ctx.device.type}"
    out = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if out is not model:  # the root itself was a BatchNorm: nothing spmkit builds
        raise ValueError("sync_batchnorm: the model itself is a BatchNorm layer")
    return f"sync_bn: {len(bns)} BatchNorm layers synchronised across {ctx.world_size} processes"
