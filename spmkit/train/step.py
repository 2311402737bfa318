"""One training step of the engine: forward + loss (task), backward, and the optimizer update.

Kept apart from the loop so benchmarks time exactly what ``spmkit train`` runs. The loss stays on the
device (no host sync per batch); the loop reads it only when it logs.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
from torch import nn

from spmkit.train.distributed import DistContext
from spmkit.tasks.recipe import TrainRecipe
from spmkit.tasks.base import Task


class TrainStep:
    """Calls ``task.training_loss`` under autocast, scales and back-propagates, updates every ``accum_steps``.

    ``model`` is the user's module (EMA source, clipping), ``train_model`` the possibly DDP- / compile-
    wrapped one that is called. ``step`` counts optimizer updates; the scheduler is stepped after each.
    ``loss_fn`` (default ``task.training_loss``) may be replaced by a wrapper, e.g. distillation: it takes
    ``(train_model, batch)`` and returns ``(loss, scalars)``. ``ema`` is updated here when given; the
    training loop passes ``None`` and updates it in a hook.
    """

    def __init__(self, task: Task, model: nn.Module, train_model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: torch.amp.GradScaler, ema: Any, recipe: TrainRecipe,
                 ctx: DistContext, step: int = 0) -> None:
        self.task, self.model, self.train_model = task, model, train_model
        self.optimizer, self.scheduler, self.scaler, self.ema = optimizer, scheduler, scaler, ema
        self.recipe, self.ctx, self.step = recipe, ctx, step
        self.loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]] = task.training_loss
        #: the task's extra scalars of the last batch (``training_loss``'s second value)
        self.scalars: dict[str, float | torch.Tensor] = {}  # device tensors: read only when logged

    def __call__(self, batch: Any, at_update: bool) -> torch.Tensor:
        """Run one batch; returns its detached loss (a device tensor)."""
        no_sync = self.ctx.distributed and not at_update and hasattr(self.train_model, "no_sync")
        with self.train_model.no_sync() if no_sync else contextlib.nullcontext():
            with self.task.autocast(self.ctx.device):
                loss, self.scalars = self.loss_fn(self.train_model, batch)
            self.scaler.scale(loss / self.recipe.accum_steps).backward()
        if at_update:
            self.update()
        return loss.detach()

    def update(self) -> None:
        r = self.recipe
        if r.clip_grad is not None:
            from timm.utils import dispatch_clip_grad

            self.scaler.unscale_(self.optimizer)
            dispatch_clip_grad(self.model.parameters(), r.clip_grad, mode=r.clip_mode)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        self.scheduler.step_update(num_updates=self.step)
