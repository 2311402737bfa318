"""torchvision's Mask R-CNN and RetinaNet on a spmkit (or timm) backbone. Nothing here re-implements the
detectors: anchors, RPN, RoI heads, losses, post-processing and the resize / normalise / pad-to-32
batching all come from torchvision; this file only configures them."""

from __future__ import annotations

import inspect
from typing import Any, Literal, Sequence

from torch import nn
from torchvision.models.detection import MaskRCNN, RetinaNet
from torchvision.models.detection.faster_rcnn import FasterRCNN, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from spmkit.tasks.dense.backbone_fpn import BackboneFPN
from spmkit.tasks.dense.backbone_params import BackboneParamHints

DETECTORS = ("mask_rcnn", "retinanet")
BACKBONE_PATH = "backbone.body.body"  # detector.backbone (BackboneFPN) .body (MultiScaleFeatures) .body


class SpmMaskRCNN(BackboneParamHints, MaskRCNN):
    """torchvision's ``MaskRCNN`` plus the backbone's optimizer hints (state_dict keys are torchvision's)."""

    backbone_path = BACKBONE_PATH


class SpmRetinaNet(BackboneParamHints, RetinaNet):
    """torchvision's ``RetinaNet`` plus the backbone's optimizer hints (state_dict keys are torchvision's).

    Labels are 1..K with index 0 reserved as in torchvision's COCO models; focal loss never makes 0 a
    positive, and its (untrained) detections are dropped here.
    """

    backbone_path = BACKBONE_PATH

    def postprocess_detections(self, *args, **kwargs):
        dets = super().postprocess_detections(*args, **kwargs)
        return [{k: v[d["labels"] > 0] for k, v in d.items()} for d in dets]


def check_detector_kwargs(kind: str, kwargs: dict[str, Any]) -> None:
    """torchvision passes unknown keyword arguments on silently; refuse names no constructor declares."""
    chain = (MaskRCNN, FasterRCNN) if kind == "mask_rcnn" else (RetinaNet,)
    known = {n for c in chain + (GeneralizedRCNNTransform,) for n in inspect.signature(c.__init__).parameters}
    bad = sorted(set(kwargs) - known - {"self", "kwargs"})
    if bad:
        raise ValueError(f"{', '.join(bad)}: not an argument of torchvision's {chain[0].__name__}.")


def build_detector(
    backbone: nn.Module,
    kind: Literal["mask_rcnn", "retinanet"],
    num_classes: int,
    *,
    min_size: int = 800,
    max_size: int = 1333,
    image_mean: Sequence[float] = (0.485, 0.456, 0.406),
    image_std: Sequence[float] = (0.229, 0.224, 0.225),
    fpn_channels: int = 256,
    box_head_dim: int = 1024,
    mask_head_dim: int = 256,
    score_thresh: float = 0.05,
    detections_per_img: int = 100,
    **detector_kwargs: Any,
) -> nn.Module:
    """A detector for ``num_classes`` foreground classes (labels 1..K; torchvision's index 0 is background).

    Takes a list of float images in [0, 1]; in training also targets, and returns a loss dict; in eval
    returns per image ``boxes`` (xyxy, input image pixels), ``labels``, ``scores`` (and ``masks``). Head
    widths default to torchvision's; ``detector_kwargs`` go to torchvision's constructor.
    """
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}.")
    check_detector_kwargs(kind, detector_kwargs)
    common: dict[str, Any] = dict(min_size=min_size, max_size=max_size, image_mean=list(image_mean),
                                  image_std=list(image_std), **detector_kwargs)
    c = fpn_channels
    if kind == "mask_rcnn":
        return SpmMaskRCNN(
            BackboneFPN(backbone, out_channels=c, extra="maxpool"), None,
            box_score_thresh=score_thresh, box_detections_per_img=detections_per_img,
            box_head=TwoMLPHead(c * 7 * 7, box_head_dim),
            box_predictor=FastRCNNPredictor(box_head_dim, num_classes + 1),
            mask_head=MaskRCNNHeads(c, [mask_head_dim] * 4, 1),
            mask_predictor=MaskRCNNPredictor(mask_head_dim, mask_head_dim, num_classes + 1),
            **common,
        )
    return SpmRetinaNet(
        BackboneFPN(backbone, out_channels=c, extra="p6p7"), num_classes + 1,
        score_thresh=score_thresh, detections_per_img=detections_per_img, **common,
    )
