"""Unreadable images and malformed annotations: counted exactly, skipped or rejected, never misread; errors
inside data-loader workers read as they do without workers (issue 12)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.data.coco import CocoDetection
from spmkit.data.synthetic_dense import make_shapes_ade20k, make_shapes_coco
from spmkit.train.worker_errors import SafeLoader
from spmkit.errors import DataError, SpmkitError

runner = CliRunner()
DET_SMALL = ["--set", "min_size=64", "--set", "max_size=96", "--set", "fpn_channels=32", "--set", "box_head_dim=64",
             "--set", "mask_head_dim=16", "--set", "detector=retinanet"]
SEG_SMALL = ["--set", "scale=[96,64]", "--set", "crop_size=[64,64]", "--set", "fpn_channels=16",
             "--set", "head_channels=16", "--set", "iters=2", "--set", "epochs=1"]


def one_paragraph(res) -> str:
    out = res.output.strip()
    assert res.exit_code == 2, res.output
    assert "Traceback" not in out and out and "\n\n" not in out, out
    return out


def _corrupt(path: Path) -> None:
    path.write_bytes(b"\x00 not an image " * 8)


def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_unreadable_validation_images_are_left_out_and_counted_once(tmp_path: Path):
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=4, val_per_class=4)
    val = sorted((data / "val").rglob("img_*"))
    for p in val[:5]:  # five unreadable files in a row: all of class_00 and the first of class_01
        _corrupt(p)
    run = tmp_path / "run"
    res = runner.invoke(app, train_args(data, run, 1, 4))
    assert res.exit_code == 0, res.output
    row = _rows(run)[0]
    assert (row["val_images"], row["val_skipped"]) == (7, 5)
    for workers in ("0", "1"):
        res = runner.invoke(app, ["eval", "--checkpoint", str(run / "last.pt"), "--data", str(data), "--json",
                                  "--workers", workers, "--batch-size", "3"])
        assert res.exit_code == 0, res.output
        m = json.loads(res.stdout)
        assert (m["val_images"], m["val_skipped"], m["images"]) == (7, 5, 7)
        assert m["top1"] == pytest.approx(row["top1"])


def test_worker_errors_read_as_without_workers(tmp_path: Path):
    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=1)
    for p in (data / "train").rglob("img_*"):
        _corrupt(p)
    outs = []
    for workers in ("0", "1"):
        args = train_args(data, tmp_path / f"run{workers}", 1, 2)
        args[args.index("--workers") + 1] = workers
        outs.append(one_paragraph(runner.invoke(app, args)))
    assert "could be read" in outs[1]
    assert outs[0].splitlines()[-1] == outs[1].splitlines()[-1]


class _OddError(SpmkitError):
    """An error whose constructor does not take the message (cannot be rebuilt from a string)."""

    def __init__(self, source: str, count: int) -> None:
        super().__init__(f"{source}: {count} problems")


class _Failing(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        if i == 2:
            raise _OddError("labels.txt", 3)
        return torch.zeros(2)


def test_worker_error_types_and_messages_survive():
    loader = SafeLoader(_Failing(), batch_size=1, num_workers=1)
    with pytest.raises(SpmkitError) as err:
        list(loader)
    assert str(err.value) == "labels.txt: 3 problems" and err.value.exit_code == 2


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return make_shapes_coco(tmp_path_factory.mktemp("coco"), n_train=4, n_val=3, size=64, seed=0)


def _edit_coco(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    ann = dst / "annotations" / "instances_train2017.json"
    d = json.loads(ann.read_text())
    edit(d)
    ann.write_text(json.dumps(d))
    return dst


def _set_bbox(value):
    def edit(d):
        d["annotations"][1]["bbox"] = value
    return edit


def _drop_bbox(d):
    del d["annotations"][1]["bbox"]


def _dup_image(d):
    d["images"].append({**d["images"][0], "file_name": d["images"][1]["file_name"]})


def _unknown_cat(d):
    d["annotations"][1]["category_id"] = 99


def _dup_cat(d):
    d["categories"].append({**d["categories"][0], "name": "again"})


@pytest.mark.parametrize("edit, expect", [
    (_drop_bbox, "annotation id 2 has bbox None"),
    (_set_bbox("10,10,5,5"), "annotation id 2 has bbox"),
    (_set_bbox([math.nan, 1.0, 5.0, 5.0]), "annotation id 2 has bbox"),
    (_set_bbox([1.0, 1.0, -5.0, 5.0]), "negative box"),
    (_dup_image, "image id 1 is listed twice"),
    (_unknown_cat, "category_id 99"),
    (_dup_cat, "category id 3 is listed twice"),
])
def test_malformed_coco_annotations_are_rejected_with_file_and_id(coco, tmp_path, edit, expect):
    root = _edit_coco(coco, tmp_path / "c", edit)
    with pytest.raises(DataError) as err:
        CocoDetection(root, "train")
    assert expect in str(err.value) and "instances_train2017.json" in str(err.value)


def test_empty_segmentation_is_skipped_and_counted(coco, tmp_path):
    def edit(d):
        d["annotations"][0]["segmentation"] = []
    root = _edit_coco(coco, tmp_path / "c", edit)
    ds = CocoDetection(root, "train")
    assert ds.skipped_annotations == 1 and 1 not in ds.coco.anns
    n = sum(len(ds.target(i, 64, 64)["labels"]) for i in range(len(ds)))
    assert n == len(json.loads((coco / "annotations" / "instances_train2017.json").read_text())["annotations"]) - 1


def test_coco_run_skips_corrupt_images_and_rejects_nan_boxes(coco, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(coco, root)
    _corrupt(next(iter(sorted((root / "train2017").glob("*.jpg")))))
    _corrupt(next(iter(sorted((root / "val2017").glob("*.jpg")))))
    run = tmp_path / "run"
    args = ["train", "--task", "detection", "--blueprint", "tiny_pvt", "--data", str(root), "--output", str(run),
            "--epochs", "1", "--batch-size", "2", "--workers", "0", "--devices", "cpu", *DET_SMALL]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    row = _rows(run)[0]
    assert (row["train_skipped"], row["val_skipped"], row["val_images"]) == (1, 1, 2)

    bad = _edit_coco(coco, tmp_path / "nan", _set_bbox([math.nan, 1.0, 5.0, 5.0]))
    args[args.index("--data") + 1], args[args.index("--output") + 1] = str(bad), str(tmp_path / "run2")
    out = one_paragraph(runner.invoke(app, args))
    assert "annotation id 2" in out and not (tmp_path / "run2").exists()


def test_ade20k_run_skips_corrupt_images(tmp_path):
    base = make_shapes_ade20k(tmp_path / "ade", n_train=4, n_val=3, size=64, seed=0)
    _corrupt(sorted((base / "images" / "training").glob("*.jpg"))[0])
    _corrupt(sorted((base / "annotations" / "validation").glob("*.png"))[1])
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--task", "segmentation", "--blueprint", "tiny_swin", "--data", str(base.parent),
                              "--output", str(run), "--batch-size", "2", "--workers", "0", "--devices", "cpu",
                              *SEG_SMALL])
    assert res.exit_code == 0, res.output
    row = _rows(run)[0]
    assert (row["val_images"], row["val_skipped"]) == (2, 1)
    assert row["train_skipped"] <= 1  # the corrupt one is asked for at most once in 2 steps of 2 images


def test_rand_augment_at_full_magnitude_does_not_crash(tmp_path: Path):
    """The default recipe's RandAugment reaches magnitude 10, where posterize keeps 0 bits (old Pillow: a
    black image; current Pillow: ValueError, which stopped trainings at random)."""
    import numpy as np
    from PIL import Image

    from spmkit.tasks.recipe import load_recipe
    from spmkit.tasks.base import ModelSpec
    from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask

    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=1, val_per_class=1)
    t = ClassificationTask(load_recipe(ClassificationRecipe, None, ["img_size=32"]))
    info = t.data_info(data)
    ds = t.build_dataset(data, "train", t.build_model(ModelSpec("tiny_pvt"), info), info)
    ra = next(x for x in ds.transform.transforms if hasattr(x, "ops"))
    op = next(o for o in ra.ops if o.name == "PosterizeIncreasing")
    op.magnitude_std, op.magnitude, op.prob = 0, 10, 1.0  # always the top magnitude
    assert np.asarray(op(Image.fromarray(np.full((32, 32, 3), 200, np.uint8)))).max() == 0
