"""Hugging Face datasets: ``hf:NAME[:CONFIG]`` (the hub, through the local cache), a ``save_to_disk`` folder
or a folder of parquet files, read with the ``datasets`` library as map-style (memory-mapped Arrow) data.

The image column is the first of feature type ``Image`` (read undecoded and decoded here, so a broken image
is skipped and counted as in folders); the label column the first ``ClassLabel`` (its names are the
classes), else an integer column named ``label`` / ``labels`` (classes named by index). The training split
is ``train``; the validation split the first of ``validation``, ``val``, ``valid``, ``test``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PIL import Image
from torch.utils.data import Dataset

from spmkit.data.decode import decode_image
from spmkit.data.unreadable import Policy, UnreadableImage, first_readable
from spmkit.errors import DataError

VAL_SPLITS = ("validation", "val", "valid", "test")
PREFIX = "hf:"


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DataError("Hugging Face data needs the datasets package: pip install 'spmkit[data]'.") from None
    return datasets


def is_hf_folder(path: Path) -> bool:
    """A ``save_to_disk`` folder (``dataset_dict.json``) or a folder holding parquet files."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or any(path.rglob("*.parquet")))


def load_splits(source: str) -> Any:
    """The ``DatasetDict`` of ``hf:NAME[:CONFIG]`` or of a local folder; DataError with the reason else."""
    ds = _datasets()
    if source.startswith(PREFIX):
        name, _, config = source[len(PREFIX):].partition(":")
        if not name:
            raise DataError(f"{source!r}: give hf:NAME or hf:NAME:CONFIG (a Hugging Face dataset name).")
        try:
            return ds.load_dataset(name, config or None)
        except Exception as e:  # noqa: BLE001 - hub, network and cache errors come in many types
            detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise DataError(
                f"cannot load the Hugging Face dataset {name!r}{f' (config {config!r})' if config else ''}: "
                f"{detail}. Without network access only datasets already in the Hugging Face cache load "
                f"(HF_HUB_OFFLINE=1 uses the cache only); a local save_to_disk or parquet folder also works."
            ) from None
    path = Path(source)
    quiet = not ds.are_progress_bars_disabled()
    if quiet:  # a local folder loads in moments: no progress bars in the output (--json stays one line)
        ds.disable_progress_bars()
    try:
        if (path / "dataset_dict.json").is_file():
            return ds.load_from_disk(str(path))
        return ds.load_dataset("parquet", data_dir=str(path))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"cannot read {path} as a Hugging Face dataset: {type(e).__name__}: {str(e)[:300]}") from None
    finally:
        if quiet:
            ds.enable_progress_bars()


def split_name(splits: Any, split: str, where: str) -> str:
    names = list(splits.keys()) if hasattr(splits, "keys") else []
    wanted = ("train",) if split == "train" else VAL_SPLITS
    for name in wanted:
        if name in names:
            return name
    raise DataError(f"{where} has no {' / '.join(wanted)} split (it has: {', '.join(names) or 'none'}).")


def columns(dataset: Any, where: str) -> tuple[str, str, list[str] | None]:
    """``(image column, label column, class names or None)`` of a split."""
    ds = _datasets()
    feats = dataset.features
    image = next((k for k, f in feats.items() if isinstance(f, ds.Image)), None)
    if image is None:
        raise DataError(f"{where} has no image column (a feature of type Image); columns: {', '.join(feats)}.")
    label = next((k for k, f in feats.items() if isinstance(f, ds.ClassLabel)), None)
    if label is not None:
        return image, label, list(feats[label].names)
    label = next((k for k in ("label", "labels") if k in feats), None)
    if label is None:
        raise DataError(f"{where} has no label column (a ClassLabel feature, or an integer 'label').")
    return image, label, None


def class_names(splits: Any, where: str) -> list[str]:
    """Class names of the training split: the ClassLabel names, else ``0..max(label)``."""
    train = splits[split_name(splits, "train", where)]
    _, label, names = columns(train, where)
    if names is not None:
        return names
    return [str(i) for i in range(int(max(train[label])) + 1)]


class HFImageDataset(Dataset):
    """One split of a Hugging Face dataset; ``__getitem__`` -> ``(image, target, n_skipped)``."""

    def __init__(self, splits: Any, split: str, where: str, transform: Callable[[Image.Image], Any] | None = None,
                 unreadable: Policy = "substitute") -> None:
        ds = _datasets()
        self.where = f"{where} [{split_name(splits, split, where)}]"
        data = splits[split_name(splits, split, where)]
        self.image_col, self.label_col, _ = columns(data, where)
        self.data = data.cast_column(self.image_col, ds.Image(decode=False))
        self.transform = transform
        self.unreadable: Policy = unreadable
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.data)

    def _load(self, index: int) -> tuple[Image.Image, int]:
        row = self.data[index]
        cell = row[self.image_col] or {}
        where = f"{self.where} row {index}" + (f" ({cell['path']})" if cell.get("path") else "")
        target = row[self.label_col]
        if target is None or int(target) < 0:
            raise UnreadableImage(f"{where} (no label)")
        data = cell.get("bytes")
        if data is None and cell.get("path") and Path(cell["path"]).is_file():  # stored as a path only
            data = Path(cell["path"]).read_bytes()
        return decode_image(data, where), int(target)

    def target(self, index: int) -> int:
        return int(self.data[index][self.label_col])

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        item, skipped = first_readable(self._load, index, len(self), self.unreadable, self._bad, self.where)
        if item is None:
            return None, -1, skipped
        img, target = item
        return (self.transform(img) if self.transform is not None else img), target, skipped
