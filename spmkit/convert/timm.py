"""timm state_dicts -> spmkit layout, so dense-task and fine-tuning runs start from ImageNet weights.

Supported families: timm's ``swin_transformer`` (``swin_*``) and ``pvt_v2`` (``pvt_v2_*``). The spmkit
blueprints ``swin_t`` and ``pvt_v2_b*`` keep timm's module names inside blocks, so the mapping is a few
prefix renames; non-persistent buffers found in older checkpoints are dropped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from spmkit.convert.checkpoint import load_state_dict_file
from spmkit.errors import CheckpointError

RULES: dict[str, list[tuple[str, str]]] = {
    "swin": [(r"^patch_embed\.", "stem."), (r"^layers\.", "stages.")],
    "pvt_v2": [(r"^patch_embed\.", "stem."), (r"^head\.(weight|bias)$", r"head.fc.\1")],
}
_DROP = re.compile(r"(relative_position_index|attn_mask)$")


def detect_family(state_dict: dict[str, torch.Tensor]) -> str:
    keys = list(state_dict)
    if any(k.startswith("layers.") for k in keys) and any("relative_position_bias_table" in k for k in keys):
        return "swin"
    if any(re.match(r"^stages\.\d+\.downsample\.proj\.", k) for k in keys) and any(".attn.kv." in k for k in keys):
        return "pvt_v2"
    raise CheckpointError(
        "cannot tell which timm model family this state_dict is from; supported: " + ", ".join(RULES)
    )


def timm_state_dict_to_spmkit(state_dict: dict[str, torch.Tensor], family: str | None = None) -> dict[str, torch.Tensor]:
    """Rename a timm state_dict's keys to spmkit's; ``family`` is detected when not given."""
    family = family or detect_family(state_dict)
    if family not in RULES:
        raise CheckpointError(f"unknown timm family {family!r}; supported: {', '.join(RULES)}")
    out = {}
    for key, value in state_dict.items():
        if _DROP.search(key):
            continue
        for pattern, repl in RULES[family]:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


@dataclass
class LoadReport:
    """What a non-strict load left out: parameters freshly initialised, and source keys unused."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_shape: list[str] = field(default_factory=list)


def load_timm_weights(
    model: nn.Module, source: str | os.PathLike | dict[str, torch.Tensor], family: str | None = None,
    strict: bool = False,
) -> LoadReport:
    """Load timm weights into an spmkit model. Tensors whose shape differs (a head of another class count)
    are skipped and reported; with ``strict=False`` parts the source lacks (e.g. SPM layers) keep their init."""
    sd = source if isinstance(source, dict) else load_state_dict_file(source)
    sd = timm_state_dict_to_spmkit(sd, family)
    own = model.state_dict()
    report = LoadReport()
    filtered = {}
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            report.skipped_shape.append(k)
        else:
            filtered[k] = v
    result = model.load_state_dict(filtered, strict=False)
    report.missing = list(result.missing_keys)
    report.unexpected = list(result.unexpected_keys)
    if strict and (report.missing or report.unexpected or report.skipped_shape):
        raise CheckpointError(
            f"timm weights do not match the model: missing {report.missing[:5]}, unexpected "
            f"{report.unexpected[:5]}, shape mismatch {report.skipped_shape[:5]}"
        )
    return report
