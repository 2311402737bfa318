"""COCO instance detection / segmentation data in the official folder layout, read with pycocotools.

Layout::

    DIR/train2017/*.jpg   DIR/val2017/*.jpg
    DIR/annotations/instances_train2017.json   DIR/annotations/instances_val2017.json

COCO's category ids are sparse (1..90); the dataset maps them to contiguous labels ``1..K`` (0 is the
background of torchvision's detectors) and back (``label_to_cat``) for COCOeval. Images with no
annotations are kept and give empty targets (torchvision's detectors train on them as pure background).
The annotation file is checked before use (``spmkit.data.coco_checks``); an unreadable image raises
:class:`~spmkit.data.unreadable.UnreadableImage`, which the tasks skip and count.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from spmkit.data.coco_checks import CocoReport, check_coco
from spmkit.data.unreadable import UnreadableImage
from spmkit.errors import DataError

log = logging.getLogger("spmkit.data")

Target = dict[str, torch.Tensor]
Transform = Callable[[torch.Tensor, Target], tuple[torch.Tensor, Target]]


def coco_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """Image folder and annotation file of ``split`` ("train" or "val"); a clear error if either is missing."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"COCO data folder {root} does not exist.")
    img_dir = root / f"{split}2017"
    ann_file = root / "annotations" / f"instances_{split}2017.json"
    missing = [str(p) for p in (img_dir, ann_file) if not p.exists()]
    if missing:
        raise DataError(
            f"{root} is not a COCO folder: {', '.join(missing)} missing. Expected the COCO layout "
            f"{split}2017/ with the images and annotations/instances_{split}2017.json."
        )
    return img_dir, ann_file


def load_coco_api(ann_file: str | Path, report: CocoReport | None = None):
    """A ``pycocotools.coco.COCO`` for ``ann_file``, without its prints; malformed JSON or entries are a
    DataError (see ``check_coco``). ``report`` receives what the checks found to leave out."""
    from pycocotools.coco import COCO

    try:
        with open(ann_file, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8
        raise DataError(f"cannot read COCO annotations {ann_file}: {str(exc)[:200]}") from None
    found = check_coco(data, ann_file)
    if report is not None:
        report.degenerate = found.degenerate
    if found.degenerate:  # neither trained on nor evaluated against
        data["annotations"] = [a for a in data.get("annotations", []) if a["id"] not in found.degenerate]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api = COCO()
            api.dataset = data
            api.createIndex()
        return api
    except Exception as exc:  # noqa: BLE001 - anything the checks above did not foresee
        raise DataError(f"cannot read COCO annotations {ann_file}: {type(exc).__name__}: {str(exc)[:200]}") from None


def read_rgb(path: Path) -> torch.Tensor:
    """A ``(3, H, W)`` uint8 tensor; an unreadable file is a DataError naming it."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as exc:  # PIL raises many types
        raise UnreadableImage(f"cannot read image {path}: {str(exc)[:200]}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class CocoDetection(torch.utils.data.Dataset):
    """Items are ``(image uint8 (3, H, W), target)``.

    ``target`` holds ``boxes`` (N, 4) xyxy float pixels, ``labels`` (N,) int64 in 1..K, ``masks``
    (N, H, W) uint8 (when ``with_masks``), ``image_id`` (int64 scalar), ``area``, ``iscrowd``. Crowd
    regions and boxes thinner than one pixel are dropped from the targets (COCOeval still sees them
    through ``self.coco``). Annotations whose segmentation is degenerate are left out of both (counted in
    ``skipped_annotations``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        transforms: Transform | None = None,
        with_masks: bool = True,
    ) -> None:
        self.img_dir, self.ann_file = coco_paths(root, split)
        checks = CocoReport()
        self.coco = load_coco_api(self.ann_file, checks)
        self.skipped_annotations = len(checks.degenerate)
        if checks.degenerate:
            log.warning("%s: %d annotations with an empty or degenerate segmentation are left out "
                        "(e.g. id %d)", self.ann_file, len(checks.degenerate), min(checks.degenerate))
        self.ids = sorted(self.coco.imgs)
        if not self.ids:
            raise DataError(f"{self.ann_file} lists no images.")
        self.cat_ids = sorted(self.coco.getCatIds())
        if not self.cat_ids:
            raise DataError(f"{self.ann_file} lists no categories.")
        self.cat_to_label = {c: i + 1 for i, c in enumerate(self.cat_ids)}
        self.label_to_cat = {i + 1: c for i, c in enumerate(self.cat_ids)}
        self.class_names = [self.coco.cats[c]["name"] for c in self.cat_ids]
        self.transforms = transforms
        self.with_masks = with_masks

    @property
    def num_classes(self) -> int:
        """Foreground classes K (the detectors get K + 1 with background)."""
        return len(self.cat_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, index: int) -> Path:
        return self.img_dir / self.coco.imgs[self.ids[index]]["file_name"]

    def target(self, index: int, height: int, width: int) -> Target:
        img_id = self.ids[index]
        anns = [a for a in self.coco.imgToAnns.get(img_id, []) if not a.get("iscrowd", 0)]
        boxes, labels, masks, areas = [], [], [], []
        for a in anns:
            x, y, w, h = a["bbox"]
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(width), x + w), min(float(height), y + h)
            if x1 - x0 < 1 or y1 - y0 < 1 or a["category_id"] not in self.cat_to_label:
                continue
            boxes.append([x0, y0, x1, y1])
            labels.append(self.cat_to_label[a["category_id"]])
            areas.append(float(a.get("area", w * h)))
            if self.with_masks:
                masks.append(self._mask(a, (x0, y0, x1, y1), height, width))
        target: Target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": torch.tensor(img_id, dtype=torch.int64),
            "area": torch.tensor(areas, dtype=torch.float32),
            "iscrowd": torch.zeros(len(labels), dtype=torch.int64),
        }
        if self.with_masks:
            target["masks"] = (
                torch.from_numpy(np.stack(masks)).to(torch.uint8)
                if masks
                else torch.zeros((0, height, width), dtype=torch.uint8)
            )
        return target

    def _mask(self, ann: dict, box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
        """The annotation's mask at the image's size; an undecodable one makes the image unreadable."""
        if "segmentation" not in ann:
            return _box_mask(*box, height, width)
        try:
            m = self.coco.annToMask(ann)
        except Exception as exc:  # noqa: BLE001 - pycocotools raises many types for bad RLE / polygons
            raise UnreadableImage(f"{self.ann_file}: annotation id {ann['id']} has a segmentation that cannot be "
                                  f"decoded ({type(exc).__name__}: {str(exc)[:100]})") from None
        if m.shape != (height, width):
            raise UnreadableImage(f"{self.ann_file}: annotation id {ann['id']} is {m.shape[0]}x{m.shape[1]} but "
                                  f"image id {ann['image_id']} is {height}x{width}")
        return m

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image = read_rgb(self.image_path(index))
        target = self.target(index, image.shape[1], image.shape[2])
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def _box_mask(x0: float, y0: float, x1: float, y1: float, height: int, width: int) -> np.ndarray:
    """A filled-box mask for annotations that have no ``segmentation``."""
    m = np.zeros((height, width), dtype=np.uint8)
    m[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = 1
    return m


def collate_detection(batch: list[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """Lists of images and targets (torchvision's detectors take lists of differently sized images)."""
    images, targets = zip(*batch)
    return list(images), list(targets)
