"""Semantic segmentation metrics from a confusion matrix: mIoU, per-class IoU, pixel accuracy, mAcc.

As mmseg: classes that appear neither in the labels nor in the predictions (union 0) are left out of
the means (NaN per-class IoU); pixels labelled ``ignore_index`` are not counted.
"""

from __future__ import annotations

import math

import torch


class ConfusionMatrix:
    """Accumulates ``matrix[target, prediction]`` pixel counts over batches (and processes)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` and ``target``: integer class maps of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and label {tuple(target.shape)} differ in shape.")
        keep = target != self.ignore_index
        t, p = target[keep].long().cpu(), pred[keep].long().cpu()
        if t.numel() and (t.min() < 0 or t.max() >= self.num_classes):
            raise ValueError(f"labels outside 0..{self.num_classes - 1} (and not the ignore index {self.ignore_index}).")
        k = self.num_classes
        self.matrix += torch.bincount(t * k + p, minlength=k * k).view(k, k)

    def all_reduce(self) -> None:
        """Sum the matrix over processes when ``torch.distributed`` is initialised."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            m = self.matrix.to("cuda" if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(m)
            self.matrix = m.cpu()

    def compute(self) -> dict:
        """``mIoU``, ``mAcc``, ``pixel_acc`` (fractions in [0, 1]) and ``per_class_iou`` (list, NaN = absent)."""
        m = self.matrix.double()
        tp = m.diag()
        gt, pr = m.sum(1), m.sum(0)
        union = gt + pr - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
        total = m.sum().item()
        return {
            "mIoU": _nanmean(iou),
            "mAcc": _nanmean(acc),
            "pixel_acc": tp.sum().item() / total if total else float("nan"),
            "per_class_iou": [float(v) for v in iou],
        }


def _nanmean(x: torch.Tensor) -> float:
    valid = ~torch.isnan(x)
    return float(x[valid].mean()) if valid.any() else math.nan
