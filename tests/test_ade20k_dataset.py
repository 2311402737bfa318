"""ADE20K-layout data: generated scenes, reduce_zero_label, class list, transforms, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from spmkit.data.ade20k import ADE20K, IGNORE_INDEX, read_label
from spmkit.data.segmentation_transforms import (
    SegmentationEvalTransform,
    SegmentationTrainTransform,
    collate_segmentation,
    fit_size,
)
from spmkit.data.synthetic_dense import make_shapes_ade20k
from spmkit.errors import DataError


@pytest.fixture(scope="module")
def ade_root(tmp_path_factory):
    return make_shapes_ade20k(tmp_path_factory.mktemp("ade"), n_train=4, n_val=2, size=72, seed=0)


def test_layout_labels_and_classes(ade_root):
    assert (ade_root / "images" / "training").is_dir() and (ade_root / "annotations" / "validation").is_dir()
    # DIR may be ADEChallengeData2016 or its parent
    for root in (ade_root, ade_root.parent):
        ds = ADE20K(root, "train")
        assert len(ds) == 4 and ds.num_classes == 4
    assert ds.class_names == ["background", "rectangle", "ellipse", "triangle"]
    image, label = ds[0]
    raw = np.asarray(Image.open(ds.items[0][1]))
    assert image.shape == (3, 72, 72) and label.shape == (72, 72) and label.dtype == torch.int64
    # reduce_zero_label: 0 -> 255 (ignored), c -> c - 1
    assert (label[torch.from_numpy(raw == 0)] == IGNORE_INDEX).all()
    assert torch.equal(label[torch.from_numpy(raw > 0)], torch.from_numpy(raw[raw > 0].astype(np.int64) - 1))
    assert set(label.unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}


def test_without_object_info_defaults_to_150_classes(tmp_path):
    base = make_shapes_ade20k(tmp_path, n_train=1, n_val=1, size=32)
    (base / "objectInfo150.txt").unlink()
    assert ADE20K(tmp_path, "val").num_classes == 150


def test_read_label_keeps_zero_without_reduction(tmp_path):
    p = tmp_path / "l.png"
    Image.fromarray(np.array([[0, 1], [150, 2]], dtype=np.uint8), mode="L").save(p)
    assert read_label(p).tolist() == [[255, 0], [149, 1]]
    assert read_label(p, reduce_zero_label=False).tolist() == [[0, 1], [150, 2]]


def test_train_transform_crops_and_pads(ade_root):
    tf = SegmentationTrainTransform(scale=(96, 48), ratio_range=(0.5, 2.0), crop_size=(64, 64),
                                   generator=torch.Generator().manual_seed(0))
    ds = ADE20K(ade_root, "train", transforms=tf)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (3, 64, 64) and label.shape == (64, 64) and image.dtype == torch.float32
        # padding: image 0 where label is ignore-padded beyond the resized image
    tf_small = SegmentationTrainTransform(scale=(40, 20), ratio_range=(1.0, 1.0), crop_size=(64, 64), flip_prob=0)
    image, label = tf_small(torch.zeros(3, 72, 72, dtype=torch.uint8), torch.zeros(72, 72, dtype=torch.long))
    assert (label[:20, :20] == 0).all() and (label[20:, :] == IGNORE_INDEX).all() and (image[:, 20:] == 0).all()
    images, labels = collate_segmentation([ds[0], ds[1]])
    assert images.shape == (2, 3, 64, 64) and labels.shape == (2, 64, 64)


def test_eval_transform_keeps_label_size(ade_root):
    ds = ADE20K(ade_root, "val", transforms=SegmentationEvalTransform(scale=(128, 36)))
    image, label = ds[0]
    assert image.shape == (3, 36, 36) and label.shape == (72, 72)
    assert fit_size(512, 683, (2048, 512)) == (512, 683) and fit_size(300, 4000, (2048, 512)) == (154, 2048)


def test_errors(tmp_path, ade_root):
    with pytest.raises(DataError, match="not an ADE20K folder"):
        ADE20K(tmp_path, "train")
    with pytest.raises(DataError, match="unknown ADE20K split"):
        ADE20K(ade_root, "test")
    base = make_shapes_ade20k(tmp_path / "x", n_train=2, n_val=1, size=32)
    next((base / "annotations" / "training").glob("*.png")).unlink()
    with pytest.raises(DataError, match="have no annotation"):
        ADE20K(base, "train")
