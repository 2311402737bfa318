"""Knowledge distillation (``--teacher``): the losses, the teacher's input, its classes, and runs with it
(one process, resumed, and two gloo processes)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from imagefolder_util import TEST_MODEL, make_imagefolder, train_args
from torch import nn
from torch.nn import functional as F
from typer.testing import CliRunner

import spmkit.tasks  # noqa: F401  (registers the tasks)
from spmkit.cli.app import app
from spmkit.train.distill import DistillLoss, hard_distill_loss, soft_distill_loss
from spmkit.train.hooks import Hook
from spmkit.train.teacher import Teacher, TeacherError, load_teacher
from spmkit.train.trainer import TrainConfig, train
from spmkit.tasks.base import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _ce(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    images, targets = batch
    return F.cross_entropy(model(images), targets), {}


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))


@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0, 20.0])
def test_soft_distillation_from_the_student_itself_is_zero(tau: float) -> None:
    student = _tiny()
    teacher = Teacher(copy.deepcopy(student), (8, 8), MEAN, STD, MEAN, STD, source="copy", num_classes=5)
    batch = (torch.randn(6, 3, 8, 8), torch.randint(0, 5, (6,)))
    loss, scalars = DistillLoss(_ce, teacher, "soft", 0.5, tau)(student, batch)
    assert scalars["distill_loss"] == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx(0.5 * float(scalars["task_loss"]), rel=1e-5)  # scalars stay on the device
    loss.backward()  # the student gets gradients from the mixed loss
    assert student[1].weight.grad is not None
    # another teacher gives a positive loss at the same temperature (a loss that is always 0 fails here)
    other = Teacher(_tiny(seed=1), (8, 8), MEAN, STD, MEAN, STD, source="other", num_classes=5)
    _, scalars = DistillLoss(_ce, other, "soft", 0.5, tau)(student, batch)
    assert scalars["distill_loss"] > 1e-6


def test_soft_loss_is_tau_squared_kl() -> None:
    s, t = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[0.2, 0.1, 3.0]])
    tau = 2.0
    p_t = F.softmax(t / tau, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / tau, -1))).sum()
    assert soft_distill_loss(s, t, tau).item() == pytest.approx(tau * tau * kl.item(), rel=1e-5)


def test_hard_distillation_uses_the_teacher_argmax() -> None:
    teacher = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0], [0.0, 0.1, 0.2]])  # argmax 1, 0, 2
    student = torch.tensor([[2.0, 0.5, 0.1], [0.3, 0.2, 1.0], [1.0, 1.0, 1.5]])
    got = hard_distill_loss(student, teacher).item()
    assert got == pytest.approx(F.cross_entropy(student, torch.tensor([1, 0, 2])).item(), rel=1e-6)
    # not the teacher's probabilities, nor the student's own argmax
    assert got != pytest.approx(soft_distill_loss(student, teacher, 1.0).item(), rel=1e-3)
    assert got != pytest.approx(F.cross_entropy(student, student.argmax(-1)).item(), rel=1e-3)


class _Seen(nn.Module):
    """Records its input; returns fixed logits."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.Tensor | None = None
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return torch.zeros(x.shape[0], 5) + self.w


def test_teacher_gets_its_own_size_and_normalisation() -> None:
    t_mean, t_std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    inner = _Seen()
    teacher = Teacher(inner, (16, 12), t_mean, t_std, MEAN, STD, source="x", num_classes=5)
    img = torch.rand(2, 3, 8, 8)  # pixels in [0, 1]
    as_student = (img - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    teacher(as_student)
    as_teacher = (img - 0.5) / 0.5
    expected = F.interpolate(as_teacher, size=(16, 12), mode="bilinear", align_corners=False)
    assert inner.seen is not None and inner.seen.shape == (2, 3, 16, 12)
    assert torch.allclose(inner.seen, expected, atol=1e-5)
    # the same size and normalisation: the batch goes through untouched
    same = Teacher(inner, (8, 8), MEAN, STD, MEAN, STD, source="x", num_classes=5)
    same(as_student)
    assert torch.equal(inner.seen, as_student)


def test_teacher_is_frozen_and_sees_the_mixed_images() -> None:
    inner = _Seen()
    teacher = Teacher(inner, (8, 8), MEAN, STD, MEAN, STD, source="x", num_classes=5)
    teacher.train()
    assert not teacher.training and not inner.training

    def flipping_loss(model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        images, targets = batch
        return F.cross_entropy(model(images.flip(-1)), targets), {}  # as mixup: the task changes the images

    student = _tiny()
    images = torch.randn(4, 3, 8, 8)
    loss, _ = DistillLoss(flipping_loss, teacher, "soft", 0.5, 1.0)(student, (images, torch.zeros(4).long()))
    loss.backward()
    assert torch.equal(inner.seen, images.flip(-1))
    assert inner.w.grad is None  # no gradient reaches the teacher


# -- teachers from files, and runs ---------------------------------------------------------------------------------
def _cfg(data: Path, out: Path, *extra: str, epochs: int = 1, resume: str = "no") -> TrainConfig:
    overrides = [f"epochs={epochs}", "batch_size=4", "workers=0", "img_size=32", "warmup_epochs=0.5",
                 "log_every_steps=1", *extra]
    return TrainConfig(model=ModelSpec(TEST_MODEL), data=data, output=out, overrides=overrides, device="cpu",
                       resume=resume)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory) -> tuple[Path, Path]:
    """A 3-class data folder and a 1-epoch run on it (its best.pt is the teacher)."""
    root = tmp_path_factory.mktemp("distill")
    data = make_imagefolder(root / "data3", classes=3, train_per_class=4, val_per_class=2)
    train(_cfg(data, root / "teacher"))
    return data, root / "teacher" / "best.pt"


@pytest.mark.parametrize("launch", [(), ("--devices", "cpu", "--nproc", "2")], ids=["one-process", "launcher"])
def test_teacher_of_other_classes_is_refused_by_the_cli(teacher_run, tmp_path: Path, launch) -> None:
    _, best = teacher_run
    data4 = make_imagefolder(tmp_path / "data4", classes=4, train_per_class=4, val_per_class=2)
    res = CliRunner().invoke(app, train_args(data4, tmp_path / "run", 1, 4, "--teacher", str(best), *launch))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert res.output.count("predicts 3 classes but the data has 4") == 1  # the launcher: once, no processes
    assert not (tmp_path / "run" / "last.pt").exists()


def test_teacher_classes_are_checked_by_name_and_count(teacher_run) -> None:
    data, best = teacher_run
    classes = [p.name for p in sorted((data / "train").iterdir())]
    t = load_teacher(str(best), None, {"num_classes": 3, "classes": classes})
    assert t.num_classes == 3 and t.classes == classes and t.size == (32, 32)
    with pytest.raises(TeacherError, match="other classes"):
        load_teacher(str(best), None, {"num_classes": 3, "classes": ["a", "b", "c"]})
    with pytest.raises(TeacherError, match="predicts 3 classes but the data has 5"):
        load_teacher(str(best), None, {"num_classes": 5, "classes": list("abcde")})


def test_blueprint_and_timm_teachers_with_weights(tmp_path: Path) -> None:
    import timm

    import spmkit

    info = {"num_classes": 3, "classes": ["a", "b", "c"]}
    bp = spmkit.create_model(TEST_MODEL, num_classes=3)
    torch.save(bp.state_dict(), tmp_path / "bp.pt")
    t = load_teacher(TEST_MODEL, str(tmp_path / "bp.pt"), info)
    x = torch.randn(2, 3, *t.size)
    assert torch.allclose(t(x), bp.eval()(x), atol=1e-5)  # the weights were loaded
    with pytest.raises(TeacherError, match="predicts 3 classes but the data has 4"):
        load_teacher(TEST_MODEL, str(tmp_path / "bp.pt"), {"num_classes": 4, "classes": list("abcd")})
    tm = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    torch.save(tm.state_dict(), tmp_path / "tm.pt")
    t = load_teacher("timm:test_resnet", str(tmp_path / "tm.pt"), info)
    x = torch.randn(2, 3, *t.size)
    assert torch.allclose(t(x), tm.eval()(x), atol=1e-5)
    with pytest.raises(TeacherError, match="needs its weights"):
        load_teacher("timm:test_resnet", None, info)
    with pytest.raises(TeacherError, match="teacher-weights"):
        load_teacher(TEST_MODEL, None, info)


class _StopAt(Hook):
    def __init__(self, step: int) -> None:
        self.step = step

    def after_update(self, loop, step_row) -> None:
        if step_row["step"] == self.step:
            loop.request_stop("test")


def _steps(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "steps.jsonl").read_text().splitlines()]


def test_distilled_run_logs_apart_and_resumes_exactly(teacher_run, tmp_path: Path) -> None:
    data, best = teacher_run
    hard = ["distill_type=hard", "distill_alpha=0.7", f"teacher={best}"]
    full = tmp_path / "full"
    rows = train(_cfg(data, full, *hard, epochs=2))
    assert all(r["train_distill_loss"] > 0 and "train_task_loss" in r for r in rows)
    for r in rows:  # train_loss is the mix of the two parts
        assert r["train_loss"] == pytest.approx(0.3 * r["train_task_loss"] + 0.7 * r["train_distill_loss"], rel=1e-4)
    assert all("distill_loss" in s for s in _steps(full))
    log = (full / "train.log").read_text()
    assert f"teacher     {best}" in log and "hard distillation, alpha 0.7" in log and "teacher val top1" in log
    ck = torch.load(full / "last.pt", map_location="cpu", weights_only=True)
    # the teacher is not saved with the student: the same tensors as the (same-architecture) teacher run's
    assert set(ck["model"]) == set(torch.load(best, map_location="cpu", weights_only=True)["model"])
    assert not any("teacher" in k for k in ck)
    assert ck["recipe"]["teacher"] == str(best)



def test_distilled_run_resumes_exactly(teacher_run, tmp_path: Path) -> None:
    """Stopped mid-epoch and resumed, a distilled run follows the uninterrupted one (augmentations off: the
    engine draws those afresh after a resume, see spmkit.train.trainer)."""
    data, best = teacher_run
    fixed = [f"teacher={best}", "mixup=0", "cutmix=0", "auto_augment=null", "reprob=0", "color_jitter=0",
             "hflip=0", "scale=[1,1]"]
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    train(_cfg(data, full, *fixed, epochs=2))
    train(_cfg(data, stopped, *fixed, epochs=2), hooks=[_StopAt(4)])  # the first step of epoch 2
    train(_cfg(data, stopped, *fixed, epochs=2, resume="yes"))  # the teacher comes from the stored recipe
    assert "teacher val top1" in (stopped / "train.log").read_text().split("resumed")[-1]
    ck = torch.load(full / "last.pt", map_location="cpu", weights_only=True)
    a, b = _steps(full), _steps(stopped)
    assert [s["step"] for s in b] == [s["step"] for s in a]
    assert [s["distill_loss"] for s in b] == pytest.approx([s["distill_loss"] for s in a], rel=1e-5)
    ck_b = torch.load(stopped / "last.pt", map_location="cpu", weights_only=True)
    for k, v in ck["model"].items():
        assert torch.allclose(v, ck_b["model"][k], atol=1e-6), k


def test_two_gloo_processes_with_a_teacher(teacher_run, tmp_path: Path) -> None:
    data, best = teacher_run
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "spmkit", *train_args(data, out, 1, 2, "--devices", "cpu", "--nproc", "2",
                                                       "--teacher", str(best), "--set", "distill_tau=2")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 3 and rows[0]["train_distill_loss"] > 0  # 12 images / (2 processes x 2)
    assert all("distill_loss" in s for s in _steps(out))
    assert "teacher val top1" in (out / "train.log").read_text()
