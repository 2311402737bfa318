"""LIT checkpoints (zhuang-group/LIT, now ziplab/LIT), both code bases of the release:

- LIT-Ti (``classification/code_for_lit_ti/lit.py``): PVT v1's layout (``patch_embed{n}``, ``pos_embed{n}``,
  ``block{n}``, ``cls_token``), with Deformable Token Merging (``dconv`` + ``norm_layer``) as merging.
- LIT-S/M/B (``classification/code_for_lit_s_m_b/models/lit.py``): Swin's layout, merging at the end of a
  stage (``layers.i.downsample`` -> ``stages.{i+1}.downsample``); ``relative_position_index`` buffers are
  checked and dropped.
"""

from __future__ import annotations

from typing import Collection, Sequence

import torch

from spmkit.convert.base import RELATIVE_POSITION_INDEX, Converter, Rule
from spmkit.convert.layouts.pvt_v1 import PVT_V1_RULES
from spmkit.convert.layouts.swin import SWIN_RULES  # LIT-S/M/B are built on Swin's model file
from spmkit.registry import CONVERTERS

@CONVERTERS.register("lit")
class LIT(Converter):
    name = "lit"
    release = "zhuang-group/LIT classification/code_for_lit_ti/lit.py, code_for_lit_s_m_b/models/lit.py"
    checks = (RELATIVE_POSITION_INDEX,)

    def detect(self, keys: Collection[str]) -> bool:
        return "patch_embed2.dconv.weight" in keys or "layers.0.downsample.dconv.weight" in keys

    def rules(self, state_dict: dict[str, torch.Tensor]) -> Sequence[Rule]:
        return PVT_V1_RULES if "patch_embed1.proj.weight" in state_dict else SWIN_RULES
