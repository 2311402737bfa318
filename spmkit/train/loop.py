"""The training loop: epochs of optimizer steps, with hooks for everything else.

The loop itself only moves batches through :class:`~spmkit.train.step.TrainStep`, watches the loss for
NaN / inf, and closes each epoch (scheduler, averaged loss). Evaluation, best-model tracking, checkpoints,
retention, reporting, EMA and fault injection are :class:`~spmkit.train.hooks.Hook` objects called at
fixed points, so a new behaviour (distillation, a preemption signal) is a new hook, not an edit here::

    before_train  -> for each epoch: before_epoch -> [after_update per optimizer step] -> after_epoch
                  -> after_train

A hook may call :meth:`TrainLoop.request_stop`: the loop then writes ``last.pt`` at that exact step (every
process takes part) and returns; ``stop_reason`` says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch

from spmkit.io.checkpoint import save_checkpoint
from spmkit.train.finite import FiniteGuard
from spmkit.train.scalars import add_scalars, scalar_means
from spmkit.train.step import TrainStep
from spmkit.train.setup import Training

if TYPE_CHECKING:
    from spmkit.train.hooks import Hook


@dataclass
class EpochMeter:
    """What the running epoch has measured so far on this process (for reporting hooks)."""

    epoch: int  # 0-based
    first: int  # the batch the epoch (re)started at
    loss_acc: torch.Tensor  # summed batch losses, on the device (no host sync per batch)
    t0: float = field(default_factory=time.perf_counter)
    batch: int = 0  # batches of the epoch done so far, resumed ones included
    seen: int = 0  # images trained on by all processes in this call
    batches_run: int = 0
    last_loss: torch.Tensor | None = None  # the newest batch's loss (device)
    shown_loss: float = float("nan")  # the loss of the last logged step
    data_time: float = 0.0  # seconds waiting for batches since the last log line
    data_batches: int = 0
    scalar_sums: dict[str, torch.Tensor] = field(default_factory=dict)  # on the device, see add_scalars

    @property
    def elapsed(self) -> float:
        return max(time.perf_counter() - self.t0, 1e-9)


class TrainLoop:
    """Runs a built :class:`~spmkit.train.setup.Training` with ``hooks``."""

    def __init__(self, t: Training, hooks: Sequence["Hook"]) -> None:
        self.t = t
        self.hooks = list(hooks)
        self.stepper = TrainStep(t.task, t.model, t.train_model, t.optimizer, t.scheduler, t.scaler, None,
                                 t.recipe, t.ctx, step=t.progress.step)
        self.guard = FiniteGuard(t.ctx.device, t.run.last, explain=t.task.nonfinite_loss_cause)  # names the labels
        self.rows: list[dict[str, Any]] = []
        self.meter: EpochMeter | None = None
        self.stop_reason: str | None = None
        self.total_steps = t.updates_per_epoch * t.recipe.epochs
        self._next_pass: tuple[int, Iterator[Any]] | None = None  # the next epoch's batches, started early

    # -- for hooks ------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Stop at the end of the current optimizer step, after writing ``last.pt`` there."""
        self.stop_reason = self.stop_reason or reason

    def lr(self) -> float:
        """The unscaled learning rate (the first group with lr_scale 1, else the first group)."""
        for g in self.t.optimizer.param_groups:
            if g.get("lr_scale", 1.0) == 1.0:
                return float(g["lr"])
        return float(self.t.optimizer.param_groups[0]["lr"])

    def weights(self) -> list[torch.nn.Module | None]:
        """The modules whose weights a checkpoint stores (checked for NaN / inf before each write)."""
        return [self.t.model, self.t.ema.module if self.t.ema is not None else None]

    def save_mid_epoch(self) -> None:
        """Write ``last.pt`` at the current step inside the epoch; every process must call it."""
        t, m = self.t, self.meter
        assert m is not None
        t.progress.loss_sum = float(m.loss_acc)
        self.guard.before_save(t.ctx, self.weights(), t.progress.step, m.epoch + 1)
        if t.ctx.is_main:
            save_checkpoint(t.checkpoint_state(m.epoch, m.batch, None), t.run.last)

    # -- the loop -------------------------------------------------------------------------------
    def _call(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, name)(self, *args)

    def run(self) -> list[dict[str, Any]]:
        """Train the remaining epochs; returns the epoch rows (rank 0; other ranks: [])."""
        t = self.t
        if t.progress.epoch >= t.recipe.epochs:
            t.rep.message(f"{t.resume_path} has finished all {t.recipe.epochs} epochs; "
                          f"give --epochs N to train longer.")
        self._call("before_train")
        for epoch in range(t.progress.epoch, t.recipe.epochs):
            self._train_epoch(epoch)
            if self.stop_reason is not None:
                break
            self.rows.append(self._end_epoch(epoch))
            t.ctx.barrier()
        self._call("after_train")
        t.run.close()
        return self.rows if t.ctx.is_main else []

    def _start_pass(self, epoch: int) -> Iterator[Any]:
        """The training batches of ``epoch`` from ``progress.batch_in_epoch`` on: sampler and seeds set, then
        the loader's iterator (its workers start decoding at once)."""
        t, p = self.t, self.t.progress
        t.train_sampler.set_epoch(epoch)
        t.train_sampler.set_start(p.batch_in_epoch * t.recipe.batch_size)
        torch.manual_seed(t.recipe.seed + t.ctx.rank + 1009 * epoch + 7919 * p.step)  # worker seeds of this pass
        return iter(t.train_loader)

    def _prefetch_next_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch + 1``'s batches before ``epoch`` is evaluated and saved, so its persistent
        workers decode while the CPU would otherwise wait (evaluation, checkpoint writes). The same seeds as
        when started later: nothing between here and the next epoch draws from the main torch generator
        (evaluation is deterministic; persistent loaders have private generators)."""
        t = self.t
        if (epoch + 1 >= t.recipe.epochs or self.stop_reason is not None
                or not getattr(t.train_loader, "persistent_workers", False)):
            return
        self._next_pass = (epoch + 1, self._start_pass(epoch + 1))

    def _train_epoch(self, epoch: int) -> None:
        t, p = self.t, self.t.progress
        t.train_model.train()
        ready, self._next_pass = self._next_pass, None
        it = ready[1] if ready is not None and ready[0] == epoch else self._start_pass(epoch)
        t.rep.start_epoch(epoch + 1, t.recipe.epochs, t.batches, p.batch_in_epoch)
        m = self.meter = EpochMeter(epoch, p.batch_in_epoch, batch=p.batch_in_epoch,
                                    loss_acc=torch.tensor(p.loss_sum, dtype=torch.float64, device=t.ctx.device))
        self._call("before_epoch")
        accum = t.recipe.accum_steps
        while m.batch < t.batches:
            t_data = time.perf_counter()
            batch = t.task.to_device(next(it), t.ctx.device)
            m.data_time += time.perf_counter() - t_data
            m.data_batches += 1
            at_update = (m.batch + 1) % accum == 0
            loss = self.stepper(batch, at_update)
            self.guard.observe(loss, self.stepper.step if at_update else self.stepper.step + 1)
            add_scalars(m.scalar_sums, self.stepper.scalars)
            m.loss_acc += loss.double()
            m.last_loss = loss
            p.loss_count += 1
            m.batches_run += 1
            m.seen += t.task.batch_size_of(batch) * t.ctx.world_size
            m.batch += 1
            if not at_update:
                continue
            p.step = self.stepper.step
            self._call("after_update", {"step": p.step, "epoch": epoch + 1, "lr": self.lr()})
            if self.stop_reason is not None:
                self.save_mid_epoch()
                return

    def _end_epoch(self, epoch: int) -> dict[str, Any]:
        """Close the epoch: scheduler, averaged loss and scalars; then the ``after_epoch`` hooks fill the row."""
        t, p, m = self.t, self.t.progress, self.meter
        assert m is not None
        elapsed = time.perf_counter() - m.t0
        self.guard.before_save(t.ctx, self.weights(), p.step, epoch + 1)  # before evaluation and checkpoints
        t.scheduler.step(epoch + 1)
        p.batch_in_epoch = 0
        totals = torch.tensor([float(m.loss_acc), float(p.loss_count)], dtype=torch.float64, device=t.ctx.device)
        t.ctx.all_reduce_sum(totals)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": p.step,
                               "train_loss": float(totals[0] / max(float(totals[1]), 1.0)),
                               "lr": self.lr(), "images_per_s": m.seen / max(elapsed, 1e-9), "epoch_time_s": elapsed}
        p.loss_sum, p.loss_count = 0.0, 0
        if m.scalar_sums:  # the task's extra scalars, averaged over this process's batches and the processes
            names = sorted(m.scalar_sums)
            s = scalar_means(m.scalar_sums, names, m.batches_run, t.ctx.device)
            t.ctx.all_reduce_sum(s)
            row.update({f"train_{k}": float(v) / t.ctx.world_size for k, v in zip(names, s)})
        row.update(t.task.end_of_epoch(t.ctx))
        p.epoch = epoch + 1
        self._prefetch_next_epoch(epoch)
        self._call("after_epoch", row)
        return row
