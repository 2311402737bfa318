"""Posterize with 0 bits kept, as the recipes were run: a black image.

timm's RandAugment ``rand-m9-mstd0.5-inc1`` (the PVT / Swin recipe) draws magnitudes up to 10, where
``PosterizeIncreasing`` keeps 0 bits. Older Pillow returned a black image for that; current Pillow raises
``ValueError``, which stopped trainings at random (P(magnitude >= 10) = 2.3% with std 0.5, times 2 ops of
~15 per image: about 3 images in 1000).
:func:`patch_posterize` swaps the op's function for one with the old result, only where the transform
exposes timm's ops (``ops`` / ``aug_fn``); anything else is left untouched.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps


def posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's ``posterize`` that gives a black image for ``bits_to_keep <= 0`` instead of raising."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point([0] * 256 * len(img.getbands())) if img.mode in ("L", "RGB") else img
    return ImageOps.posterize(img, bits_to_keep)


def patch_posterize(transform: Any) -> Any:
    """Replace timm's posterize in every RandAugment / AutoAugment op found inside ``transform``."""
    try:
        from timm.data import auto_augment as aa
    except ImportError:
        return transform
    original = getattr(aa, "posterize", None)
    stack, seen = [transform], set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if isinstance(t, (list, tuple)):  # AutoAugment's sub-policies
            stack.extend(t)
            continue
        if original is not None and getattr(t, "aug_fn", None) is original:
            t.aug_fn = posterize
        for name in ("transforms", "ops", "policy"):
            children = getattr(t, name, None)
            if isinstance(children, (list, tuple)):
                stack.extend(children)
    return transform
