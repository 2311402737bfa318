"""Streamed Hugging Face datasets: ``hf-stream:NAME[:CONFIG]`` (the hub, read as it goes, nothing cached) or
``hf-stream:FOLDER`` (a local folder of parquet files), opened with ``datasets.load_dataset(...,
streaming=True)`` and read through :class:`~spmkit.data.stream.StreamDataset`'s plan.

The columns and splits are found as for ``hf:`` (``spmkit.data.hf``). The stream's shards
(``IterableDataset.num_shards``, e.g. its parquet files) are the plan's shards: every (process, loader
worker) reads its own shards through ``IterableDataset.shard`` -- or, with fewer shards than readers, every
reader reads all of them and keeps every ``readers``-th sample -- so DDP processes and workers read disjoint
parts and validation scores every sample once. A split's length (the steps of an epoch) is the dataset
info's ``num_examples``; for a local parquet folder it is read from the parquet footers; the recipe's
``train_num_samples`` / ``val_num_samples`` give it by hand (timm's ``--train-num-samples``). A stream whose
length is known no way is refused with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image

from spmkit.data.decode import decode_image
from spmkit.data.hf import _datasets, columns, split_name
from spmkit.data.stream import Raw, StreamDataset, planned_length
from spmkit.data.unreadable import Policy
from spmkit.errors import DataError

log = logging.getLogger("spmkit.data")

PREFIX = "hf-stream:"
#: rows fetched from the stream at a time (undecoded)
READ_BATCH = 64


def _target(spec: str) -> tuple[str, str | None, Path | None]:
    """``(name, config, local folder or None)`` of ``hf-stream:...``."""
    rest = spec[len(PREFIX):]
    if not rest:
        raise DataError(f"{spec!r}: give hf-stream:NAME, hf-stream:NAME:CONFIG (a Hugging Face dataset name) "
                        f"or hf-stream:FOLDER (a local folder of parquet files).")
    if Path(rest).is_dir():
        return rest, None, Path(rest)
    name, _, config = rest.partition(":")
    return name, config or None, None


def load_stream_splits(spec: str) -> Any:
    """The ``IterableDatasetDict`` of ``hf-stream:...``; DataError with the reason else."""
    ds = _datasets()
    name, config, local = _target(spec)
    if local is not None:
        if not any(local.rglob("*.parquet")):
            raise DataError(f"{spec}: {local} holds no parquet files (hf-stream: streams a hub dataset or a "
                            f"local folder of parquet files; read a save_to_disk folder with --data {local}).")
        try:
            return ds.load_dataset("parquet", data_dir=str(local), streaming=True)
        except Exception as e:  # noqa: BLE001 - the datasets library raises many types
            raise DataError(f"cannot stream {local} as a Hugging Face dataset: {type(e).__name__}: "
                            f"{str(e)[:300]}") from None
    try:
        return ds.load_dataset(name, config, streaming=True)
    except Exception as e:  # noqa: BLE001 - hub, network and resolution errors come in many types
        detail = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise DataError(
            f"cannot stream the Hugging Face dataset {name!r}{f' (config {config!r})' if config else ''}: "
            f"{detail}. Streaming reads the hub as it goes, so it needs network access; offline, use "
            f"hf:NAME (the local cache) or a local parquet folder.") from None


def split_length(splits: Any, key: str, spec: str) -> int | None:
    """Samples of split ``key``: the dataset info's ``num_examples``, else (a local folder) the row counts of
    its parquet files' footers, else ``None``."""
    info_splits = getattr(getattr(splits[key], "info", None), "splits", None) or {}
    entry = info_splits.get(key) if hasattr(info_splits, "get") else None
    if entry is not None and getattr(entry, "num_examples", 0):
        return int(entry.num_examples)
    _, _, local = _target(spec)
    if local is None:
        return None
    import pyarrow.parquet as pq

    builder = _datasets().load_dataset_builder("parquet", data_dir=str(local))
    files = (builder.config.data_files or {}).get(key) or []
    try:
        return sum(pq.read_metadata(str(f)).num_rows for f in files) if files else None
    except Exception as e:  # noqa: BLE001 - a damaged footer
        raise DataError(f"{spec} [{key}]: cannot read the parquet footers for the row count: "
                        f"{type(e).__name__}: {str(e)[:200]}") from None


def stream_class_names(splits: Any, spec: str) -> list[str]:
    """Class names of the training split: the ClassLabel names, else ``0..max(label)`` (one pass over the
    label column)."""
    train = splits[split_name(splits, "train", spec)]
    _need_features(train, spec)
    _, label, names = columns(train, spec)
    if names is not None:
        return names
    top = -1
    for batch in train.select_columns([label]).iter(batch_size=4096):
        top = max([top, *(int(v) for v in batch[label] if v is not None)])
    return [str(i) for i in range(top + 1)]


def _need_features(data: Any, spec: str) -> None:
    if getattr(data, "features", None) is None:
        raise DataError(f"{spec}: the stream does not declare its features, so its image and label columns are "
                        f"unknown (hf-stream: needs a dataset with features, e.g. parquet written by datasets).")


class HFStreamDataset(StreamDataset):
    """One split of a streamed Hugging Face dataset (see ``spmkit.data.stream`` for order, DDP and resume).

    ``num_samples`` (``train_num_samples`` / ``val_num_samples``) is the split's length given by hand; it
    replaces the dataset info's. ``need_length=False`` (a reader that counts by reading, ``data check``)
    accepts a stream of unknown length."""

    def __init__(self, splits: Any, split: str, spec: str, transform: Callable[[Image.Image], Any] | None = None,
                 unreadable: Policy = "substitute", num_samples: int | None = None,
                 need_length: bool = True) -> None:
        ds = _datasets()
        key = split_name(splits, split, spec)
        data = splits[key]
        _need_features(data, spec)
        self.image_col, self.label_col, _ = columns(data, spec)
        data = data.cast_column(self.image_col, ds.Image(decode=False)).select_columns(
            [self.image_col, self.label_col])
        n = int(getattr(data, "num_shards", None) or getattr(data, "n_shards", 1) or 1)
        self.parts = n if n > 1 and hasattr(data, "shard") else 1  # capability probe: IterableDataset.shard
        self.data = data
        where, option = f"{spec} [{key}]", f"{split}_num_samples"
        count = planned_length(split_length(splits, key, spec), num_samples, where, option)
        if count is None and need_length:
            raise DataError(
                f"{where} does not say how many samples it has (its dataset info gives no num_examples), "
                f"so the steps of an epoch and each process's share are not defined. Give it by hand with "
                f"--set {option}=N (a recipe field; validation still scores every sample it reads), use "
                f"hf:NAME (the cached copy, whose length is known) or download its parquet files and give "
                f"hf-stream:FOLDER.")
        super().__init__([None] * self.parts, where, transform, unreadable, count=count or 0,
                         length_option=option if num_samples is not None else None)

    def raw_samples(self, shard: int) -> Iterator[Raw]:
        part = self.data.shard(num_shards=self.parts, index=shard, contiguous=True) if self.parts > 1 else self.data
        j = 0
        try:
            # ``iter`` rather than ``__iter__``: inside a loader worker the latter would split the shards among
            # the workers again (the plan has already given this reader its shard)
            for batch in part.iter(batch_size=READ_BATCH):
                for cell, target in zip(batch[self.image_col], batch[self.label_col]):
                    key = f"{self.where} shard {shard} row {j}"
                    j += 1
                    yield key, (cell or None), (-1 if target is None else int(target))
        except Exception as e:  # noqa: BLE001 - network / parquet errors of a damaged or vanished shard
            log.warning("%s shard %d stops early after %d rows: %s: %s", self.where, shard, j, type(e).__name__,
                        str(e)[:200])

    def decode(self, payload: Any, key: str) -> Image.Image:
        data = payload.get("bytes")
        path = payload.get("path")
        if data is None and path and Path(path).is_file():  # stored as a local path only
            data = Path(path).read_bytes()
        return decode_image(data, key + (f" ({path})" if path else ""))
