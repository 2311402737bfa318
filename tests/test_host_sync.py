"""A training step reads nothing back from the device in spmkit's own code (no per-step host sync), for
every task: classification, detection and segmentation. Reads happen only at the steps that are logged
(``log_every_steps``, each epoch's first and last). Counted on the CPU with ``tests/host_sync.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from host_sync import host_reads
from imagefolder_util import make_imagefolder

from spmkit.data.synthetic_dense import make_shapes_ade20k, make_shapes_coco
from spmkit.tasks.base import ModelSpec
from spmkit.train.hooks import Hook
from spmkit.train.trainer import TrainConfig, train


class _Phase(Hook):
    """Runs last: tags what the counter sees with the step being trained, and counts only inside epochs."""

    def __init__(self, reads) -> None:
        self.reads = reads
        self.logged: set[int] = set()

    def before_epoch(self, loop) -> None:
        self.reads.phase, self.reads.on = loop.t.progress.step + 1, True

    def after_update(self, loop, step_row) -> None:
        if "loss" in step_row:  # a logged step: reading the device there is expected
            self.logged.add(step_row["step"])
        self.reads.phase = step_row["step"] + 1
        self.reads.on = loop.meter.batch < loop.t.batches  # the epoch's close reads its sums once


def _steps_without_reads(monkeypatch, cfg: TrainConfig) -> None:
    with host_reads(monkeypatch) as reads:
        phase = _Phase(reads)
        rows = train(cfg, hooks=[phase])
    assert rows and rows[-1]["step"] >= 3  # step 2 is not logged
    unlogged = [s for s in reads.sites if s[2] not in phase.logged]
    assert unlogged == [], unlogged  # a host read at a step that is not logged: a sync every step
    assert any("hooks.py" in s[0] for s in reads.sites)  # the counter is live: logged steps read the loss


def test_the_counter_sees_a_per_step_read(monkeypatch) -> None:
    """The check itself: a task loss that calls float() on the device every step is caught."""
    with host_reads(monkeypatch) as reads:
        reads.on = True
        from spmkit.tasks.classification import ClassificationTask  # noqa: F401  (a file under spmkit/tasks)
        code = compile("float(x.sum()); bool(x.any()); x[x > 0]", str(Path(torch.__file__).parent / "x.py"), "exec")
        exec(code, {"x": torch.ones(3)})  # torch's own file: not counted
        assert reads.sites == []
        from spmkit.tasks import skip_count

        code = compile("float(x.sum()); bool(x.any()); x[x > 0]", skip_count.__file__, "exec")
        exec(code, {"x": torch.ones(3)})
    assert [s[1] for s in reads.sites] == ["__float__", "__bool__", "boolean-mask indexing"]


def test_classification_steps_do_not_sync(tmp_path: Path, monkeypatch) -> None:
    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=3, val_per_class=1)
    cfg = TrainConfig(model=ModelSpec("tiny_pvt"), data=data, output=tmp_path / "run", device="cpu",
                      overrides=["epochs=1", "batch_size=2", "workers=0", "img_size=32", "log_every_steps=100",
                                 "prefetch=on"])
    _steps_without_reads(monkeypatch, cfg)


def test_detection_steps_do_not_sync(tmp_path: Path, monkeypatch) -> None:
    data = make_shapes_coco(tmp_path / "coco", n_train=6, n_val=1, size=64, seed=0)
    cfg = TrainConfig(model=ModelSpec("tiny_pvt"), data=data, output=tmp_path / "run", task="detection",
                      device="cpu", overrides=[
                          "epochs=1", "batch_size=2", "workers=0", "min_size=64", "max_size=96", "fpn_channels=16",
                          "box_head_dim=32", "mask_head_dim=16", "log_every_steps=100",
                          "detector_kwargs={rpn_pre_nms_top_n_train: 50, rpn_post_nms_top_n_train: 20, "
                          "box_batch_size_per_image: 16}"])
    _steps_without_reads(monkeypatch, cfg)


def test_segmentation_steps_do_not_sync(tmp_path: Path, monkeypatch) -> None:
    data = make_shapes_ade20k(tmp_path / "ade", n_train=4, n_val=1, size=64, seed=0).parent
    cfg = TrainConfig(model=ModelSpec("tiny_swin"), data=data, output=tmp_path / "run", task="segmentation",
                      device="cpu", overrides=[
                          "iters=3", "epochs=1", "batch_size=2", "workers=0", "scale=[96,64]", "crop_size=[64,64]",
                          "fpn_channels=16", "head_channels=16", "log_every_steps=100"])
    _steps_without_reads(monkeypatch, cfg)
