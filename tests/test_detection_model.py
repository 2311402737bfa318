"""Backbone + FPN around torchvision's Mask R-CNN and RetinaNet: feature strides, losses, outputs."""

from __future__ import annotations

import pytest
import timm
import torch

from spmkit.tasks.dense.backbone_fpn import BackboneFPN
from spmkit.tasks.dense.features import MultiScaleFeatures
from spmkit.tasks.detection.model import SpmMaskRCNN, SpmRetinaNet
from spmkit.tasks.detection import DetectionRecipe, build_detector_model

SMALL = dict(fpn_channels=32, box_head_dim=64, mask_head_dim=16, min_size=64, max_size=96,
             detector_kwargs={"rpn_pre_nms_top_n_train": 100, "rpn_post_nms_top_n_train": 50,
                              "box_batch_size_per_image": 32})



def _backbone():
    return timm.create_model("test_resnet", pretrained=False)


def test_multiscale_features_pick_strides_4_to_32():
    feats = MultiScaleFeatures(_backbone())
    out = feats(torch.randn(1, 3, 96, 64))
    assert [tuple(o.shape[-2:]) for o in out] == [(24, 16), (12, 8), (6, 4), (3, 2)]
    assert [o.shape[1] for o in out] == feats.channels == [32, 48, 192, 96]
    # also from a timm features_only model (the list API)
    fo = MultiScaleFeatures(timm.create_model("test_resnet", features_only=True))
    assert [o.shape[1] for o in fo(torch.randn(1, 3, 64, 64))] == [32, 48, 192, 96]


def test_backbone_without_stride_4_is_refused():
    with pytest.raises(ValueError, match=r"no feature map at stride\(s\) \[4, 8, 32\]"):
        MultiScaleFeatures(timm.create_model("test_vit", pretrained=False))


@pytest.mark.parametrize("extra, keys, strides", [
    ("maxpool", ["0", "1", "2", "3", "pool"], [4, 8, 16, 32, 64]),
    ("p6p7", ["0", "1", "2", "p6", "p7"], [8, 16, 32, 64, 128]),
])
def test_fpn_levels(extra, keys, strides):
    fpn = BackboneFPN(_backbone(), out_channels=24, extra=extra)
    out = fpn(torch.randn(1, 3, 256, 128))
    assert list(out) == keys
    assert [256 // o.shape[-2] for o in out.values()] == strides
    assert all(o.shape[1] == 24 for o in out.values())


def _targets():
    masks = torch.zeros(1, 70, 90, dtype=torch.uint8)
    masks[0, 10:40, 20:60] = 1
    return [
        {"boxes": torch.tensor([[20.0, 10.0, 60.0, 40.0]]), "labels": torch.tensor([2]), "masks": masks},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
         "masks": torch.zeros(0, 60, 50, dtype=torch.uint8)},  # an image without annotations
    ]


@pytest.mark.parametrize("detector", ["mask_rcnn", "retinanet"])
def test_detector_trains_and_predicts_at_odd_sizes(detector):
    torch.manual_seed(0)
    kw = SMALL if detector == "mask_rcnn" else {**SMALL, "detector_kwargs": {}}
    model = build_detector_model(_backbone(), DetectionRecipe(detector=detector, **kw), num_classes=3)
    assert isinstance(model, SpmMaskRCNN if detector == "mask_rcnn" else SpmRetinaNet)
    images = [torch.rand(3, 70, 90), torch.rand(3, 60, 50)]
    losses = model(images, _targets())
    expected = ({"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
                if detector == "mask_rcnn" else {"classification", "bbox_regression"})
    assert set(losses) == expected and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    body = model.backbone.body.body
    assert all(p.grad is not None for p in body.parameters() if p.requires_grad)
    model.eval()
    if detector == "mask_rcnn":
        model.roi_heads.score_thresh = 0.0
    else:
        model.score_thresh = 0.0
    with torch.no_grad():
        preds = model(images)
    for pred, img in zip(preds, images):
        assert pred["boxes"].shape[1] == 4 and len(pred["boxes"]) > 0
        # boxes come back in the input image's coordinates
        assert float(pred["boxes"][:, 2].max()) <= img.shape[2] + 1e-3
        assert set(pred["labels"].tolist()) <= {1, 2, 3}
        if detector == "mask_rcnn":
            assert pred["masks"].shape[1:] == (1, *img.shape[1:])
    # 3 foreground classes + torchvision's background
    if detector == "mask_rcnn":
        assert model.roi_heads.box_predictor.cls_score.out_features == 4
    else:
        assert model.head.classification_head.num_classes == 4


def test_optimizer_hints_use_full_parameter_names():
    class WithHints(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _backbone()
            self.pos = torch.nn.Parameter(torch.zeros(3))
            self.feature_info = self.inner.feature_info

        def forward_intermediates(self, x, **kw):
            return self.inner.forward_intermediates(x, **kw)

        def no_weight_decay(self):
            return {"pos"}

        def param_lr_scales(self):
            return {"pos": 0.01}

    model = build_detector_model(WithHints(), DetectionRecipe(**SMALL), num_classes=2)
    names = dict(model.named_parameters())
    assert model.no_weight_decay() == {"backbone.body.body.pos"} and "backbone.body.body.pos" in names
    assert model.param_lr_scales() == {"backbone.body.body.pos": 0.01}
