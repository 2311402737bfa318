"""torchvision's Mask R-CNN and RetinaNet on a spmkit (or timm) backbone. Nothing here re-implements the
detectors: anchors, RPN, RoI heads, losses, post-processing and the resize/normalise/pad-to-32 batching
all come from torchvision."""

from __future__ import annotations

from typing import Literal, Sequence

from torch import nn
from torchvision.models.detection import MaskRCNN, RetinaNet

from spmkit.dense.backbone_fpn import BackboneFPN

DETECTORS = ("mask_rcnn", "retinanet")


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
    **detector_kwargs,
) -> nn.Module:
    """A detector for ``num_classes`` foreground classes (labels 1..K; torchvision's index 0 is background).

    Takes a list of float images in [0, 1]; in training also targets, and returns a loss dict; in eval
    returns per image ``boxes`` (xyxy, input image pixels), ``labels``, ``scores`` (and ``masks``).
    ``detector_kwargs`` go to torchvision's constructor (e.g. ``box_detections_per_img``).
    """
    common = dict(
        min_size=min_size,
        max_size=max_size,
        image_mean=list(image_mean),
        image_std=list(image_std),
        **detector_kwargs,
    )
    if kind == "mask_rcnn":
        return MaskRCNN(BackboneFPN(backbone, out_channels=fpn_channels, extra="maxpool"), num_classes + 1, **common)
    if kind == "retinanet":
        return RetinaNet(BackboneFPN(backbone, out_channels=fpn_channels, extra="p6p7"), num_classes + 1, **common)
    raise ValueError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}.")
