"""``spmkit data check``: counts, classes and unreadable samples of any ``--data`` source, by decoding all of it."""

from __future__ import annotations

from typing import Any

from spmkit.data.sources import open_source
from spmkit.errors import DataError

#: unreadable samples named in the report (all are counted)
SHOWN = 20


def check(spec: str, splits: tuple[str, ...] = ("train", "val")) -> dict[str, Any]:
    """``{"source", "kind", "classes", "splits": {split: {"images", "readable", "unreadable",
    "per_class", "unreadable_examples"}}}``; every image is decoded once."""
    import logging

    source = open_source(spec)
    classes = source.classes("train" if "train" in splits else splits[0])
    report: dict[str, Any] = {"source": spec, "kind": source.kind, "num_classes": len(classes),
                              "classes": classes, "splits": {}}
    logger = logging.getLogger("spmkit.data")
    seen: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    logger.addHandler(handler)
    old_propagate = logger.propagate
    logger.propagate = False  # the report lists them; no log lines in between
    try:
        for split in splits:
            try:
                ds = source.dataset(split, classes, None, "leave_out", need_length=False)  # counts by reading
            except DataError as e:
                report["splits"][split] = {"error": str(e)}
                continue
            seen.clear()
            per_class = [0] * len(classes)
            readable, unreadable = 0, 0
            for image, target, skipped in (iter(ds) if _is_stream(ds) else (ds[i] for i in range(len(ds)))):
                unreadable += int(skipped)
                if image is not None:
                    readable += 1
                    if 0 <= target < len(per_class):
                        per_class[target] += 1
            report["splits"][split] = {
                "images": readable + unreadable, "readable": readable, "unreadable": unreadable,
                "per_class": dict(zip(classes, per_class)),
                "unreadable_examples": [m.removeprefix("skipping unreadable image: ") for m in seen[:SHOWN]],
            }
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate
    return report


def _is_stream(ds: Any) -> bool:
    from spmkit.data.stream import StreamDataset

    return isinstance(ds, StreamDataset)
