"""ImageNet-layout data: scanning, errors for bad folders, corrupt images skipped and counted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from imagefolder_util import make_imagefolder

from spmkit.data.imagenet import ImageFolderDataset, find_classes, scan_split
from spmkit.errors import DataError
from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask



def test_scan_finds_classes_and_images_in_order(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, classes=3, train_per_class=4, val_per_class=2)
    classes = find_classes(tmp_path / "train")
    assert classes == ["class_00", "class_01", "class_02"]
    samples = scan_split(tmp_path / "train", classes)
    assert len(samples) == 12
    assert [t for _, t in samples] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(Path(p).parent.name == classes[t] for p, t in samples)


def test_missing_and_empty_splits_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        find_classes(tmp_path / "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        find_classes(tmp_path / "train")
    (tmp_path / "train" / "a").mkdir()
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images"):
        scan_split(tmp_path / "train", ["a"])


def test_val_class_unknown_to_training_is_an_error(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, classes=2, train_per_class=2, val_per_class=1)
    (tmp_path / "val" / "zebra").mkdir()
    (tmp_path / "val" / "class_00" / "img_000.jpg").rename(tmp_path / "val" / "zebra" / "z.jpg")
    with pytest.raises(DataError, match="zebra"):
        ImageFolderDataset(tmp_path, "val", ["class_00", "class_01"])


def test_corrupt_image_is_reported_skipped_and_counted(tmp_path: Path, caplog) -> None:
    make_imagefolder(tmp_path, classes=2, train_per_class=3, val_per_class=1)
    bad = tmp_path / "train" / "class_00" / "img_001.png"
    bad.write_bytes(b"\x89PNG broken")
    ds = ImageFolderDataset(tmp_path, "train", ["class_00", "class_01"])
    idx = [p for p, _ in ds.samples].index(str(bad))
    with caplog.at_level(logging.WARNING, logger="spmkit.data"):
        img, target, skipped = ds[idx]
        img2, _, skipped2 = ds[idx]  # reported once, still skipped
    assert skipped == 1 and skipped2 == 1
    assert img.size == (32, 32) and target == ds.samples[idx + 1][1]
    assert sum(str(bad) in r.getMessage() for r in caplog.records) == 1
    _, _, ok = ds[0]
    assert ok == 0


def test_class_count_checked_against_recipe_and_head(tmp_path: Path) -> None:
    make_imagefolder(tmp_path, classes=3, train_per_class=2, val_per_class=1)
    task = ClassificationTask(ClassificationRecipe(num_classes=5))
    with pytest.raises(DataError, match="3 class folders.*num_classes=5"):
        task.data_info(tmp_path)
    task = ClassificationTask(ClassificationRecipe())
    info = task.data_info(tmp_path)
    assert info == {"num_classes": 3, "classes": ["class_00", "class_01", "class_02"]}
    stored = {"num_classes": 2, "classes": ["class_00", "class_01"]}
    with pytest.raises(DataError, match="unknown to the model's 2-class head"):
        task.eval_data_info(tmp_path, stored)

    import shutil

    shutil.rmtree(tmp_path / "val")
    with pytest.raises(DataError, match="val does not exist"):
        task.data_info(tmp_path)
