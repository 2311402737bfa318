"""COCOeval wrapper: hand-checkable cases (ground truth fed back as predictions gives AP 1.0)."""

from __future__ import annotations

import pytest
import torch

from spmkit.data.coco import CocoDetection
from spmkit.data.synthetic_dense import make_shapes_coco
from spmkit.tasks.detection.coco_eval import STAT_NAMES, CocoEvaluator, detections_to_coco


@pytest.fixture(scope="module")
def coco_val(tmp_path_factory):
    root = make_shapes_coco(tmp_path_factory.mktemp("coco"), n_train=2, n_val=10, size=96, seed=3)
    return CocoDetection(root, "val")


def _gt_as_predictions(ds: CocoDetection, shift: float = 0.0, drop_every: int = 0) -> CocoEvaluator:
    ev = CocoEvaluator(ds.coco, ("bbox", "segm"))
    k = 0
    for i in range(len(ds)):
        _, t = ds[i]
        keep = []
        for j in range(len(t["labels"])):
            k += 1
            if not (drop_every and k % drop_every == 0):
                keep.append(j)
        keep_t = torch.tensor(keep, dtype=torch.long)
        boxes = t["boxes"][keep_t] + shift
        pred = {
            "boxes": boxes,
            "scores": torch.linspace(0.9, 0.5, len(keep)) if keep else torch.zeros(0),
            "labels": t["labels"][keep_t],
            "masks": t["masks"][keep_t][:, None].float(),
        }
        ev.update([int(t["image_id"])], detections_to_coco(int(t["image_id"]), pred, ds.label_to_cat))
    return ev


def test_ground_truth_as_predictions_gives_ap_one(coco_val):
    s = _gt_as_predictions(coco_val).summarize()
    for iou_type in ("bbox", "segm"):
        assert len(s[iou_type]["stats"]) == 12
        assert s[iou_type]["AP"] == pytest.approx(1.0)
        assert s[iou_type]["AP50"] == pytest.approx(1.0)
        assert s[iou_type]["AP75"] == pytest.approx(1.0)
        assert s[iou_type]["AR100"] == pytest.approx(1.0)
        assert set(STAT_NAMES) <= set(s[iou_type])


def test_missing_detections_lower_recall_and_ap(coco_val):
    s = _gt_as_predictions(coco_val, drop_every=2).summarize()
    # every kept detection is exact, so recall is exactly the kept fraction (per category, averaged)
    assert 0.3 < s["bbox"]["AR100"] < 0.7
    assert s["bbox"]["AR100"] == pytest.approx(s["segm"]["AR100"])
    assert s["bbox"]["AP"] < 0.75


def test_shifted_boxes_fail_strict_iou(coco_val):
    s = _gt_as_predictions(coco_val, shift=6.0).summarize()
    assert s["bbox"]["AP"] < 0.6  # a 6-pixel shift on ~20-40 px shapes: fails IoU 0.75+
    assert s["segm"]["AP"] == pytest.approx(1.0)  # masks were not shifted


def test_no_detections_gives_zeros(coco_val):
    s = CocoEvaluator(coco_val.coco).summarize()
    assert s["bbox"]["stats"] == [0.0] * 12 and s["segm"]["AP"] == 0.0


def test_results_use_coco_category_ids_and_xywh(coco_val):
    pred = {"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "scores": torch.tensor([0.8]),
            "labels": torch.tensor([2]), "masks": torch.zeros(1, 1, 96, 96)}
    (r,) = detections_to_coco(5, pred, coco_val.label_to_cat)
    assert r["category_id"] == coco_val.cat_ids[1] == 7  # sparse COCO ids 3, 7, 11
    assert r["bbox"] == [10.0, 20.0, 20.0, 40.0]
    assert isinstance(r["segmentation"]["counts"], str)
    # label 0 (background) is never reported
    assert detections_to_coco(5, {**pred, "labels": torch.tensor([0])}, coco_val.label_to_cat) == []
