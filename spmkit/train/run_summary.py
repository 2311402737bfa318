"""The start-up block of a training run: model, cost, data, device, recipe changes and the run folder.

Printed before the first step and saved with the run (``train.log`` and ``run.json``), so a log read
hours later says what was trained, on what, and how.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from spmkit.tasks.recipe import TrainRecipe


def recipe_changes(recipe: TrainRecipe) -> dict[str, tuple[Any, Any]]:
    """Fields whose resolved value differs from the recipe class's default: ``{field: (default, value)}``."""
    defaults = type(recipe)().model_dump(mode="json")
    current = recipe.model_dump(mode="json")
    return {k: (defaults.get(k), v) for k, v in current.items() if defaults.get(k) != v}


def _blueprint_of(model: nn.Module) -> Any:
    """The spmkit blueprint the model (or its backbone) was built from, if any."""
    for m in model.modules():
        bp = getattr(m, "blueprint", None)
        if bp is not None and hasattr(bp, "stages"):
            return bp
    return None


def backbone_macs(model: nn.Module, img_size: int | None) -> tuple[int, tuple[int, int]] | None:
    """MACs of one image through the spmkit backbone at ``img_size`` (default: the blueprint's), counted on
    the meta device; ``None`` for models without a blueprint (``timm:`` baselines) or when counting fails."""
    bp = _blueprint_of(model)
    if bp is None:
        return None
    from spmkit.profile.summary import summarize

    size = (img_size, img_size) if img_size else bp.image_size
    try:
        return summarize(bp, size).macs, size
    except Exception:  # noqa: BLE001 - the count is information only; training does not depend on it
        return None


def layer_decay_line(model: nn.Module, decay: float) -> str:
    """``layer decay  0.75 over 14 groups (lr scale 0.0178 ... 1)``."""
    from spmkit.train.layer_decay import layer_decay_scales

    ld = layer_decay_scales(model, decay)
    low = min(ld.scales.values(), default=1.0)
    return (f"layer decay {decay} over {ld.num_groups} groups (backbone group_matcher; lr scale "
            f"{low:.4g} for the first group ... 1 for the last)")


def _fmt(v: Any) -> str:
    return "null" if v is None else str(v)


def summary_lines(*, task: str, model_name: str, model: nn.Module, recipe: TrainRecipe, recipe_source: str,
                  info: dict[str, Any], n_train: int, n_val: int, device: str, world_size: int, global_batch: int,
                  lr: float, steps_per_epoch: int, run_folder: str, resumed: str | None = None,
                  signals: list[str] | None = None, optimizer_impl: str | None = None) -> list[str]:
    """The lines of the start-up block (plain text, one fact per line)."""
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    macs = backbone_macs(model, getattr(recipe, "img_size", None))
    classes = list(info.get("classes") or [])
    shown = ", ".join(map(str, classes[:8])) + (f", ... ({len(classes) - 8} more)" if len(classes) > 8 else "")
    lines = [
        "=" * 72,
        f"spmkit train: {task}",
        f"model       {model_name}  ({type(model).__name__})",
        f"parameters  {params:,} ({params / 1e6:.2f} M), trainable {trainable:,}",
        "MACs        " + (f"{macs[0] / 1e9:.3f} G per image at {macs[1][0]}x{macs[1][1]} (backbone)"
                          if macs else "- (not counted for this model)"),
        f"data        {n_train:,} train / {n_val:,} val images",
        f"classes     {info.get('num_classes', len(classes))}" + (f": {shown}" if shown else ""),
        f"device      {device}, world size {world_size}, global batch {global_batch}, "
        f"{steps_per_epoch} optimizer steps per epoch",
        f"lr          {lr:.3e} (epochs {recipe.epochs}, warm-up {recipe.warmup_epochs}, sched {recipe.sched}, "
        f"amp {recipe.amp})",
        *([f"optimizer   {recipe.opt} ({optimizer_impl} kernels)"] if optimizer_impl else []),
        f"recipe      {recipe_source}",
    ]
    if getattr(recipe, "layer_decay", None) is not None:
        lines.append(layer_decay_line(model, recipe.layer_decay))
    changes = recipe_changes(recipe)
    if changes:
        lines.append("  changed from the defaults:")
        lines += [f"    {k}: {_fmt(d)} -> {_fmt(v)}" for k, (d, v) in changes.items()]
    else:
        lines.append("  (the defaults, unchanged)")
    if resumed:
        lines.append(f"resumed     {resumed}")
    lines += signals or []  # what a signal (SLURM preemption, time limit) does: spmkit.train.preemption
    lines += [f"run folder  {run_folder}  (train.log, metrics.jsonl, steps.jsonl, checkpoints)", "=" * 72]
    return lines


def teacher_lines(source: str, kind: str, alpha: float, tau: float, size: tuple[int, int], value: float | None,
                  metric: str = "top1") -> list[str]:
    """The distillation block printed after the summary once the teacher is loaded and measured."""
    mix = f"{kind} distillation, alpha {alpha:g}" + (f", tau {tau:g}" if kind == "soft" else "")
    shown = f"{value:.2f}" if value is not None else "-"
    return [f"teacher     {source}",
            f"  {mix}; teacher input {size[0]}x{size[1]}; teacher val {metric} {shown} (measured before training)"]
