"""Never save non-finite weights: the loss is watched every batch on the device (no host sync), and the
parameters and buffers are checked before every checkpoint write. A non-finite value stops the run with one
paragraph naming the step; the checkpoints already on disk are the last good ones and stay untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from spmkit.errors import SpmkitError


class NonFiniteError(SpmkitError):
    """The loss or the weights became NaN / inf; no checkpoint was written with them."""


class FiniteGuard:
    """Records the first optimizer step whose loss was not finite, on the loss's device."""

    def __init__(self, device: torch.device, last: Path, explain: Callable[[], str | None] | None = None) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self.last = last
        #: the task's diagnosis of a non-finite loss (e.g. a batch whose labels are all ignored), or None
        self.explain = explain

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Note ``loss`` of a batch that belongs to optimizer step ``step`` (asynchronous)."""
        bad = ~torch.isfinite(loss.detach()).all() & (self.first_bad < 0)
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)

    def _stop(self, what: str, step: int | None, epoch: int) -> NonFiniteError:
        at = f"at step {step}" if step is not None else "on another process"
        kept = (f"the last good checkpoint {self.last} is kept" if self.last.exists()
                else "no checkpoint was written")
        cause = self.explain() if self.explain is not None and what == "the training loss" else None
        if cause:  # the data explains it: say so before any advice on the optimiser
            return NonFiniteError(f"training stopped: {what} became NaN or infinite {at} (epoch {epoch}) because "
                                  f"{cause}; {kept}. Fix the data first; only if the labels are right, continue "
                                  f"with --resume and a lower --lr or --set clip_grad=1.")
        return NonFiniteError(f"training stopped: {what} became NaN or infinite {at} (epoch {epoch}); {kept}. "
                              f"Continue with --resume and a lower --lr or --set clip_grad=1, or check the data.")

    def check(self, ctx, epoch: int) -> None:
        """Raise if any process saw a non-finite loss so far (every process calls this at the same steps)."""
        local = int(self.first_bad)
        flag = torch.tensor([1.0 if local >= 0 else 0.0], dtype=torch.float64, device=self.first_bad.device)
        ctx.all_reduce_sum(flag)
        if float(flag) > 0:
            raise self._stop("the training loss", local if local >= 0 else None, epoch)

    def check_weights(self, modules: list[nn.Module | None], step: int, epoch: int) -> None:
        """Raise unless every floating parameter and buffer of ``modules`` is finite."""
        flags = [torch.isfinite(t).all() for m in modules if m is not None
                 for t in (*m.parameters(), *m.buffers()) if t.is_floating_point() and t.numel()]
        if flags and not bool(torch.stack(flags).all()):
            raise self._stop("the model weights", step, epoch)

    def before_save(self, ctx, modules: list[nn.Module | None], step: int, epoch: int) -> None:
        """Both checks; call on every process before any checkpoint is written."""
        self.check(ctx, epoch)
        self.check_weights(modules, step, epoch)
