"""PVT + Stepwise Patch Merging (Yonghao-Yu/StepwisePatchMerging ``pvt_spm.py``): PVT v1 with
``patch_embed{2,3,4}`` replaced by ``SPMWrapper`` (``patch_embed{n}.spm.{msa,gle}``). SPM's own names
(``msa.local_conv_k``, ``msa.proj``, ``gle.gtg``, ``gle.attn.qkv``, ``gle.norm0/1``) are spmkit's.
"""

from __future__ import annotations

from typing import Collection, Sequence

import torch

from spmkit.convert.base import Converter, Rule, shift_stage
from spmkit.convert.layouts.pvt_v1 import PVT_V1_RULES
from spmkit.registry import CONVERTERS


@CONVERTERS.register("pvt_spm")
class PVTSPM(Converter):
    name = "pvt_spm"
    release = "Yonghao-Yu/StepwisePatchMerging pvt_spm.py"

    def detect(self, keys: Collection[str]) -> bool:
        return "pos_embed1" in keys and any(k.startswith("patch_embed2.spm.") for k in keys)

    def rules(self, state_dict: dict[str, torch.Tensor]) -> Sequence[Rule]:
        return [(r"^patch_embed(\d)\.spm\.", shift_stage(-1, "stages.{}.downsample.")), *PVT_V1_RULES]
