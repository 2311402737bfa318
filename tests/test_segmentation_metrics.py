"""Confusion-matrix mIoU / pixel accuracy against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from spmkit.tasks.segmentation.metrics import ConfusionMatrix


def test_known_confusion_matrix():
    # target rows, prediction columns
    m = torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    t, p = [], []
    for i in range(3):
        for j in range(3):
            t += [i] * int(m[i, j])
            p += [j] * int(m[i, j])
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor(p), torch.tensor(t))
    assert torch.equal(cm.matrix, m)
    r = cm.compute()
    iou0, iou1 = 3 / (4 + 5 - 3), 4 / (6 + 5 - 4)  # tp / (gt + pred - tp)
    assert r["per_class_iou"][0] == pytest.approx(iou0)
    assert r["per_class_iou"][1] == pytest.approx(iou1)
    assert math.isnan(r["per_class_iou"][2])  # never labelled nor predicted: left out of the mean
    assert r["mIoU"] == pytest.approx((iou0 + iou1) / 2)
    assert r["pixel_acc"] == pytest.approx(7 / 10)
    assert r["mAcc"] == pytest.approx((3 / 4 + 4 / 6) / 2)


def test_ignore_index_and_accumulation():
    cm = ConfusionMatrix(2, ignore_index=255)
    target = torch.tensor([[0, 0], [1, 255]])
    pred = torch.tensor([[0, 1], [1, 0]])
    cm.update(pred, target)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[2, 2], [0, 2]]
    r = cm.compute()
    assert r["pixel_acc"] == pytest.approx(4 / 6)
    assert r["mIoU"] == pytest.approx((2 / 4 + 2 / 4) / 2)


def test_class_only_predicted_counts_with_iou_zero():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 2]), torch.tensor([0, 0, 0]))
    r = cm.compute()
    assert r["per_class_iou"][2] == 0.0 and math.isnan(r["per_class_iou"][1])
    assert r["mIoU"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_bad_labels_are_reported():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([0]), torch.tensor([5]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0]))
