"""A wrapped backbone's optimizer hints (no-decay names, lr scales) as full parameter names of the
wrapping model, which is what the engine's parameter grouping reads."""

from __future__ import annotations

from torch import nn


def prefixed_no_weight_decay(backbone: nn.Module, prefix: str) -> set[str]:
    """The backbone's ``no_weight_decay()`` names (position tables, class tokens) under ``prefix``.

    spmkit returns full names; timm models return local names (``pos_embed``) or patterns, matched here
    against every parameter name that ends with them.
    """
    if not hasattr(backbone, "no_weight_decay"):
        return set()
    names = [n for n, _ in backbone.named_parameters()]
    out: set[str] = set()
    for n in backbone.no_weight_decay():
        if any(c in n for c in "*?["):
            out.add(prefix + n)
        out.update(prefix + full for full in names if full == n or full.endswith("." + n))
    return out


def prefixed_lr_scales(backbone: nn.Module, prefix: str) -> dict[str, float]:
    """The backbone's ``param_lr_scales()`` (e.g. DTM offsets at 0.01x) under ``prefix``."""
    if not hasattr(backbone, "param_lr_scales"):
        return {}
    return {prefix + k: float(v) for k, v in backbone.param_lr_scales().items()}


class BackboneParamHints:
    """Mixin for a model holding its backbone at ``backbone_path`` (dotted): exposes the two hints."""

    backbone_path: str = ""

    def _wrapped_backbone(self) -> nn.Module:
        m = self
        for part in self.backbone_path.split("."):
            m = getattr(m, part)
        return m

    def no_weight_decay(self) -> set[str]:
        return prefixed_no_weight_decay(self._wrapped_backbone(), self.backbone_path + ".")

    def param_lr_scales(self) -> dict[str, float]:
        return prefixed_lr_scales(self._wrapped_backbone(), self.backbone_path + ".")
