"""What ``--data`` names, and the classes and datasets of its splits, whatever it is.

* an ImageNet-layout folder (``train/<class>/<image>``, ``val/<class>/<image>``),
* a folder of webdataset shards (``train-*.tar``, ``val-*.tar``; ``spmkit data pack`` makes them),
* a Hugging Face dataset: ``hf:NAME[:CONFIG]``, or a local ``save_to_disk`` / parquet folder,
* a streamed Hugging Face dataset: ``hf-stream:NAME[:CONFIG]`` or ``hf-stream:FOLDER`` (parquet files).

Every source yields items ``(image, target, n_skipped)`` with the unreadable-image policies of
``spmkit.data.unreadable``; shards and ``hf-stream:`` are streams (``spmkit.data.stream``), the others
map-style.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from torch.utils.data import Dataset

from spmkit.data.unreadable import Policy
from spmkit.errors import DataError

log = logging.getLogger("spmkit.data")

Kind = str  # "folder" | "shards" | "hf" | "hf-stream"


class DataSource:
    """One ``--data`` value, opened once (a manifest or Hugging Face splits are read here)."""

    def __init__(self, spec: str | Path) -> None:
        from spmkit.data.hf import PREFIX, is_hf_folder
        from spmkit.data.hf_stream import PREFIX as STREAM_PREFIX
        from spmkit.data.shards import is_shard_folder

        self.spec = str(spec)
        path = Path(self.spec)
        self._manifest: dict[str, Any] | None = None
        self._splits: Any = None
        self._stream_classes: list[str] | None = None
        if self.spec.startswith(STREAM_PREFIX):
            self.kind: Kind = "hf-stream"
        elif self.spec.startswith(PREFIX):
            self.kind = "hf"
        elif not path.exists():
            raise DataError(f"--data {self.spec} does not exist. Give an ImageNet-layout folder, a folder of "
                            f"webdataset shards (train-*.tar, val-*.tar), hf:NAME[:CONFIG], hf-stream:NAME[:CONFIG] "
                            f"(streamed), or a Hugging Face save_to_disk / parquet folder.")
        elif is_shard_folder(path):
            self.kind = "shards"
        elif (path / "dataset_dict.json").is_file():  # save_to_disk: its split folders are not classes
            self.kind = "hf"
        elif (path / "train").is_dir() or (path / "val").is_dir():
            self.kind = "folder"
        elif is_hf_folder(path):
            self.kind = "hf"
        else:
            self.kind = "folder"  # the folder checks give the layout message

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            from spmkit.data.shards import load_manifest

            self._manifest = load_manifest(Path(self.spec))
        return self._manifest

    @property
    def splits(self) -> Any:
        if self._splits is None:
            if self.kind == "hf-stream":
                from spmkit.data.hf_stream import load_stream_splits

                self._splits = load_stream_splits(self.spec)
            else:
                from spmkit.data.hf import load_splits

                self._splits = load_splits(self.spec)
        return self._splits

    def classes(self, split: str = "train") -> list[str]:
        """Class names; for folders those of ``split``, for shards and Hugging Face data the dataset's."""
        if self.kind == "folder":
            from spmkit.data.imagenet import find_classes

            return find_classes(Path(self.spec) / split)
        if self.kind == "shards":
            from spmkit.data.shards import split_entry

            split_entry(self.manifest, Path(self.spec), split)  # the split must exist
            return list(self.manifest["classes"])
        from spmkit.data.hf import class_names, split_name

        split_name(self.splits, split, self.spec)
        if self.kind == "hf-stream":
            from spmkit.data.hf_stream import stream_class_names

            if self._stream_classes is None:  # may take a pass over the label column: once
                self._stream_classes = stream_class_names(self.splits, self.spec)
            return list(self._stream_classes)
        return class_names(self.splits, self.spec)

    def dataset(self, split: str, classes: list[str], transform: Callable[[Image.Image], Any] | None,
                unreadable: Policy, num_samples: int | None = None, need_length: bool = True) -> Dataset:
        """The split as items ``(image, target, n_skipped)``; targets index ``classes``.

        ``num_samples`` (the recipe's ``train_num_samples`` / ``val_num_samples``) is the split's length given
        by hand for a stream (shards, ``hf-stream:``); map-style data knows its length, and a different
        ``num_samples`` is logged and not used. ``need_length=False``: a stream of unknown length is
        accepted (for readers that count by reading)."""
        ds = self._dataset(split, classes, transform, unreadable, num_samples, need_length)
        from spmkit.data.stream import StreamDataset

        if num_samples is not None and not isinstance(ds, StreamDataset) and num_samples != len(ds):
            log.warning("%s [%s]: %s_num_samples=%d is not used: it gives the length of streamed data (shards, "
                        "hf-stream:), and this split's is known (%d samples)", self.spec, split, split,
                        num_samples, len(ds))
        return ds

    def _dataset(self, split: str, classes: list[str], transform: Callable[[Image.Image], Any] | None,
                 unreadable: Policy, num_samples: int | None, need_length: bool) -> Dataset:
        if self.kind == "folder":
            from spmkit.data.imagenet import ImageFolderDataset

            return ImageFolderDataset(self.spec, split, classes, transform=transform, unreadable=unreadable)
        own = self.classes(split)
        if own != list(classes)[: len(own)]:
            raise DataError(f"{self.spec} has the classes {own[:3]}... ({len(own)}), not those of the run "
                            f"({list(classes)[:3]}..., {len(classes)}).")
        if self.kind == "shards":
            from spmkit.data.shards import ShardDataset

            return ShardDataset(self.spec, split, self.manifest, transform=transform, unreadable=unreadable,
                                num_samples=num_samples)
        if self.kind == "hf-stream":
            from spmkit.data.hf_stream import HFStreamDataset

            return HFStreamDataset(self.splits, split, self.spec, transform=transform, unreadable=unreadable,
                                   num_samples=num_samples, need_length=need_length)
        from spmkit.data.hf import HFImageDataset

        return HFImageDataset(self.splits, split, self.spec, transform=transform, unreadable=unreadable)


def open_source(spec: str | Path) -> DataSource:
    """The :class:`DataSource` of ``spec`` (DataError when it names nothing readable)."""
    return DataSource(spec)
