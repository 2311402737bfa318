"""The training recipe: a pydantic model of everything a run needs besides the model and the data.

``TrainRecipe`` holds what every task shares (optimiser, schedule, precision, checkpoints); each task
subclasses it with its own fields and defaults (``ClassificationRecipe`` adds augmentation and loss).
A recipe comes from the task's defaults, then an optional YAML file, then ``--set key=value`` overrides,
in that order; unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from spmkit.errors import SHOWN_ISSUES, SpmkitError, shorten
from spmkit.io.overrides import split_override
from spmkit.io.safe_yaml import YamlInputError, read_yaml_file
from spmkit.io.value_types import Float, check_number


class RecipeError(SpmkitError):
    """A recipe file or ``--set`` override that does not validate."""


class TrainRecipe(BaseModel):
    """Fields every task's recipe has. Defaults follow the PVT/DeiT ImageNet recipe."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # schedule length and batch
    epochs: int = Field(300, ge=1, le=10**6)
    batch_size: int = Field(128, ge=1, le=65536, description="images per process per step")
    accum_steps: int = Field(1, ge=1, le=65536, description="gradient accumulation: optimizer steps every N batches")
    workers: int | None = Field(None, ge=0, le=256, description="data-loader workers per process; None -> "
                                "min(8, CPU cores / processes on this node)")
    seed: int = Field(42, ge=0, le=2**31 - 1)
    # optimizer (timm.optim.create_optimizer_v2)
    opt: str = "adamw"
    lr: float | None = Field(None, gt=0, description="absolute lr; None -> lr_base * global_batch / lr_base_size")
    lr_base: float = Field(5e-4, gt=0)
    lr_base_size: int = Field(512, ge=1, le=2**20)
    weight_decay: float = Field(0.05, ge=0)
    momentum: float = Field(0.9, ge=0, le=1)
    opt_eps: float | None = Field(1e-8, gt=0, le=1)
    opt_betas: tuple[Float(ge=0, lt=1), Float(ge=0, lt=1)] | None = None
    opt_impl: Literal["auto", "fused", "foreach", "loop"] = Field(
        "auto", description="the optimizer's kernels: fused (one kernel per parameter, torch's fused=True), foreach "
        "(multi-tensor), loop (one parameter at a time, torch's default on CPU); auto -> fused where the optimizer "
        "and device take it (probed with one step on a tiny tensor), else torch's default")
    layer_decay: float | None = Field(None, gt=0, le=1, description="layer-wise lr decay (BEiT / timm): the "
                                      "lr of layer l of L is scaled by layer_decay ** (L-1-l), layers from the "
                                      "backbone's group_matcher (stem first, classifier last); None -> off")
    clip_grad: float | None = Field(None, gt=0)
    clip_mode: Literal["norm", "value", "agc"] = "norm"
    # scheduler (timm.scheduler.create_scheduler_v2), stepped every optimizer update
    sched: str = "cosine"
    warmup_epochs: float = Field(5, ge=0)
    warmup_lr: float = Field(1e-6, ge=0)
    min_lr: float = Field(1e-5, ge=0)
    cooldown_epochs: int = Field(0, ge=0)
    decay_milestones: list[int] = Field(default_factory=lambda: [90, 180, 270])
    decay_rate: float = 0.1
    # precision and speed
    amp: Literal["auto", "bf16", "fp16", "none"] = Field(
        "auto", description="autocast dtype; auto -> bf16 on CUDA GPUs with native bf16 (Ampere+), else none (fp32)")
    channels_last: bool = False
    compile: bool = False
    grad_checkpointing: bool = False
    sync_bn: bool = Field(False, description="multi-process CUDA training: BatchNorm -> SyncBatchNorm (statistics "
                          "over all processes), as GroupMixFormer and the papers' dense recipes train")
    # EMA of the weights (timm.utils.ModelEmaV3)
    ema: bool = False
    ema_decay: float = Field(0.99996, ge=0, le=1)
    # checkpoints and logging
    ckpt_every_steps: int | None = Field(None, ge=1, description="also write last.pt every N optimizer steps")
    save_every_epochs: int | None = Field(None, ge=1, description="also keep epoch_NNNN.pt every N epochs")
    keep_last: int | None = Field(None, ge=1, description="keep only the K newest epoch_NNNN.pt (set alone: "
                                  "one per epoch); None keeps all")
    eval_every_epochs: int = Field(1, ge=1)
    log_every_steps: int = Field(20, ge=1)
    init: str | None = Field(None, description="weights to start from: an spmkit, timm or official release's "
                             "checkpoint (converted by spmkit.convert)")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Every recipe (subclasses included): a bool is not a number, and numbers are finite."""
        field = cls.model_fields.get(info.field_name or "")
        return check_number(value, field.annotation) if field is not None else value

    def resolved_workers(self) -> int:
        """``workers``, or min(8, CPU cores / processes on this node) when unset."""
        if self.workers is not None:
            return self.workers
        import os

        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, min(8, (os.cpu_count() or 1) // per_node))

    def resolved_lr(self, global_batch: int) -> float:
        """The absolute learning rate for ``global_batch`` images per optimizer step (linear scaling)."""
        return self.lr if self.lr is not None else self.lr_base * global_batch / self.lr_base_size


R = TypeVar("R", bound=TrainRecipe)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) > 8:
        raise RecipeError(f"--set {shorten(key, 200, quote=False)}: a recipe key has at most 8 dotted parts.")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"--set {shorten(key, 200, quote=False)}: {shorten(part)} is not a mapping in the recipe.")
    node[parts[-1]] = value


def load_recipe(cls: type[R], path: str | Path | None = None, overrides: Sequence[str] = (),
                base: dict[str, Any] | None = None) -> R:
    """Build ``cls`` from its defaults (or ``base``, a stored recipe), a YAML file and ``KEY=VALUE`` overrides.

    Override values are parsed as YAML (``lr=1e-3``, ``scale=[0.5,1]``). Raises ``RecipeError`` naming
    every invalid field.
    """
    data: dict[str, Any] = dict(base or {})
    source = "the default recipe"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            from spmkit.recipes import list_recipes

            builtin = list_recipes()
            if str(path) not in builtin:
                raise RecipeError(f"recipe {shorten(str(path), 300, quote=False)} is neither a file nor a builtin recipe "
                                  f"({', '.join(builtin)}).")
            p = builtin[str(path)]
        try:
            loaded = read_yaml_file(p) or {}
        except YamlInputError as e:
            raise RecipeError(f"recipe file {e}") from None
        if not isinstance(loaded, dict):
            raise RecipeError(f"recipe file {p} must hold a mapping of recipe fields.")
        data.update(loaded)
    for item in overrides:
        try:
            key, value = split_override(item, empty=None)
        except ValueError:
            raise RecipeError(f"--set {shorten(item)}: expected KEY=VALUE, e.g. --set lr=1e-3.") from None
        _set_dotted(data, key, value)
    if overrides:
        source = f"{source} with --set {shorten(' '.join(overrides), 300, quote=False)}"
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        import difflib

        lines = [f"{source}: invalid {cls.__name__} ({e.error_count()} problem{'s' if e.error_count() != 1 else ''})"]
        for err in e.errors()[:SHOWN_ISSUES]:
            loc = shorten(".".join(str(x) for x in err["loc"]) or "<root>", 200, quote=False)
            msg = err["msg"]
            if err["type"] == "extra_forbidden" and _is_blueprint_key(str(err["loc"][0])):
                msg = (f"a blueprint field, not a recipe field: change it with --model-set "
                       f"{shorten(_dotted(err['loc'][0], data), 120, quote=False)}=... (--set changes the recipe)")
            elif err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(err["loc"][-1])[:100], list(cls.model_fields), n=2, cutoff=0.5)
                msg = "unknown recipe field" + (f"; did you mean {' or '.join(map(repr, close))}?" if close else "")
            elif "input" in err and err["type"] != "missing":
                msg = f"{msg} (got {shorten(err['input'], 80)})"
            lines.append(f"  - {loc}: {msg}")
        if e.error_count() > SHOWN_ISSUES:
            lines.append(f"  - ... and {e.error_count() - SHOWN_ISSUES} more")
        raise RecipeError("\n".join(lines)) from None


def _is_blueprint_key(key: str) -> bool:
    """``key`` names a blueprint field (``merging``, ``stages``, ...) or a parameter a mixer or block takes
    (``window_size``, ``sr_ratio``): a ``--set`` meant for ``--model-set``."""
    from spmkit.blueprint.schema import Blueprint

    if key in Blueprint.model_fields:
        return True
    from spmkit.blueprint.params import user_parameter_names
    from spmkit.registry import COMPONENT_REGISTRIES, load_components

    load_components()
    return any(key in user_parameter_names(kind, obj)
               for kind in ("mixer", "block") for _, obj in COMPONENT_REGISTRIES[kind].items())


def _dotted(key: Any, data: dict[str, Any]) -> str:
    """``merging.type`` for ``{"merging": {"type": ...}}``: the key path as the user wrote it."""
    parts, node = [str(key)], data.get(key)
    while isinstance(node, dict) and len(node) == 1:
        k = next(iter(node))
        parts.append(str(k))
        node = node[k]
    return ".".join(parts)
