"""Messages that point the right way (issue 22, class 4): an unknown ``timm:`` name is one exit-2 paragraph
in every command that takes one; a NaN loss from a segmentation batch whose labels are all ignored names the
labels before any advice on the learning rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from imagefolder_util import make_imagefolder
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.data.synthetic_dense import make_shapes_ade20k

runner = CliRunner()
SEG_SMALL = ["--set", "scale=[96,64]", "--set", "crop_size=[64,64]", "--set", "fpn_channels=16",
             "--set", "head_channels=16", "--set", "iters=2", "--set", "epochs=1"]


def _one_paragraph(res) -> str:
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert out and "Traceback" not in out and "\n\n" not in out and "internal error" not in out, out
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("tm") / "d", classes=2, train_per_class=1, val_per_class=1)


TIMM_COMMANDS = {
    "train": lambda d, tmp: ["train", "--blueprint", "timm:does_not_exist", "--data", str(d), "--output",
                             str(tmp / "run"), "--workers", "0"],
    "train detection": lambda d, tmp: ["train", "--task", "detection", "--blueprint", "timm:does_not_exist",
                                       "--data", str(d), "--output", str(tmp / "run")],
    "eval": lambda d, tmp: ["eval", "--blueprint", "timm:does_not_exist", "--data", str(d), "--workers", "0"],
    "profile": lambda d, tmp: ["profile", "timm:does_not_exist"],
}


@pytest.mark.parametrize("command", sorted(TIMM_COMMANDS))
def test_unknown_timm_name_is_one_paragraph(command: str, folder: Path, tmp_path: Path):
    if command == "train detection":  # a COCO folder, so that the model is what fails
        from spmkit.data.synthetic_dense import make_shapes_coco

        folder = make_shapes_coco(tmp_path / "coco", n_train=1, n_val=1, size=64, seed=0)
    out = _one_paragraph(runner.invoke(app, TIMM_COMMANDS[command](folder, tmp_path)))
    assert "timm has no model named 'does_not_exist'" in out
    assert not (tmp_path / "run").exists()


def test_empty_timm_name(folder: Path, tmp_path: Path):
    from spmkit.timm_models import UnknownTimmModel, create_timm_model

    with pytest.raises(UnknownTimmModel, match="needs a model name"):
        create_timm_model("timm:")


def test_all_ignored_labels_are_named_before_the_learning_rate(tmp_path: Path):
    base = make_shapes_ade20k(tmp_path / "ade", n_train=2, n_val=1, size=64, seed=0)
    for p in (base / "annotations" / "training").glob("*.png"):  # 0 -> ignore index 255 with reduce_zero_label
        Image.fromarray(np.zeros((64, 64), dtype=np.uint8), mode="L").save(p)
    res = runner.invoke(app, ["train", "--task", "segmentation", "--blueprint", "tiny_swin", "--data",
                              str(base.parent), "--output", str(tmp_path / "run"), "--batch-size", "2",
                              "--workers", "0", "--devices", "cpu", *SEG_SMALL])
    out = _one_paragraph(res)
    assert "ignore index 255" in out and "8192 pixels" in out, out
    assert out.index("ignore index") < out.index("--lr"), out


def test_a_label_beyond_num_classes_is_named_though_checked_on_the_device(tmp_path: Path):
    """The label check runs on the device (no host sync per step): a batch with a label >= num_classes gets a
    NaN loss and the run stops at the next check with the labels named, and no checkpoint of it."""
    base = make_shapes_ade20k(tmp_path / "ade", n_train=2, n_val=1, size=64, seed=0)
    for p in (base / "annotations" / "training").glob("*.png"):
        Image.fromarray(np.full((64, 64), 9, dtype=np.uint8), mode="L").save(p)  # 4 classes: 9 is too high
    res = runner.invoke(app, ["train", "--task", "segmentation", "--blueprint", "tiny_swin", "--data",
                              str(base.parent), "--output", str(tmp_path / "run"), "--batch-size", "2",
                              "--workers", "0", "--devices", "cpu", *SEG_SMALL])
    out = _one_paragraph(res)
    assert "a training label is >= num_classes (4)" in out and "step 1" in out, out
    assert out.index("num_classes") < out.index("--lr"), out
    assert not (tmp_path / "run" / "last.pt").exists()
