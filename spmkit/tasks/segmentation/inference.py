"""Whole-image and sliding-window inference for a ``Segmentor`` (mmseg's ``whole`` / ``slide`` modes)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def infer_logits(
    model: nn.Module,
    image: torch.Tensor,
    *,
    mode: Literal["whole", "slide"] = "whole",
    crop_size: tuple[int, int] = (512, 512),
    stride: tuple[int, int] = (341, 341),
    out_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Logits ``(N, K, H, W)`` for images ``(N, 3, H, W)``, resized to ``out_size`` when given.

    ``slide`` runs crops of ``crop_size`` every ``stride`` pixels (the last crop flush with the border)
    and averages overlapping logits.
    """
    if mode == "whole":
        logits = model(image)
    elif mode == "slide":
        n, _, h, w = image.shape
        ch, cw = min(crop_size[0], h), min(crop_size[1], w)
        sh, sw = stride
        rows = max(h - ch + sh - 1, 0) // sh + 1
        cols = max(w - cw + sw - 1, 0) // sw + 1
        logits = None
        count = image.new_zeros((1, 1, h, w))
        for r in range(rows):
            for c in range(cols):
                y0, x0 = min(r * sh, h - ch), min(c * sw, w - cw)
                out = model(image[..., y0 : y0 + ch, x0 : x0 + cw])
                if logits is None:
                    logits = image.new_zeros((n, out.shape[1], h, w))
                logits[..., y0 : y0 + ch, x0 : x0 + cw] += out
                count[..., y0 : y0 + ch, x0 : x0 + cw] += 1
        logits = logits / count
    else:
        raise ValueError(f"unknown inference mode {mode!r}; use 'whole' or 'slide'.")
    if out_size is not None and tuple(logits.shape[-2:]) != tuple(out_size):
        logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
    return logits
