"""ImageNet-layout folders (``<root>/<split>/<class>/<image>``) read with PIL.

Unreadable images do not stop a run: the dataset logs the path once and counts the skip in the sample
(so totals are right even when loading happens in worker processes). In training the next readable sample
takes its place (keeping batch shapes, which mixup and DDP need); in evaluation (``unreadable="leave_out"``)
the sample is ``None`` and :class:`~spmkit.data.unreadable.LeaveOutCollate` drops it, so every readable
image is scored once (see ``spmkit.data.unreadable``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PIL import Image
from torch.utils.data import Dataset

from spmkit.data.unreadable import Policy, UnreadableImage, first_readable
from spmkit.errors import DataError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def find_classes(split_dir: Path) -> list[str]:
    """Sorted class-folder names of a split; DataError when the split is missing or has none."""
    if not split_dir.is_dir():
        raise DataError(
            f"data split {split_dir} does not exist. Expected the ImageNet layout "
            f"<data>/train/<class>/<image> and <data>/val/<class>/<image>."
        )
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data split {split_dir} has no class folders (<split>/<class>/<image>).")
    return classes


def scan_split(split_dir: Path, classes: list[str]) -> list[tuple[str, int]]:
    """``(path, class_index)`` for every image file of the split, class folders in ``classes`` order.

    A class folder of the split that is not in ``classes`` is an error (its labels would be wrong).
    """
    present = find_classes(split_dir)
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise DataError(
            f"{split_dir} has class folders that the training classes do not: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} ({len(unknown)} in all)."
        )
    samples: list[tuple[str, int]] = []
    for idx, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMG_EXTENSIONS and path.is_file():
                samples.append((str(path), idx))
    if not samples:
        raise DataError(f"data split {split_dir} has no images (extensions: {', '.join(IMG_EXTENSIONS)}).")
    return samples


class ImageFolderDataset(Dataset):
    """One split of an ImageNet-layout folder. ``__getitem__`` -> ``(image, target, n_skipped)``.

    ``n_skipped`` is 1 when the requested image was unreadable (its substitute, or ``None`` with
    ``unreadable="leave_out"``, is returned), else 0.
    """

    def __init__(self, root: str | Path, split: str, classes: list[str],
                 transform: Callable[[Image.Image], Any] | None = None, unreadable: Policy = "substitute") -> None:
        self.root = Path(root)
        self.split = split
        self.classes = list(classes)
        self.samples = scan_split(self.root / split, self.classes)
        self.transform = transform
        self.unreadable: Policy = unreadable
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[Image.Image, int]:
        path, target = self.samples[index]
        try:
            with Image.open(path) as img:
                return img.convert("RGB"), target
        except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files
            raise UnreadableImage(f"{path} ({type(e).__name__}: {str(e)[:200]})") from None

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        item, skipped = first_readable(self._load, index, len(self.samples), self.unreadable, self._bad,
                                       str(self.root / self.split))
        if item is None:
            return None, self.samples[index][1], skipped
        img, target = item
        return (self.transform(img) if self.transform is not None else img), target, skipped
