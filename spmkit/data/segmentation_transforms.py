"""Joint image/label transforms for semantic segmentation (mmseg's ADE20K pipeline, minus photometric jitter).

Training: resize so the image fits ``scale`` (long, short) times a random ratio, random crop of
``crop_size`` (retrying so no class covers more than ``cat_max_ratio`` of the crop), horizontal flip,
pad to the crop with 0 / ignore. Evaluation: resize the image to fit ``scale``; the label stays at its
original size and predictions are resized to it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from spmkit.data.ade20k import IGNORE_INDEX


def fit_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(H, W) resized with aspect kept so the long side <= scale[0] and the short side <= scale[1]."""
    long_max, short_max = max(scale), min(scale)
    factor = min(long_max / max(height, width), short_max / min(height, width))
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a uint8 or float ``(C, H, W)`` image; returns float in [0, 1]."""
    x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0].clamp_(0, 1)


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(label.shape[-2:]) == tuple(size):
        return label
    return F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()


def pad_to(image: torch.Tensor, label: torch.Tensor | None, size: tuple[int, int]):
    """Pad bottom/right to at least ``size``: image with 0, label with the ignore index."""
    ph, pw = max(0, size[0] - image.shape[-2]), max(0, size[1] - image.shape[-1])
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        if label is not None:
            label = F.pad(label, (0, pw, 0, ph), value=IGNORE_INDEX)
    return image, label


class SegmentationTrainTransform:
    """Random rescale, random crop, flip, pad (see the module docstring)."""

    def __init__(
        self,
        scale: tuple[int, int] = (2048, 512),
        ratio_range: tuple[float, float] = (0.5, 2.0),
        crop_size: tuple[int, int] = (512, 512),
        cat_max_ratio: float = 0.75,
        flip_prob: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        self.scale, self.ratio_range, self.crop_size = scale, ratio_range, crop_size
        self.cat_max_ratio, self.flip_prob, self.g = cat_max_ratio, flip_prob, generator

    def _rand(self) -> float:
        return torch.rand((), generator=self.g).item()

    def _crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        y0 = int(self._rand() * (h - ch + 1))
        x0 = int(self._rand() * (w - cw + 1))
        return y0, x0, ch, cw

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ratio = self.ratio_range[0] + self._rand() * (self.ratio_range[1] - self.ratio_range[0])
        scale = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        size = fit_size(image.shape[-2], image.shape[-1], scale)
        image, label = resize_image(image, size), resize_label(label, size)
        h, w = size
        box = self._crop_box(h, w)
        if self.cat_max_ratio < 1.0:
            for _ in range(10):  # mmseg's RandomCrop: avoid crops dominated by one class
                y0, x0, ch, cw = box
                crop = label[y0 : y0 + ch, x0 : x0 + cw]
                _, counts = torch.unique(crop[crop != IGNORE_INDEX], return_counts=True)
                if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                    break
                box = self._crop_box(h, w)
        y0, x0, ch, cw = box
        image, label = image[:, y0 : y0 + ch, x0 : x0 + cw], label[y0 : y0 + ch, x0 : x0 + cw]
        if self._rand() < self.flip_prob:
            image, label = image.flip(-1), label.flip(-1)
        return pad_to(image, label, self.crop_size)


class SegmentationEvalTransform:
    """Resize the image to fit ``scale``; the label keeps its original size."""

    def __init__(self, scale: tuple[int, int] = (2048, 512)) -> None:
        self.scale = scale

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return resize_image(image, fit_size(image.shape[-2], image.shape[-1], self.scale)), label


def pad_to_multiple(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad an ``(N, C, H, W)`` batch bottom/right to a multiple of ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = math.ceil(h / multiple) * multiple - h, math.ceil(w / multiple) * multiple - w
    return (F.pad(x, (0, pw, 0, ph)) if ph or pw else x), (h, w)


def collate_segmentation(batch):
    """Stack equally sized crops; evaluation (batch size 1, original label sizes) keeps lists."""
    images, labels = zip(*batch)
    if all(i.shape == images[0].shape for i in images) and all(l.shape == labels[0].shape for l in labels):
        return torch.stack(images), torch.stack(labels)
    return list(images), list(labels)
