"""A real photo in COCO format: scikit-image's ``coins()`` (24 coins), instances from watershed +
connected components, then Mask R-CNN trained a few steps through the engine and evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("skimage")

from spmkit.data.coco import CocoDetection
from spmkit.tasks.detection.coco_eval import CocoEvaluator, detections_to_coco

BACKBONE = "tiny_swin"  # a tiny spmkit blueprint (blueprints/tiny/)



def coins_to_coco(root: Path) -> Path:
    """Write the coins photo as train2017 (and a mirrored copy) and val2017, one ``coin`` category."""
    from pycocotools import mask as mask_util
    from scipy import ndimage as ndi
    from skimage import data, filters, segmentation

    img = data.coins()
    markers = np.zeros_like(img)
    markers[img < 30], markers[img > 150] = 1, 2
    fg = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(img), markers) == 2)
    labels, n = ndi.label(fg)
    (root / "annotations").mkdir(parents=True)
    for split, flips in (("train", (False, True)), ("val", (False,))):
        (root / f"{split}2017").mkdir()
        images, anns = [], []
        for i, flip in enumerate(flips):
            im, lab = (img[:, ::-1], labels[:, ::-1]) if flip else (img, labels)
            name = f"coins_{i}.png"
            Image.fromarray(np.ascontiguousarray(im)).convert("RGB").save(root / f"{split}2017" / name)
            images.append({"id": i + 1, "file_name": name, "height": im.shape[0], "width": im.shape[1]})
            for k in range(1, n + 1):
                m = np.asfortranarray((lab == k).astype(np.uint8))
                if m.sum() < 50:
                    continue
                rle = mask_util.encode(m)
                rle["counts"] = rle["counts"].decode("ascii")
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": rle, "area": float(m.sum()),
                             "bbox": [float(v) for v in mask_util.toBbox(rle)]})
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "coin"}]}))
    return root


@pytest.fixture(scope="module")
def coins_root(tmp_path_factory):
    return coins_to_coco(tmp_path_factory.mktemp("coins"))


def test_coins_instances(coins_root):
    ds = CocoDetection(coins_root, "val")
    image, t = ds[0]
    assert image.shape == (3, 303, 384)
    assert len(t["labels"]) == 24  # the photo shows 24 coins
    areas = t["masks"].flatten(1).sum(1)
    assert int(areas.min()) > 800 and int(areas.max()) < 4000  # none merged, none fragmentary


def test_coins_ground_truth_scores_ap_one(coins_root):
    ds = CocoDetection(coins_root, "val")
    _, t = ds[0]
    pred = {"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"],
            "masks": t["masks"][:, None].float()}
    ev = CocoEvaluator(ds.coco)
    ev.update([1], detections_to_coco(1, pred, ds.label_to_cat))
    s = ev.summarize()
    assert s["bbox"]["AP"] == pytest.approx(1.0) and s["segm"]["AP"] == pytest.approx(1.0)


def test_mask_rcnn_trains_on_coins(coins_root, tmp_path):
    from spmkit.infer.evaluate import evaluate
    from spmkit.train.trainer import TrainConfig, train
    from spmkit.tasks.base import ModelSpec

    out = tmp_path / "run"
    overrides = ["epochs=2", "batch_size=1", "workers=0", "min_size=128", "max_size=176", "fpn_channels=32",
                 "box_head_dim=64", "mask_head_dim=16", "lr=5e-4", "warmup_iters=0",
                 "detector_kwargs={rpn_pre_nms_top_n_train: 200, rpn_post_nms_top_n_train: 100, "
                 "box_batch_size_per_image: 64}"]
    rows = train(TrainConfig(model=ModelSpec(BACKBONE), data=coins_root, output=out,
                             task="detection", overrides=overrides))
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    for key in ("bbox_AP", "segm_AP", "bbox_AP50", "segm_ARl"):
        assert key in rows[-1]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert any("segm_AR100" in l for l in lines)  # the full 12-number summaries land in the run folder
    m = evaluate(data=coins_root, checkpoint=out / "last.pt")
    assert 0.0 <= m["bbox_AP"] <= 100.0 and 0.0 <= m["segm_AP"] <= 100.0
    assert m["bbox_AP"] == pytest.approx(rows[-1]["bbox_AP"])
