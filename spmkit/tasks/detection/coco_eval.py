"""COCO box / mask AP with pycocotools' ``COCOeval``: detections in, the full 12-number summaries out."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

#: COCOeval's ``stats`` order for bbox and segm.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def detections_to_coco(
    image_id: int,
    prediction: dict[str, torch.Tensor],
    label_to_cat: dict[int, int],
    mask_threshold: float = 0.5,
) -> list[dict]:
    """One image's torchvision-style prediction (``boxes`` xyxy, ``scores``, ``labels``, optional ``masks``
    (N, 1, H, W) probabilities) as COCO result dicts (``bbox`` xywh, ``segmentation`` RLE)."""
    from pycocotools import mask as mask_util

    boxes = prediction["boxes"].detach().float().cpu()
    scores = prediction["scores"].detach().float().cpu().tolist()
    labels = prediction["labels"].detach().cpu().tolist()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist() if len(boxes) else []
    rles = None
    if "masks" in prediction:
        masks = (prediction["masks"].detach().cpu() > mask_threshold).squeeze(1).numpy().astype(np.uint8)
        rles = [mask_util.encode(np.asfortranarray(m)) for m in masks]
        for r in rles:
            r["counts"] = r["counts"].decode("ascii")
    out = []
    for i, (b, s, l) in enumerate(zip(xywh, scores, labels)):
        if l not in label_to_cat:
            continue  # background or unknown label
        d = {"image_id": int(image_id), "category_id": int(label_to_cat[l]), "bbox": [float(v) for v in b], "score": float(s)}
        if rles is not None:
            d["segmentation"] = rles[i]
        out.append(d)
    return out


class CocoEvaluator:
    """Collects COCO result dicts; ``summarize()`` runs COCOeval per IoU type."""

    def __init__(self, coco_gt, iou_types: tuple[str, ...] = ("bbox", "segm")) -> None:
        self.coco_gt = coco_gt
        self.iou_types = tuple(iou_types)
        self.results: list[dict] = []
        self.image_ids: set[int] = set()

    def update(self, image_ids: list[int], results: list[dict]) -> None:
        self.image_ids.update(int(i) for i in image_ids)
        self.results.extend(results)

    def summarize(self) -> dict[str, dict]:
        """``{iou_type: {"stats": [12 floats], "AP": ..., "AP50": ..., ..., "text": COCOeval's printout}}``.

        With no detections at all every number is 0.0 (COCOeval cannot load an empty result list).
        """
        from pycocotools.cocoeval import COCOeval

        out: dict[str, dict] = {}
        img_ids = sorted(self.image_ids) or sorted(self.coco_gt.getImgIds())
        for iou_type in self.iou_types:
            # loadRes mutates the dicts and, given a "bbox", overwrites "segmentation" with the box:
            # hand each IoU type its own copies holding only its geometry.
            drop = "bbox" if iou_type == "segm" else "segmentation"
            need = "segmentation" if iou_type == "segm" else "bbox"
            results = [{k: v for k, v in r.items() if k != drop} for r in self.results if need in r]
            if not results:
                stats = [0.0] * len(STAT_NAMES)
                text = "no detections"
            else:
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    coco_dt = self.coco_gt.loadRes(results)
                    ev = COCOeval(self.coco_gt, coco_dt, iou_type)
                    ev.params.imgIds = img_ids
                    ev.evaluate()
                    ev.accumulate()
                    ev.summarize()
                stats = [float(s) for s in ev.stats]  # -1: no ground truth in that area range
                text = buf.getvalue()
            out[iou_type] = {"stats": stats, **dict(zip(STAT_NAMES, stats)), "text": text}
        return out
