"""Optimizer and schedule from a recipe, through timm's factories.

Parameter groups: no weight decay on 1-D parameters (norms), biases and the model's
``no_weight_decay()`` names (position tables, class tokens; exact names or fnmatch patterns);
a per-parameter lr multiplier from ``model.param_lr_scales()`` (times the layer-decay scale when the recipe
sets ``layer_decay``: ``spmkit.train.layer_decay``) becomes the group's ``lr_scale``, which timm's
schedulers apply at every update.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import torch
from torch import nn

from spmkit.tasks.recipe import RecipeError, TrainRecipe
from spmkit.errors import shorten


def param_groups(model: nn.Module, weight_decay: float,
                 layer_scales: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Group trainable parameters by (decay or not, lr scale); ``layer_scales`` multiply the lr scales."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    scales: dict[str, float] = dict(model.param_lr_scales()) if hasattr(model, "param_lr_scales") else {}
    groups: dict[tuple[bool, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = (p.ndim <= 1 or name.endswith(".bias") or name in skip
                    or any(fnmatch.fnmatchcase(name, pat) for pat in skip if any(c in pat for c in "*?[")))
        scale = float(scales.get(name, 1.0)) * (layer_scales.get(name, 1.0) if layer_scales else 1.0)
        key = (not no_decay, scale)
        if key not in groups:
            groups[key] = {"params": [], "param_names": [], "weight_decay": weight_decay if key[0] else 0.0,
                           "lr_scale": scale}
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def create_optimizer(model: nn.Module, recipe: TrainRecipe, lr: float) -> torch.optim.Optimizer:
    from timm.optim import create_optimizer_v2

    layer_scales = None
    if getattr(recipe, "layer_decay", None) is not None:
        from spmkit.train.layer_decay import layer_decay_scales

        layer_scales = layer_decay_scales(model, recipe.layer_decay).scales
    groups = param_groups(model, recipe.weight_decay, layer_scales)
    for g in groups:  # timm's optimizers do not know the names; keep them out of the state dict
        g.pop("param_names")
    kwargs: dict[str, Any] = {}
    if recipe.opt_eps is not None:
        kwargs["eps"] = recipe.opt_eps
    if recipe.opt_betas is not None:
        kwargs["betas"] = recipe.opt_betas
    first = next((p for g in groups for p in g["params"]), None)
    try:
        if first is not None:
            kwargs.update(kernel_kwargs(recipe, first.device, first.dtype, kwargs))
        return create_optimizer_v2(groups, opt=recipe.opt, lr=lr, weight_decay=recipe.weight_decay,
                                   momentum=recipe.momentum, **kwargs)
    except (ValueError, AssertionError, KeyError) as err:  # timm's word for an unknown name or bad setting
        raise RecipeError(f"recipe: optimizer {shorten(recipe.opt)} cannot be created: "
                          f"{shorten(str(err) or type(err).__name__, 300, quote=False)}") from None


def kernel_kwargs(recipe: TrainRecipe, device: torch.device, dtype: torch.dtype,
                  kwargs: dict[str, Any]) -> dict[str, Any]:
    """The optimizer keywords of ``recipe.opt_impl`` (see the recipe field) for parameters on ``device``."""
    impl = getattr(recipe, "opt_impl", "auto")
    if impl == "loop":
        return {"foreach": False}
    if impl == "foreach":
        return {"foreach": True}
    if fused_works(recipe.opt, device, dtype, recipe.momentum, kwargs):
        return {"fused": True}
    if impl == "fused":
        raise RecipeError(f"recipe: opt_impl fused: optimizer {shorten(recipe.opt)} does not take fused kernels "
                          f"for {dtype} parameters on {device.type} with this torch ({torch.__version__}); "
                          f"use opt_impl=auto (fused where it works), foreach or loop.")
    return {}


_FUSED: dict[tuple[Any, ...], bool] = {}


def fused_works(opt: str, device: torch.device, dtype: torch.dtype, momentum: float,
                kwargs: dict[str, Any]) -> bool:
    """Whether timm's ``opt`` takes ``fused=True`` here: one real step on a tiny tensor (kept per setting).

    Asked of the optimizer, not of a torch version: which optimizers and devices have fused kernels changes
    between releases (CPU ones came in torch 2.4), and an optimizer class that does not know ``fused``
    raises or ignores it (then its parameter groups do not say ``fused: True``)."""
    key = (opt.lower(), device.type, device.index, dtype, momentum, tuple(sorted(kwargs.items())))
    if key not in _FUSED:
        from timm.optim import create_optimizer_v2

        ok = False
        try:
            p = torch.zeros(2, 2, device=device, dtype=dtype, requires_grad=True)
            o = create_optimizer_v2([p], opt=opt, lr=1e-3, weight_decay=0.0, momentum=momentum, fused=True,
                                    **kwargs)
            p.grad = torch.ones_like(p)
            o.step()
            ok = bool(o.param_groups[0].get("fused")) and bool(torch.isfinite(p).all())
        except Exception:  # noqa: BLE001 - TypeError / RuntimeError / ValueError: no fused kernels here
            ok = False
        _FUSED[key] = ok
    return _FUSED[key]


def optimizer_impl(optimizer: torch.optim.Optimizer) -> str:
    """``fused``, ``foreach`` or ``loop``: what ``optimizer`` runs (for the run's summary)."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    if group.get("fused"):
        return "fused"
    foreach = group.get("foreach")
    if foreach is None:  # torch's default: multi-tensor when every parameter is on a CUDA device
        params = group.get("params") or []
        foreach = bool(params) and all(p.device.type == "cuda" for p in params)
    return "foreach" if foreach else "loop"


def create_scheduler(optimizer: torch.optim.Optimizer, recipe: TrainRecipe, updates_per_epoch: int):
    """A timm scheduler stepped per optimizer update (``step_update``) and per epoch (``step``)."""
    from timm.scheduler import create_scheduler_v2

    try:
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=recipe.sched, num_epochs=recipe.epochs, decay_milestones=recipe.decay_milestones,
            decay_rate=recipe.decay_rate, min_lr=recipe.min_lr, warmup_lr=recipe.warmup_lr,
            warmup_epochs=recipe.warmup_epochs, cooldown_epochs=recipe.cooldown_epochs,
            step_on_epochs=False, updates_per_epoch=updates_per_epoch,
        )
    except (ValueError, AssertionError, KeyError) as err:
        raise RecipeError(f"recipe: schedule {shorten(recipe.sched)} cannot be created: "
                          f"{shorten(str(err) or type(err).__name__, 300, quote=False)}") from None
    return scheduler
