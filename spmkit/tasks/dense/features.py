"""A backbone's multi-scale NCHW feature maps, picked by stride from its ``feature_info``.

Works with any model that has timm's backbone API: spmkit ``Backbone`` or a timm model
(``forward_intermediates``), or a timm ``features_only`` model (``forward`` returns the list).
"""

from __future__ import annotations

import torch
from torch import nn


def feature_info_list(model: nn.Module) -> list[dict]:
    """``feature_info`` as a list of dicts (timm's ``FeatureInfo`` object or a plain list)."""
    info = model.feature_info
    if hasattr(info, "get_dicts"):
        return [dict(d) for d in info.get_dicts()]
    return [dict(d) for d in info]


class MultiScaleFeatures(nn.Module):
    """Runs ``model`` and returns its maps at ``reductions`` (default strides 4, 8, 16, 32), finest first.

    The classifier head is removed (``reset_classifier(0)``) so no parameter goes unused. With
    ``forward_intermediates`` the last map gets the backbone's final norm when the last stage is used
    (``norm=True``, timm semantics), so a classification checkpoint's final norm is put to work.
    """

    def __init__(self, model: nn.Module, reductions: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        super().__init__()
        info = feature_info_list(model)
        by_red = {}
        for i, d in enumerate(info):
            by_red.setdefault(int(d["reduction"]), i)  # first stage reaching a stride
        missing = [r for r in reductions if r not in by_red]
        if missing:
            have = [int(d["reduction"]) for d in info]
            raise ValueError(
                f"the backbone has no feature map at stride(s) {missing}: its stages have strides {have}. "
                f"Dense heads need strides {list(reductions)}."
            )
        self.indices = [by_red[r] for r in reductions]
        self.reductions = tuple(reductions)
        self.channels = [int(info[i]["num_chs"]) for i in self.indices]
        self.use_intermediates = hasattr(model, "forward_intermediates")
        if self.use_intermediates:
            self.norm_last = self.indices[-1] == len(info) - 1
            if hasattr(model, "reset_classifier"):
                model.reset_classifier(0)
        self.body = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.use_intermediates:
            feats = self.body.forward_intermediates(
                x, indices=self.indices, norm=self.norm_last, intermediates_only=True
            )
            return list(feats)
        feats = self.body(x)
        if isinstance(feats, dict):
            feats = list(feats.values())
        return [feats[i] for i in self.indices]
