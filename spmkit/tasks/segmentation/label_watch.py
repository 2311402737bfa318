"""Training label maps checked on the device, so that a training step has no device -> host sync for them.

Two things make a segmentation loss meaningless: a label >= ``num_classes`` (cross-entropy would fail or,
on a GPU, assert) and a batch whose every pixel is the ignore index (cross-entropy over zero pixels is
0/0 = NaN). Both are recorded in device tensors; a batch with a too-high label gets a NaN loss (its
too-high pixels are ignored so that cross-entropy can run), so the engine's non-finite guard stops the
run at its next check and asks :meth:`LabelWatch.cause` why. Valid batches are untouched.
"""

from __future__ import annotations

import torch


class LabelWatch:
    """Watches the training labels of one process (see the module docstring)."""

    def __init__(self, ignore_index: int) -> None:
        self.ignore_index = ignore_index
        self.num_classes: int | None = None
        self.too_high: torch.Tensor | None = None  # bool: a batch had a label >= num_classes
        self.all_ignored: torch.Tensor | None = None  # int64: pixels of the first all-ignored batch, -1: none

    def __call__(self, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels cross-entropy can take, this batch has a label >= num_classes)``, both on the device."""
        labeled = labels != self.ignore_index
        high = labeled & (labels >= num_classes)
        any_high = high.any()
        if self.too_high is None or self.all_ignored is None:
            self.too_high = torch.zeros((), dtype=torch.bool, device=labels.device)
            self.all_ignored = torch.full((), -1, dtype=torch.int64, device=labels.device)
        self.num_classes = num_classes
        self.too_high = self.too_high | any_high
        first = ~labeled.any() & (self.all_ignored < 0)
        self.all_ignored = torch.where(first, torch.full_like(self.all_ignored, labels.numel()), self.all_ignored)
        return labels.masked_fill(high, self.ignore_index), any_high

    def cause(self) -> str | None:
        """Why a loss seen so far is not finite, if the labels explain it (reads the device: call on errors)."""
        if self.too_high is not None and bool(self.too_high):
            return (f"a training label is >= num_classes ({self.num_classes}): check num_classes and the "
                    f"annotations")
        if self.all_ignored is not None and int(self.all_ignored) >= 0:
            return (f"every label pixel of a training batch ({int(self.all_ignored)} pixels) is the ignore index "
                    f"{self.ignore_index}, so the loss averages over zero pixels: check the label maps (with "
                    f"reduce_zero_label, class 0 becomes {self.ignore_index}) and crop_size / cat_max_ratio")
        return None
