"""COCO-layout data: generated shapes read back through pycocotools, targets, flips, errors."""

from __future__ import annotations

import json

import pytest
import torch

from spmkit.data.coco import CocoDetection, collate_detection
from spmkit.data.detection_transforms import DetectionTransform, hflip_detection
from spmkit.data.synthetic_dense import make_shapes_coco
from spmkit.errors import DataError


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return make_shapes_coco(tmp_path_factory.mktemp("coco"), n_train=10, n_val=5, size=80, seed=1)


def test_layout_and_targets(coco_root):
    assert (coco_root / "train2017").is_dir() and (coco_root / "annotations" / "instances_val2017.json").is_file()
    ds = CocoDetection(coco_root, "train")
    assert len(ds) == 10 and ds.num_classes == 3
    assert ds.cat_ids == [3, 7, 11] and ds.label_to_cat == {1: 3, 2: 7, 3: 11}
    n_anns = 0
    for i in range(len(ds)):
        image, t = ds[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 80, 80)
        n = len(t["labels"])
        n_anns += n
        assert t["boxes"].shape == (n, 4) and t["masks"].shape == (n, 80, 80)
        assert set(t["labels"].tolist()) <= {1, 2, 3}
        for box, mask in zip(t["boxes"], t["masks"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            # the box encloses the mask (the mask is pycocotools' rasterisation of the annotation)
            assert xs.min() >= box[0] - 1 and xs.max() <= box[2] and ys.min() >= box[1] - 1 and ys.max() <= box[3]
    assert n_anns == len(ds.coco.getAnnIds())


def test_images_without_annotations_give_empty_targets(coco_root):
    ds = CocoDetection(coco_root, "train")
    empty = [i for i in range(len(ds)) if not ds.coco.getAnnIds(imgIds=[ds.ids[i]])]
    assert empty, "the generator makes every 5th image empty"
    _, t = ds[empty[0]]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 80, 80)


def test_crowd_annotations_are_not_training_targets(tmp_path):
    root = make_shapes_coco(tmp_path, n_train=3, n_val=1, size=64, seed=2, empty_every=0)
    ann = root / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    first_img = data["images"][0]["id"]
    n_before = sum(a["image_id"] == first_img for a in data["annotations"])
    for a in data["annotations"]:
        if a["image_id"] == first_img:
            a["iscrowd"] = 1
    ann.write_text(json.dumps(data))
    ds = CocoDetection(root, "train")
    assert n_before > 0 and len(ds[0][1]["labels"]) == 0


def test_hflip_moves_boxes_with_masks(coco_root):
    ds = CocoDetection(coco_root, "train")
    i = next(i for i in range(len(ds)) if len(ds[i][1]["labels"]))
    image, t = ds[i]
    fimg, ft = hflip_detection(image, t)
    assert torch.equal(fimg, image.flip(-1)) and torch.equal(ft["masks"], t["masks"].flip(-1))
    assert torch.allclose(ft["boxes"][:, 0], 80 - t["boxes"][:, 2]) and torch.allclose(ft["boxes"][:, 3], t["boxes"][:, 3])
    img_f, _ = DetectionTransform(flip_prob=0.0)(image, t)
    assert img_f.dtype == torch.float32 and float(img_f.max()) <= 1.0
    images, targets = collate_detection([ds[0], ds[1]])
    assert len(images) == 2 and isinstance(targets[0], dict)


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="instances_train2017.json"):
        CocoDetection(tmp_path, "train")
    with pytest.raises(DataError, match="does not exist"):
        CocoDetection(tmp_path / "nope", "train")
    (tmp_path / "train2017").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read COCO annotations"):
        CocoDetection(tmp_path, "train")
