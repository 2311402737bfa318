"""Checks of a COCO annotation file before pycocotools indexes it, so that nothing is silently misread.

pycocotools keeps the last of two images with the same id, turns a NaN box into a full-image mask and
fails deep inside on a string box. Here every structural problem (a missing, non-numeric, non-finite or
negative box, an unknown image or category, duplicate image / annotation / category ids, ids that are
not integers) rejects the file up front, naming it and the first offending entries. Degenerate
segmentations (an empty list, a polygon of fewer than three points) are common in real data: those
annotations are left out of the training targets and counted (:attr:`CocoReport.degenerate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spmkit.errors import DataError

MAX_SHOWN = 3


@dataclass
class CocoReport:
    """What the checks found that is not an error: ids of annotations to leave out of the targets."""

    degenerate: set[int] = field(default_factory=set)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad_polygon(seg: Any) -> bool:
    """True for a polygon list that rasterises to nothing (or cannot be read as numbers)."""
    if not isinstance(seg, list) or not seg:
        return True
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(_is_num(v) for v in poly):
            return True
    return False


def _bad_rle(seg: dict) -> bool:
    size = seg.get("size")
    return not (isinstance(seg.get("counts"), (list, str)) and isinstance(size, list) and len(size) == 2
                and all(_is_int(v) and v >= 0 for v in size))


def check_coco(data: Any, ann_file: str | Path) -> CocoReport:
    """``DataError`` naming ``ann_file`` and the first bad entries, else what to leave out."""
    if not isinstance(data, dict):
        raise DataError(f"{ann_file} is not a COCO annotation file (its top level is not a JSON object).")
    problems: list[str] = []

    def bad(msg: str) -> None:
        problems.append(msg)

    def unique_id(seen: set[int], value: Any, what: str, where: str) -> None:
        """Record ``value`` as an id of ``what`` (image, category, annotation): an integer, listed once."""
        if not _is_int(value):
            bad(f"{where} has id {_short(value)} (expected an integer)")
        elif value in seen:
            bad(f"{what} id {value} is listed twice ({where})")
        else:
            seen.add(value)

    sections = {}
    for key in ("images", "annotations", "categories"):
        value = data.get(key, [] if key == "annotations" else None)
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise DataError(f"{ann_file}: '{key}' must be a list of objects (the COCO layout).")
        sections[key] = value

    image_ids: set[int] = set()
    for k, im in enumerate(sections["images"]):
        iid = im.get("id")
        unique_id(image_ids, iid, "image", f"images[{k}]")
        if not isinstance(im.get("file_name"), str) or not im.get("file_name"):
            bad(f"image id {_short(iid)} has no file_name")
        if not all(_is_int(im.get(k)) and im[k] > 0 for k in ("height", "width")):
            bad(f"image id {_short(iid)} has height {_short(im.get('height'))} and width {_short(im.get('width'))} "
                f"(expected positive integers)")

    cat_ids: set[int] = set()
    for k, cat in enumerate(sections["categories"]):
        cid = cat.get("id")
        unique_id(cat_ids, cid, "category", f"categories[{k}]")

    report = CocoReport()
    ann_ids: set[int] = set()
    for k, ann in enumerate(sections["annotations"]):
        aid = ann.get("id")
        name = f"annotation id {aid}" if _is_int(aid) else f"annotations[{k}]"
        unique_id(ann_ids, aid, "annotation", f"annotations[{k}]")
        if ann.get("image_id") not in image_ids or not _is_int(ann.get("image_id")):
            bad(f"{name} refers to image_id {_short(ann.get('image_id'))}, which is not in 'images'")
        if ann.get("category_id") not in cat_ids or not _is_int(ann.get("category_id")):
            bad(f"{name} has category_id {_short(ann.get('category_id'))}, which is not in 'categories'")
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(_is_num(v) for v in box):
            bad(f"{name} has bbox {_short(box)} (expected [x, y, width, height], four finite numbers)")
        elif box[2] < 0 or box[3] < 0:
            bad(f"{name} has a negative box size {_short(box)}")
        if "area" in ann and not _is_num(ann["area"]):
            bad(f"{name} has area {_short(ann['area'])} (expected a finite number)")
        if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd", 0), (bool, float)):
            bad(f"{name} has iscrowd {_short(ann.get('iscrowd'))} (expected 0 or 1)")
        if "segmentation" in ann:
            seg = ann["segmentation"]
            if isinstance(seg, dict):
                if _bad_rle(seg):
                    bad(f"{name} has a malformed RLE segmentation (expected counts and size [h, w])")
            elif not isinstance(seg, list):
                bad(f"{name} has segmentation {_short(seg)} (expected polygons or RLE)")
            elif _bad_polygon(seg) and _is_int(aid):
                report.degenerate.add(aid)
        if len(problems) > 50:
            break
    if problems:
        shown = "; ".join(problems[:MAX_SHOWN])
        n_more = len(problems) - MAX_SHOWN
        more = f" (and {n_more}{'+' if len(problems) > 50 else ''} more)" if n_more > 0 else ""
        raise DataError(f"{ann_file} has malformed COCO entries: {shown}{more}. Fix or remove them; nothing was "
                        f"trained on this file.")
    return report
