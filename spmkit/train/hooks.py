"""Hooks of the training loop (:mod:`spmkit.train.loop`): everything a run does besides the optimizer steps.

A hook subclasses :class:`Hook` and overrides the points it needs; :func:`default_hooks` lists the
standard ones in the order they run. Hooks that write files run on rank 0 only; hooks that take part in
collectives (the NaN check before a checkpoint, evaluation) run on every process and must be called at
the same points on all of them.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

from spmkit.train import preemption
from spmkit.io.atomic import copy_atomic
from spmkit.io.checkpoint import save_checkpoint
from spmkit.train.retention import checkpoint_listing, epoch_checkpoint, prune_epoch_checkpoints

if TYPE_CHECKING:
    from spmkit.train.loop import TrainLoop

#: fault injection for the resume tests: SIGKILL this process right after optimizer step N
FAULT_ENV = "SPMKIT_FAULT_KILL_AT_STEP"


class Hook:
    """A no-op at every point; subclasses override what they need. ``loop.t`` holds the run's parts."""

    def before_train(self, loop: "TrainLoop") -> None: ...

    def before_epoch(self, loop: "TrainLoop") -> None: ...

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        """After each optimizer update; ``step_row`` (step, epoch, lr) becomes a line of steps.jsonl."""

    def after_epoch(self, loop: "TrainLoop", row: dict[str, Any]) -> None:
        """After the epoch's training; ``row`` becomes the epoch's line of metrics.jsonl."""

    def after_train(self, loop: "TrainLoop") -> None: ...


class EmaHook(Hook):
    """Updates the EMA copy of the weights after every optimizer update (before anything saves it)."""

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        loop.t.ema.update(loop.t.model, step=loop.t.progress.step)


def log_step_due(loop: "TrainLoop") -> bool:
    """Whether this optimizer step is logged in full (every ``log_every_steps``, the first step and each
    epoch's last): the steps at which device values are read, so that the others need no host sync."""
    t, m, step = loop.t, loop.meter, loop.t.progress.step
    assert m is not None
    return step % t.recipe.log_every_steps == 0 or m.batch == t.batches or step == 1


class StepReportHook(Hook):
    """Step lines: the console / train.log every ``log_every_steps`` (and the first and last step of an
    epoch, with a NaN check across processes there), steps.jsonl every step."""

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        t, m, step = loop.t, loop.meter, loop.t.progress.step
        assert m is not None
        if log_step_due(loop):
            loop.guard.check(t.ctx, m.epoch + 1)
            m.shown_loss = float(m.last_loss)
            step_row["loss"] = m.shown_loss
            left = (t.batches - m.batch) + t.batches * (t.recipe.epochs - m.epoch - 1)
            t.rep.log_step({**step_row, "total_steps": loop.total_steps, "epochs": t.recipe.epochs,
                            "batch": m.batch, "batches": t.batches, "images_per_s": m.seen / m.elapsed,
                            "data_time_s": m.data_time / max(m.data_batches, 1),
                            "memory_mib": memory_mib(t.ctx.device), "eta_s": m.elapsed / (m.batch - m.first) * left})
            m.data_time, m.data_batches = 0.0, 0
        t.run.log_step(step_row)
        t.rep.step(m.batch, m.shown_loss, step_row["lr"], m.seen / m.elapsed)


class StepCheckpointHook(Hook):
    """``last.pt`` inside the epoch every ``ckpt_every_steps`` optimizer steps."""

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        t, m = loop.t, loop.meter
        every = t.recipe.ckpt_every_steps
        if every and t.progress.step % every == 0 and m is not None and m.batch < t.batches:
            loop.save_mid_epoch()


class FaultHook(Hook):
    """Kills rank 0 with SIGKILL right after step ``$SPMKIT_FAULT_KILL_AT_STEP`` (resume tests)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        if loop.t.progress.step == self.step and loop.t.ctx.is_main:
            os.kill(os.getpid(), signal.SIGKILL)


class PreemptionHook(Hook):
    """Stops the loop after the step at which the processes agree a stop signal arrived (``last.pt`` is
    written there by the loop), then ends training with :class:`TrainingStopped` (every process)."""

    def __init__(self) -> None:
        self.check: preemption.StopCheck | None = None
        self.stop: preemption.StopRequest | None = None

    def before_train(self, loop: "TrainLoop") -> None:
        self.check, self.stop = preemption.StopCheck(loop.t.ctx), None

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        assert self.check is not None and loop.meter is not None
        stop = self.check(loop.t.progress.step, loop.meter.batch == loop.t.batches)
        if stop is not None and self.stop is None:
            self.stop = stop
            loop.request_stop(f"stopped on {stop.name}")

    def after_train(self, loop: "TrainLoop") -> None:
        if self.stop is None:
            return
        t, m = loop.t, loop.meter
        assert m is not None
        t.ctx.barrier()  # rank 0 has written last.pt
        raise preemption.finish(self.stop, is_main=t.ctx.is_main, last=t.run.last, step=t.progress.step,
                                epoch=m.epoch + 1, batch=m.batch, batches=t.batches, message=t.rep.message)


class EvalHook(Hook):
    """Evaluates the model (and its EMA) every ``eval_every_epochs`` and after the last epoch; every
    process takes part. Sets ``self.metrics`` (``None`` in an epoch without evaluation)."""

    def __init__(self) -> None:
        self.metrics: dict[str, Any] | None = None

    def after_epoch(self, loop: "TrainLoop", row: dict[str, Any]) -> None:
        t, epoch = loop.t, loop.t.progress.epoch
        self.metrics = None
        if epoch % t.recipe.eval_every_epochs != 0 and epoch != t.recipe.epochs:
            return
        t.ctx.broadcast_buffers(t.model)  # every shard is evaluated with the weights rank 0 will save
        metrics = t.task.evaluate(t.model, t.val_loader, t.ctx)
        if t.ema is not None:
            ema_metrics = t.task.evaluate(t.ema.module, t.val_loader, t.ctx)
            metrics.update({f"ema_{k}": v for k, v in ema_metrics.items()})
        row.update(metrics)
        t.rep.evaluation(epoch, metrics)
        self.metrics = metrics


class BestHook(Hook):
    """Tracks the best value of the task's ``best_metric`` over evaluated epochs (``best_<metric>`` in
    every row); ``self.is_best`` is true in the epoch that improved it."""

    def __init__(self, evaluation: EvalHook) -> None:
        self.evaluation = evaluation
        self.is_best = False

    def after_epoch(self, loop: "TrainLoop", row: dict[str, Any]) -> None:
        t, p = loop.t, loop.t.progress
        metrics = self.evaluation.metrics
        self.is_best = False
        if metrics is not None:
            value = metrics[t.task.best_metric]
            if p.best is None or (value > p.best if t.task.best_mode == "max" else value < p.best):
                p.best, p.best_epoch, self.is_best = value, p.epoch, True
        row["best_" + t.task.best_metric] = p.best


class EpochLogHook(Hook):
    """The epoch's row in metrics.jsonl / metrics.csv / TensorBoard (rank 0)."""

    def after_epoch(self, loop: "TrainLoop", row: dict[str, Any]) -> None:
        loop.t.run.log_epoch(row)


class CheckpointHook(Hook):
    """``last.pt`` after every epoch, ``best.pt`` when the epoch improved the best metric, and the kept
    ``epoch_NNNN.pt`` files (``save_every_epochs`` / ``keep_last``, older ones pruned) (rank 0)."""

    def __init__(self, best: BestHook) -> None:
        self.best = best

    def after_epoch(self, loop: "TrainLoop", row: dict[str, Any]) -> None:
        t, epoch = loop.t, loop.t.progress.epoch
        st = t.checkpoint_state(epoch, 0, row)
        save_checkpoint(st, t.run.last)
        if self.best.is_best:  # the same state: copy the file's bytes (no second checksum and pickling)
            copy_atomic(t.run.last, t.run.best)
        r = t.recipe
        if r.save_every_epochs or r.keep_last:
            if epoch % (r.save_every_epochs or 1) == 0:
                copy_atomic(t.run.last, epoch_checkpoint(t.run.path, epoch))
            for old in prune_epoch_checkpoints(t.run.path, r.keep_last):
                t.rep.message(f"removed {old.name} (keep_last {r.keep_last})", level="info")


class EpochReportHook(Hook):
    """The epoch line on the console / train.log, and the closing notes of the run (rank 0)."""

    def after_epoch(self, loop: "TrainLoop", row: dict[str, Any]) -> None:
        loop.t.rep.end_epoch(row)

    def after_train(self, loop: "TrainLoop") -> None:
        t, p, rows = loop.t, loop.t.progress, loop.rows
        skipped = sum(r.get("train_skipped", 0) for r in rows)
        if skipped:
            t.rep.message(f"{int(skipped)} unreadable training images were skipped in this run (paths logged above).")
        if rows:
            best_note = (f"best {t.task.best_metric} {p.best:.4g} at epoch {p.best_epoch}"
                         if p.best is not None and p.best_epoch else None)
            for line in checkpoint_listing(t.run.path, best_note):
                t.rep.message(line, level="info")


def memory_mib(device) -> float | None:
    """Peak memory of this process: CUDA allocated on a GPU, resident set (ru_maxrss) on the CPU."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if os.uname().sysname == "Darwin" else rss / 1024


def default_hooks(loop_is_main: bool, ema: bool, fault_step: int = 0) -> list[Hook]:
    """The standard hooks in their order. Rank 0 alone writes files and reports; every process evaluates."""
    evaluation = EvalHook()
    best = BestHook(evaluation)
    hooks: list[Hook] = [EmaHook()] if ema else []
    hooks += [StepReportHook(), StepCheckpointHook()]
    hooks.append(PreemptionHook())  # SIGTERM / the requeue signal: last.pt at that step, then stop
    if fault_step:
        hooks.append(FaultHook(fault_step))
    hooks += [evaluation, best]
    if loop_is_main:
        hooks += [EpochLogHook(), CheckpointHook(best), EpochReportHook()]
    return hooks
