"""Tiny generated dense-prediction data sets in the exact COCO and ADE20K folder layouts, for tests,
docs and the CPU benchmark: coloured rectangles, ellipses and triangles on a textured background."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("rectangle", "ellipse", "triangle")


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(60, 200, size=3)
    ramp = np.linspace(-30, 30, size)[None, :, None] * rng.choice([-1, 1])
    noise = rng.normal(0, 12, size=(size, size, 3))
    arr = np.clip(base[None, None, :] + ramp + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _shape_polygon(kind: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    if kind == "rectangle":
        w, h = r * rng.uniform(0.7, 1.0), r * rng.uniform(0.5, 1.0)
        return [(cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h)]
    if kind == "ellipse":
        a, b = r, r * rng.uniform(0.6, 1.0)
        return [(cx + a * math.cos(t), cy + b * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    return [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]


def _draw_scene(rng: np.random.Generator, size: int, max_shapes: int, min_shapes: int,
                radius: tuple[float, float] = (0.12, 0.25)):
    """An RGB image and its shapes as (class index 0..2, polygon), drawn back to front; shape radii are
    ``radius`` fractions of the image side."""
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    shapes = []
    for _ in range(int(rng.integers(min_shapes, max_shapes + 1))):
        kind = int(rng.integers(0, len(SHAPES)))
        r = float(rng.uniform(size * radius[0], size * radius[1]))
        cx, cy = (float(v) for v in rng.uniform(r, size - r, size=2))
        poly = _shape_polygon(SHAPES[kind], cx, cy, r, rng)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.polygon(poly, fill=colour)
        shapes.append((kind, poly))
    return img, shapes


def _mask(poly, size: int) -> np.ndarray:
    m = Image.new("L", (size, size), 0)
    ImageDraw.Draw(m).polygon(poly, fill=1)
    return np.asarray(m, dtype=np.uint8)


def make_shapes_coco(
    root: str | Path,
    *,
    n_train: int = 16,
    n_val: int = 8,
    size: int = 96,
    max_shapes: int = 3,
    seed: int = 0,
    empty_every: int = 5,
    radius: tuple[float, float] = (0.12, 0.25),
) -> Path:
    """Write ``root/{train2017,val2017}/*.jpg`` and ``root/annotations/instances_*.json``.

    Categories have the sparse ids 3, 7, 11 (like COCO's gaps). Every ``empty_every``-th image has no
    shapes (no annotations). Instances are polygons, or a compressed RLE of the visible part when a
    later shape hides some of it (COCO annotates what is visible).
    """
    from pycocotools import mask as mask_util

    root = Path(root)
    rng = np.random.default_rng(seed)
    cats = [{"id": 3 + 4 * i, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPES)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    ann_id = 1
    for split, n in (("train", n_train), ("val", n_val)):
        img_dir = root / f"{split}2017"
        img_dir.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img_id = 1000 * (split == "val") + i + 1
            empty = empty_every > 0 and i % empty_every == empty_every - 1
            img, shapes = _draw_scene(rng, size, 0 if empty else max_shapes, 0 if empty else 1, radius)
            name = f"{img_id:012d}.jpg"
            img.save(img_dir / name, quality=95)
            images.append({"id": img_id, "file_name": name, "height": size, "width": size})
            masks = [_mask(poly, size) for _, poly in shapes]
            for j, (kind, poly) in enumerate(shapes):
                m = masks[j].copy()
                for later in masks[j + 1 :]:
                    m[later > 0] = 0  # annotate the visible part only
                ys, xs = np.nonzero(m)
                if len(xs) < 4:
                    continue
                if (m == masks[j]).all():
                    segm = [[float(c) for xy in poly for c in xy]]
                    m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(segm, size, size)))
                    ys, xs = np.nonzero(m)  # pycocotools' rasterisation, as COCOeval will see it
                else:  # occluded: compressed RLE of what is visible
                    segm = mask_util.encode(np.asfortranarray(m))
                    segm["counts"] = segm["counts"].decode("ascii")
                x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                anns.append({
                    "id": ann_id, "image_id": img_id, "category_id": cats[kind]["id"], "iscrowd": 0,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "area": float(m.sum()),
                    "segmentation": segm,
                })
                ann_id += 1
        data = {"images": images, "annotations": anns, "categories": cats, "info": {"description": "spmkit shapes"}}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


def make_shapes_ade20k(
    root: str | Path,
    *,
    n_train: int = 16,
    n_val: int = 8,
    size: int = 96,
    max_shapes: int = 3,
    seed: int = 0,
    radius: tuple[float, float] = (0.12, 0.25),
) -> Path:
    """Write ``root/ADEChallengeData2016/{images,annotations}/{training,validation}`` and objectInfo150.txt.

    Label PNG values: 1 background, 2-4 the shapes, 0 ("other", ignored) on a 2-pixel frame. Returns the
    ``ADEChallengeData2016`` folder.
    """
    base = Path(root) / "ADEChallengeData2016"
    rng = np.random.default_rng(seed)
    names = ("background",) + SHAPES
    for split, sub, n in (("train", "training", n_train), ("val", "validation", n_val)):
        (base / "images" / sub).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, shapes = _draw_scene(rng, size, max_shapes, 1, radius)
            label = np.ones((size, size), dtype=np.uint8)
            for kind, poly in shapes:
                label[_mask(poly, size) > 0] = kind + 2
            label[:2, :] = label[-2:, :] = 0
            label[:, :2] = label[:, -2:] = 0
            stem = f"ADE_{split}_{i + 1:08d}"
            img.save(base / "images" / sub / f"{stem}.jpg", quality=95)
            Image.fromarray(label, mode="L").save(base / "annotations" / sub / f"{stem}.png")
    lines = ["Idx\tRatio\tTrain\tVal\tName"] + [f"{i + 1}\t0\t0\t0\t{n}" for i, n in enumerate(names)]
    (base / "objectInfo150.txt").write_text("\n".join(lines) + "\n")
    return base
