"""ADE20K (SceneParsing, ``ADEChallengeData2016``) semantic segmentation in the official folder layout.

Layout (``DIR`` may be ``ADEChallengeData2016`` itself or its parent)::

    ADEChallengeData2016/images/{training,validation}/ADE_*.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_*.png

Annotation PNGs hold 0 for "other" and 1..150 for the classes. As in the papers' (mmseg's)
``reduce_zero_label``: 0 becomes the ignore index 255 and class ``c`` becomes ``c - 1``. An unreadable
image or annotation (or a pair of different sizes) raises ``UnreadableImage``; the task skips and counts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from spmkit.data.coco import read_rgb
from spmkit.data.unreadable import UnreadableImage
from spmkit.errors import DataError

IGNORE_INDEX = 255
NUM_CLASSES = 150
SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def ade20k_root(root: str | Path) -> Path:
    """The ``ADEChallengeData2016`` folder inside (or at) ``root``."""
    root = Path(root)
    for cand in (root, root / "ADEChallengeData2016"):
        if (cand / "images").is_dir() and (cand / "annotations").is_dir():
            return cand
    raise DataError(
        f"{root} is not an ADE20K folder: expected ADEChallengeData2016/images/{{training,validation}}/*.jpg "
        f"and ADEChallengeData2016/annotations/{{training,validation}}/*.png (DIR may be either folder)."
    )


def read_label(path: Path, reduce_zero_label: bool = True) -> torch.Tensor:
    """A ``(H, W)`` int64 label map; with ``reduce_zero_label`` 0 -> 255 and c -> c - 1."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im).astype(np.int64)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types
        raise UnreadableImage(f"cannot read annotation {path}: {str(exc)[:200]}") from None
    if arr.ndim != 2:
        raise UnreadableImage(f"annotation {path} must be a single-channel (L or P mode) PNG, got shape {arr.shape}.")
    if reduce_zero_label:
        arr = np.where(arr == 0, IGNORE_INDEX + 1, arr) - 1
    return torch.from_numpy(arr)


def read_class_names(base: Path) -> list[str] | None:
    """Class names from the release's ``objectInfo150.txt`` (tab-separated, header, ``Name`` last), if present.

    Its line count sets the number of classes, so a smaller data set in the same layout just lists fewer.
    """
    path = base / "objectInfo150.txt"
    if not path.exists():
        return None
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {str(e)[:200]} (expected UTF-8 text).") from None
    names = [ln.split("\t")[-1].split(",")[0].strip() for ln in lines[1:]]
    if not names:
        raise DataError(f"{path} lists no classes.")
    return names


class ADE20K(torch.utils.data.Dataset):
    """Items are ``(image uint8 (3, H, W), label int64 (H, W))`` with 255 ignored.

    ``num_classes`` is the line count of ``objectInfo150.txt`` when the folder has one, else the
    argument (150).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        transforms: Transform | None = None,
        reduce_zero_label: bool = True,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"unknown ADE20K split {split!r}; use 'train' or 'val'.")
        base = ade20k_root(root)
        sub = SPLITS[split]
        self.img_dir, self.ann_dir = base / "images" / sub, base / "annotations" / sub
        images = sorted(p for p in self.img_dir.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not images:
            raise DataError(f"no images in {self.img_dir} (the ADE20K {sub} split is empty or missing).")
        self.items: list[tuple[Path, Path]] = []
        missing = []
        for img in images:
            ann = self.ann_dir / (img.stem + ".png")
            (self.items.append((img, ann)) if ann.exists() else missing.append(ann.name))
        if missing:
            raise DataError(
                f"{len(missing)} image(s) in {self.img_dir} have no annotation in {self.ann_dir} "
                f"(first: {missing[0]})."
            )
        self.transforms = transforms
        self.reduce_zero_label = reduce_zero_label
        self.class_names = read_class_names(base) or [str(i) for i in range(num_classes)]
        self.num_classes = len(self.class_names)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        img_path, ann_path = self.items[index]
        image = read_rgb(img_path)
        label = read_label(ann_path, self.reduce_zero_label)
        if label.shape != image.shape[1:]:
            raise UnreadableImage(f"{ann_path} is {tuple(label.shape)} but its image is {tuple(image.shape[1:])}.")
        if self.transforms is not None:
            image, label = self.transforms(image, label)
        return image, label
