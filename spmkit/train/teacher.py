"""The teacher of a distilled run (``--teacher``): which model it is, its weights, classes and input.

A teacher is named three ways (recipe fields ``teacher`` and ``teacher_weights``):

- ``RUN/best.pt``: an spmkit run checkpoint (classification); its blueprint, weights, class names, input
  size and normalisation all come from the checkpoint;
- ``BLUEPRINT`` + ``teacher_weights: FILE``: a builtin blueprint name or a blueprint YAML, with weights in
  any layout ``spmkit.convert`` reads (official, timm, spmkit);
- ``timm:NAME`` + ``teacher_weights: FILE``: a timm model with its own weights file.

:class:`Teacher` wraps the model so that it is fed what it expects: the student's batch (normalised with
the student's mean / std at the student's size) is re-normalised to the teacher's mean / std and resized
bilinearly to the teacher's input size. It always runs in eval mode and without gradients, and it is never
part of the student, so it is never saved in the student's checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from spmkit.errors import CheckpointError, SpmkitError, shorten

#: how the three kinds of teacher are written (for error messages and the docs)
TEACHER_FORMS = ("a run checkpoint (--teacher RUN/best.pt), a blueprint with weights (--teacher swin_t "
                 "--teacher-weights FILE) or a timm model with weights (--teacher timm:NAME --teacher-weights FILE)")


class TeacherError(SpmkitError):
    """A teacher that cannot be used: unreadable, without weights, or for other classes than the data."""


class Teacher(nn.Module):
    """A frozen classifier fed the student's batches at its own input size and normalisation.

    ``size`` is the teacher's input (H, W); ``mean`` / ``std`` its normalisation; ``student_mean`` /
    ``student_std`` those of the batches it is given. ``source`` describes it (run summary)."""

    def __init__(self, model: nn.Module, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 student_mean: Sequence[float], student_std: Sequence[float], *, source: str,
                 num_classes: int, classes: list[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.size = (int(size[0]), int(size[1]))
        self.source, self.num_classes, self.classes = source, num_classes, classes
        for name, v in (("mean", mean), ("std", std), ("student_mean", student_mean), ("student_std", student_std)):
            self.register_buffer(name, torch.tensor([float(x) for x in v]).view(1, -1, 1, 1), persistent=False)
        self.same_norm = (tuple(map(float, mean)) == tuple(map(float, student_mean))
                          and tuple(map(float, std)) == tuple(map(float, student_std)))
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "Teacher":
        """Always eval mode (dropout, drop path and BatchNorm statistics stay frozen)."""
        return super().train(False)

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """The student's batch as the teacher expects it: re-normalised, then resized (bilinear)."""
        if not self.same_norm:
            x = (x * self.student_std + self.student_mean - self.mean) / self.std
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.adapt(x))


def _data_config(model: nn.Module) -> dict[str, Any]:
    from timm.data import resolve_data_config

    return resolve_data_config({}, model=model)


def _classifier_key(model: nn.Module) -> str | None:
    """The state-dict name of the classifier's weight (``head.fc.weight``, ...), if the model says."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module):
        return None
    for name, module in model.named_modules():
        if module is head and isinstance(getattr(module, "weight", None), torch.Tensor):
            return f"{name}.weight" if name else "weight"
    return None


def _refuse_classes(source: str, n_teacher: int, info: dict[str, Any]) -> None:
    n = int(info["num_classes"])
    if n_teacher != n:
        raise TeacherError(
            f"the teacher {shorten(source, 200, quote=False)} predicts {n_teacher} classes but the data has {n}: "
            f"its outputs cannot be compared with the student's. Use a teacher trained on these {n} classes "
            f"(e.g. fine-tune it first with spmkit train --init), or train without --teacher.")


def _with_weights(model: nn.Module, weights: str, source: str, info: dict[str, Any], spmkit_layouts: bool) -> None:
    """Load ``weights`` strictly into ``model`` (built for the data's classes); a head of another class
    count is a :class:`TeacherError` that says so."""
    from spmkit.convert.reader import read_checkpoint
    from spmkit.convert.load import convert_state_dict, fit_report, mismatch_message

    sd = read_checkpoint(weights)
    if spmkit_layouts:
        layout, sd = convert_state_dict(sd, None, weights)
    else:
        layout = "timm"
    report = fit_report(sd, model.state_dict())
    report.layout = layout
    key = _classifier_key(model)
    if key is not None and key in report.skipped_shape:
        _refuse_classes(source, int(report.shapes[key][0][0]), info)
    if report.missing or report.unexpected or report.skipped_shape:
        raise TeacherError(f"teacher {shorten(source, 200, quote=False)}: {mismatch_message(report, weights)}")
    model.load_state_dict(sd)


def _from_run(path: str, info: dict[str, Any]) -> tuple[nn.Module, dict[str, Any], str, list[str] | None, int]:
    from spmkit.infer.run_model import load_run_model

    def check(task_name: str, spec: Any) -> None:
        if task_name != "classification":
            raise TeacherError(f"the teacher {shorten(path, 200, quote=False)} is a {task_name!r} run; a teacher "
                               f"must be a classification run.")

    try:
        rm = load_run_model(path, check=check)
    except TeacherError:
        raise
    except CheckpointError as e:
        raise TeacherError(f"--teacher {e} A teacher is {TEACHER_FORMS}.") from None
    classes = list(rm.info.get("classes") or []) or None
    n_teacher = int(rm.info.get("num_classes", len(classes or [])))
    _refuse_classes(path, n_teacher, info)
    data_classes = list(info.get("classes") or [])
    if classes is not None and data_classes and classes != data_classes:
        diff = next(i for i, (a, b) in enumerate(zip(classes, data_classes)) if a != b)
        raise TeacherError(
            f"the teacher {shorten(path, 200, quote=False)} was trained on other classes than the data's: class "
            f"{diff} is {shorten(classes[diff])} for the teacher but {shorten(data_classes[diff])} in the data "
            f"(both have {n_teacher}). Use a teacher trained on the same class folders.")
    name = rm.spec.blueprint or "stored blueprint"
    return rm.model, rm.task.data_config(rm.model), f"{path} (run checkpoint of {name})", classes, n_teacher


def load_teacher(teacher: str, weights: str | None, info: dict[str, Any],
                 student_cfg: dict[str, Any] | None = None) -> Teacher:
    """Build the teacher named by ``teacher`` / ``weights`` (see the module docstring) on the CPU, refusing
    one whose classes differ from the data's (``info``). ``student_cfg`` is the student's data config
    (``mean``, ``std``), i.e. what the batches the teacher is given are normalised with (default: the
    teacher's own)."""
    n = int(info["num_classes"])
    if teacher.startswith("timm:"):
        if not weights:
            raise TeacherError(f"--teacher {shorten(teacher)} needs its weights: add --teacher-weights FILE "
                               f"(spmkit downloads nothing).")
        import timm

        try:
            model = timm.create_model(teacher[5:], pretrained=False, num_classes=n)
        except RuntimeError as e:  # timm's "Unknown model"
            raise TeacherError(f"--teacher {shorten(teacher)}: {str(e).splitlines()[0]}") from None
        _with_weights(model, weights, teacher, info, spmkit_layouts=False)
        cfg, source, classes = _data_config(model), f"{teacher} with {weights}", None
    elif weights:
        import spmkit

        model = spmkit.create_model(teacher, num_classes=n)
        _with_weights(model, weights, teacher, info, spmkit_layouts=True)
        cfg, source, classes = _data_config(model), f"{teacher} with {weights}", None
    elif Path(teacher).is_file() and Path(teacher).suffix not in (".yaml", ".yml"):
        model, cfg, source, classes, n = _from_run(teacher, info)
    else:
        raise TeacherError(f"--teacher {shorten(teacher)}: not a run checkpoint file, and a blueprint teacher needs "
                           f"its weights (--teacher-weights FILE). A teacher is {TEACHER_FORMS}.")
    size = cfg["input_size"][-2:]
    student_cfg = student_cfg or cfg
    return Teacher(model, size, cfg["mean"], cfg["std"], student_cfg["mean"], student_cfg["std"], source=source,
                   num_classes=n, classes=classes)
