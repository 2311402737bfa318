"""Knowledge distillation (``spmkit train --teacher T``): a hook that wraps the task's loss.

The loss of each batch becomes ``(1 - distill_alpha) * task_loss + distill_alpha * distill_loss`` (DeiT's
mixing), where ``distill_loss`` compares the student's logits with the teacher's on the very images the
student saw (after mixup / CutMix):

- ``soft``: KL(teacher || student) of the softmaxes at temperature ``distill_tau``, times tau^2, averaged
  over the batch (Hinton et al.; timm's ``LogitDistillationTask`` computes the same);
- ``hard``: cross-entropy of the student against the teacher's argmax (DeiT's hard-label distillation,
  timm's ``TokenDistillationTask`` with ``distill_type='hard'``).

:class:`DistillHook` loads the teacher on every process (:mod:`spmkit.train.teacher`), measures its
validation top-1 once before training (shown in the run summary), and replaces ``loop.stepper.loss_fn`` in
``before_train``; the loop itself is unchanged. The teacher runs inside the step's autocast and without
gradients. ``train_task_loss`` / ``train_distill_loss`` (metrics.jsonl) and ``distill_loss`` (steps.jsonl)
record the two parts apart; ``train_loss`` is their mix.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spmkit.train.hooks import Hook, log_step_due
from spmkit.train.teacher import Teacher, TeacherError, load_teacher

if TYPE_CHECKING:
    from spmkit.train.loop import TrainLoop
    from spmkit.train.setup import Training

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict[str, float]]"]


def soft_distill_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """tau^2 * KL(softmax(teacher / tau) || softmax(student / tau)), averaged over the batch (fp32)."""
    s = F.log_softmax(student.float() / tau, dim=-1)
    t = F.log_softmax(teacher.float() / tau, dim=-1)
    return F.kl_div(s, t, reduction="batchmean", log_target=True) * (tau * tau)


def hard_distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student's logits against the teacher's predicted class (DeiT)."""
    return F.cross_entropy(student.float(), teacher.argmax(dim=-1))


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, tau: float) -> torch.Tensor:
    if kind == "hard":
        return hard_distill_loss(student, teacher)
    return soft_distill_loss(student, teacher, tau)


class _Recorder:
    """Stands in for the model in ``task.training_loss``: calls it and keeps the last input and output.

    ``_orig_mod`` lets :func:`spmkit.tasks.base.unwrap` see through it, as through ``torch.compile``."""

    def __init__(self, model: nn.Module) -> None:
        self._orig_mod = model
        self.inputs: torch.Tensor | None = None
        self.outputs: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self._orig_mod(x, *args, **kwargs)
        self.inputs, self.outputs = x, out
        return out


class DistillLoss:
    """``loss_fn`` of :class:`~spmkit.train.step.TrainStep` with distillation mixed into ``inner``'s loss."""

    def __init__(self, inner: LossFn, teacher: Teacher, kind: str, alpha: float, tau: float) -> None:
        self.inner, self.teacher, self.kind, self.alpha, self.tau = inner, teacher, kind, alpha, tau

    def __call__(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        rec = _Recorder(model)
        task_loss, scalars = self.inner(rec, batch)
        if rec.inputs is None or not isinstance(rec.outputs, torch.Tensor):
            raise TeacherError("distillation needs a task whose training loss calls the model once with a batch of "
                               "images and gets logits back (classification).")
        teacher_logits = self.teacher(rec.inputs.detach())
        d = distill_loss(rec.outputs, teacher_logits, self.kind, self.tau)
        loss = (1.0 - self.alpha) * task_loss + self.alpha * d
        return loss, {**scalars, "task_loss": task_loss.detach(), "distill_loss": d.detach()}  # on the device


def _student_config(t: "Training") -> dict[str, Any]:
    data_config = getattr(t.task, "data_config", None)
    if data_config is None:
        raise TeacherError(f"distillation works with classification; the {t.cfg.task!r} task has no teacher.")
    return data_config(t.model)


def teacher_for(recipe: Any, info: dict[str, Any], student_cfg: dict[str, Any] | None = None) -> Teacher | None:
    """The recipe's teacher checked against the data (``None`` without ``teacher``); ``student_cfg`` (the
    student's ``mean`` / ``std``) defaults to the teacher's own (enough for the launcher's class check)."""
    name = getattr(recipe, "teacher", None)
    if not name:
        return None
    return load_teacher(name, getattr(recipe, "teacher_weights", None), info, student_cfg)


class DistillHook(Hook):
    """Loads the teacher, measures its validation top-1 once, and distils into the student from step one."""

    def __init__(self) -> None:
        self.teacher: Teacher | None = None
        self.top1: float | None = None

    def before_train(self, loop: "TrainLoop") -> None:
        t, r = loop.t, loop.t.recipe
        teacher = teacher_for(r, t.info, _student_config(t))
        assert teacher is not None
        self.teacher = teacher.to(t.ctx.device)
        self.top1 = self._validate(t)
        from spmkit.train.run_summary import teacher_lines

        t.rep.summary(teacher_lines(teacher.source, r.distill_type, r.distill_alpha, r.distill_tau, teacher.size,
                                    self.top1, t.task.best_metric))
        loop.stepper.loss_fn = DistillLoss(loop.stepper.loss_fn, teacher, r.distill_type, r.distill_alpha,
                                           r.distill_tau)

    def _validate(self, t: "Training") -> float | None:
        """The teacher's ``best_metric`` on the validation split (every process takes part), leaving the
        random generators as they were so that a resumed run continues exactly."""
        py, np_state = random.getstate(), np.random.get_state()
        devices = [t.ctx.device.index if t.ctx.device.index is not None else torch.cuda.current_device()] \
            if t.ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            metrics = t.task.evaluate(self.teacher, t.val_loader, t.ctx)
        random.setstate(py)
        np.random.set_state(np_state)
        value = metrics.get(t.task.best_metric)
        return float(value) if value is not None else None

    def after_update(self, loop: "TrainLoop", step_row: dict[str, Any]) -> None:
        """``distill_loss`` in the step rows that show the loss (reading it waits for the device)."""
        value = loop.stepper.scalars.get("distill_loss")
        if value is not None and log_step_due(loop):
            step_row["distill_loss"] = float(value)


def distill_hooks(t: "Training") -> list[Hook]:
    """``[DistillHook()]`` when the run's recipe names a teacher; it must run before the step report
    (which writes steps.jsonl), so callers put it first."""
    return [DistillHook()] if getattr(t.recipe, "teacher", None) else []
