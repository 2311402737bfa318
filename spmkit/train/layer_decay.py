"""Layer-wise learning-rate decay (BEiT / timm): the lr of a parameter is scaled by ``decay ** (L - 1 - l)``,
where ``l`` is its layer in the Backbone's ``group_matcher(coarse=False)`` order (stem first, each block
one layer, the final norm and the classifier last) and ``L`` the number of layers, as timm's
``param_groups_layer_decay`` groups them. In a detector or segmentor the backbone is the first module with a
``group_matcher``; necks and heads count as the last layer (lr scale 1)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from spmkit.tasks.recipe import RecipeError


@dataclass(frozen=True)
class LayerDecay:
    """Per-parameter lr scales and the number of layer groups they come from."""

    decay: float
    scales: dict[str, float]
    num_groups: int


def _matched_module(model: nn.Module) -> tuple[str, nn.Module]:
    for name, module in model.named_modules():
        if callable(getattr(module, "group_matcher", None)):
            return name, module
    raise RecipeError(f"recipe: layer_decay needs a model with timm's group_matcher (an spmkit backbone, or a "
                      f"timm model); {type(model).__name__} has none. Remove layer_decay.")


def layer_decay_scales(model: nn.Module, decay: float) -> LayerDecay:
    """``LayerDecay`` of ``model``'s trainable parameters for ``decay`` (0 < decay <= 1)."""
    from timm.models import group_parameters

    prefix, body = _matched_module(model)
    layer_of = group_parameters(body, body.group_matcher(coarse=False), reverse=True)
    num = max(layer_of.values()) + 1 if layer_of else 1
    top = num - 1
    scales: dict[str, float] = {}
    lead = f"{prefix}." if prefix else ""
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        inner = name[len(lead):] if lead and name.startswith(lead) else (name if not lead else None)
        layer = layer_of.get(inner, top) if inner is not None else top
        scales[name] = decay ** (top - layer)
    return LayerDecay(decay, scales, num)
