"""Unreadable training items, counted per epoch: what every task's ``end_of_epoch`` reports as ``train_skipped``."""

from __future__ import annotations

from typing import Any

import torch


class SkipCount:
    """Adds up the skip counts of the batches one process trains on; ``end_of_epoch`` sums them over the
    processes and starts again. A batch is ``(inputs, targets, skipped)`` as ``LeaveOutCollate`` makes it."""

    def __init__(self) -> None:
        self.count: int | torch.Tensor = 0

    def add(self, batch: tuple[Any, ...]) -> None:
        """Count ``batch``'s unreadable items (its third element, a count or a tensor of counts). A tensor
        stays where it is (on the GPU: no host sync per batch); it is read once, in ``end_of_epoch``."""
        if len(batch) > 2:
            self.count = self.count + torch.as_tensor(batch[2]).sum()

    def end_of_epoch(self, ctx: Any) -> dict[str, float]:
        """``{"train_skipped": N}`` over every process (``ctx.all_reduce_sum``); resets the count."""
        t = torch.as_tensor(self.count, device=ctx.device).to(torch.float64).reshape(1)
        ctx.all_reduce_sum(t)
        self.count = 0
        return {"train_skipped": float(t)}
