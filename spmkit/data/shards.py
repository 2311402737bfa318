"""Webdataset shard folders: ``train-*.tar`` and ``val-*.tar``, read with the ``webdataset`` library.

A sample is ``<key>.<image suffix>`` (encoded bytes, see :data:`~spmkit.data.decode.IMAGE_SUFFIXES`) and
``<key>.cls`` (the class index as text). ``spmkit data pack`` also writes :data:`MANIFEST`: the class names
(those of the folder it was packed from, so a run on the shards has the folder's classes) and the sample
count of every shard. A folder without it (shards made by other tools) is scanned once when opened: the
counts are read from the shards and the classes are named by their indices.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image

from spmkit.data.decode import IMAGE_SUFFIXES, decode_image
from spmkit.data.stream import Raw, StreamDataset, planned_length
from spmkit.data.unreadable import Policy
from spmkit.errors import DataError

log = logging.getLogger("spmkit.data")

MANIFEST = "spmkit-shards.json"
FORMAT = "spmkit-wds"
#: split name -> the shard-name prefix
SPLITS = ("train", "val")


def _wds():
    try:
        import webdataset
    except ImportError:
        raise DataError("reading webdataset shards needs the webdataset package: pip install 'spmkit[data]'.") from None
    return webdataset


def is_shard_folder(path: Path) -> bool:
    """A folder with :data:`MANIFEST` or with ``train-*.tar`` / ``val-*.tar`` shards."""
    return path.is_dir() and ((path / MANIFEST).is_file() or any(path.glob("train-*.tar"))
                              or any(path.glob("val-*.tar")))


def read_samples(path: Path) -> Iterator[Raw]:
    """``(key, image bytes or None, class index or -1)`` for every sample of one shard, in order."""
    wds = _wds()
    for sample in wds.tarfile_samples([{"url": str(path)}]):
        key = f"{path.name}:{sample.get('__key__', '?')}"
        payload = next((sample[s] for s in IMAGE_SUFFIXES if s in sample), None)
        try:
            target = int(sample["cls"].decode().strip()) if "cls" in sample else -1
        except (ValueError, UnicodeDecodeError):
            target = -1
        yield key, payload, target


def load_manifest(root: Path) -> dict[str, Any]:
    """The folder's manifest; without one, what a scan of its shards finds (counts, numbered classes)."""
    path = root / MANIFEST
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{path} is not readable JSON ({e}); re-pack the folder with spmkit data pack.") from None
        if doc.get("format") != FORMAT or not isinstance(doc.get("splits"), dict) \
                or not isinstance(doc.get("classes"), list):
            raise DataError(f"{path} is not an spmkit shard manifest (format {FORMAT!r} with classes and splits).")
        for split, entry in doc["splits"].items():
            for shard in entry.get("shards", []):
                if not (root / shard["file"]).is_file():
                    raise DataError(f"{root}: the manifest lists {shard['file']} ({split}), which is missing.")
        return doc
    return scan(root)


def scan(root: Path) -> dict[str, Any]:
    """A manifest made by reading every shard (for shards that ``spmkit data pack`` did not write)."""
    splits: dict[str, Any] = {}
    top = -1
    for split in SPLITS:
        shards = []
        for path in sorted(root.glob(f"{split}-*.tar")):
            n = 0
            for _, _, target in read_samples(path):
                n += 1
                top = max(top, target)
            shards.append({"file": path.name, "count": n})
        if shards:
            splits[split] = {"count": sum(s["count"] for s in shards), "shards": shards}
    if not splits:
        raise DataError(f"{root} has no webdataset shards (train-*.tar, val-*.tar).")
    log.info("%s has no %s: scanned its shards (%d classes by index)", root, MANIFEST, top + 1)
    return {"format": FORMAT, "version": 1, "classes": [str(i) for i in range(top + 1)], "splits": splits,
            "scanned": True}


def split_entry(manifest: dict[str, Any], root: Path, split: str) -> dict[str, Any]:
    entry = manifest["splits"].get(split)
    if not entry or not entry.get("shards"):
        raise DataError(f"{root} has no {split} shards ({split}-*.tar); spmkit data pack writes train and val.")
    return entry


class ShardDataset(StreamDataset):
    """One split of a shard folder as a stream (see ``spmkit.data.stream`` for order, DDP and resume).

    Every shard's count is known (the manifest or the scan); ``num_samples`` (the recipe's
    ``train_num_samples`` / ``val_num_samples``) replaces their sum as the split's length, as timm's does."""

    def __init__(self, root: str | Path, split: str, manifest: dict[str, Any],
                 transform: Callable[[Image.Image], Any] | None = None, unreadable: Policy = "substitute",
                 num_samples: int | None = None) -> None:
        self.root = Path(root)
        entry = split_entry(manifest, self.root, split)
        self.files = [str(self.root / s["file"]) for s in entry["shards"]]
        counts = [int(s["count"]) for s in entry["shards"]]
        where, option = f"{self.root}/{split}-*.tar", f"{split}_num_samples"
        super().__init__(counts, where, transform, unreadable,
                         count=planned_length(sum(counts), num_samples, where, option),
                         length_option=option if num_samples is not None else None)

    def raw_samples(self, shard: int) -> Iterator[Raw]:
        try:
            yield from read_samples(Path(self.files[shard]))
        except Exception as e:  # noqa: BLE001 - tarfile / webdataset errors of a damaged shard
            log.warning("shard %s stops early: %s: %s", self.files[shard], type(e).__name__, str(e)[:200])

    def decode(self, payload: Any, key: str) -> Image.Image:
        return decode_image(payload, key)
