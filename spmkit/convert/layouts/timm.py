"""timm's Swin (``swin_*``, timm >= 0.9 layout) and PVT v2 (``pvt_v2_*``) state_dicts.

The ``swin_t`` and ``pvt_v2_b*`` blueprints keep timm's module names inside blocks, so the mapping is a
few prefix renames. Relative position indices and attention masks that older timm versions saved are
checked and dropped. (timm < 0.9 Swin checkpoints have the original Microsoft layout: converter ``swin``.)
"""

from __future__ import annotations

import re
from typing import Collection, Sequence

import torch

from spmkit.convert.base import RELATIVE_POSITION_INDEX, SWIN_ATTN_MASK, Converter, Rule
from spmkit.errors import CheckpointError
from spmkit.registry import CONVERTERS

RULES: dict[str, list[Rule]] = {
    "swin": [(r"^patch_embed\.", "stem."), (r"^layers\.", "stages.")],
    "pvt_v2": [(r"^patch_embed\.", "stem."), (r"^head\.(weight|bias)$", r"head.fc.\1")],
}


def detect_family(state_dict: dict[str, torch.Tensor] | Collection[str]) -> str:
    """``swin`` or ``pvt_v2``: which timm family a state_dict is from."""
    keys = list(state_dict)
    if any(k.startswith("layers.") for k in keys) and any("relative_position_bias_table" in k for k in keys):
        return "swin"
    if any(re.match(r"^stages\.\d+\.downsample\.proj\.", k) for k in keys) and any(".attn.kv." in k for k in keys):
        return "pvt_v2"
    raise CheckpointError("cannot tell which timm model family this state_dict is from; supported: "
                          + ", ".join(RULES))


@CONVERTERS.register("timm")
class Timm(Converter):
    name = "timm"
    release = "huggingface/pytorch-image-models (swin_*, pvt_v2_*)"
    checks = (RELATIVE_POSITION_INDEX, SWIN_ATTN_MASK)

    def detect(self, keys: Collection[str]) -> bool:
        swin = any(k.startswith("layers.") and k.endswith("relative_position_bias_table") for k in keys) and (
            "head.fc.weight" in keys or any(k.startswith("layers.3.downsample.") for k in keys)) and not any(
            k.startswith("layers.0.downsample.") for k in keys)
        pvt = "patch_embed.proj.weight" in keys and any(k.startswith("stages.0.blocks.") for k in keys)
        return swin or pvt

    def rules(self, state_dict: dict[str, torch.Tensor]) -> Sequence[Rule]:
        return RULES[detect_family(state_dict)]


def timm_state_dict_to_spmkit(state_dict: dict[str, torch.Tensor], family: str | None = None) -> dict[str, torch.Tensor]:
    """Rename a timm state_dict's keys to spmkit's (``family`` is detected when not given)."""
    if family is not None and family not in RULES:
        raise CheckpointError(f"unknown timm family {family!r}; supported: {', '.join(RULES)}")
    conv = Timm()
    if family is not None:
        conv.rules = lambda sd: RULES[family]  # type: ignore[method-assign]
    return conv.convert(state_dict)
