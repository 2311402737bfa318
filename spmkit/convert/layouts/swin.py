"""Original Swin Transformer checkpoints (microsoft/Swin-Transformer ``models/swin_transformer.py``; also
timm < 0.9). The release puts patch merging at the *end* of a stage (``layers.i.downsample``), spmkit at
the start of the next one (``stages.{i+1}.downsample``); the classifier is ``head`` (spmkit ``head.fc``).
``relative_position_index`` and ``attn_mask`` buffers are checked against spmkit's and dropped.
"""

from __future__ import annotations

from typing import Collection

from spmkit.convert.base import RELATIVE_POSITION_INDEX, SWIN_ATTN_MASK, Converter, Rule, shift_stage
from spmkit.registry import CONVERTERS

#: shared with the releases built on Swin's model file (LIT-S/M/B)
SWIN_RULES: list[Rule] = [
    (r"^patch_embed\.", "stem."),
    (r"^layers\.(\d+)\.downsample\.", shift_stage(1, "stages.{}.downsample.")),
    (r"^layers\.", "stages."),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]


@CONVERTERS.register("swin")
class Swin(Converter):
    name = "swin"
    release = "microsoft/Swin-Transformer models/swin_transformer.py"
    rule_table = SWIN_RULES
    checks = (RELATIVE_POSITION_INDEX, SWIN_ATTN_MASK)

    def detect(self, keys: Collection[str]) -> bool:
        swin_like = any(k.startswith("layers.") and k.endswith("relative_position_bias_table") for k in keys)
        timm_layout = "head.fc.weight" in keys or any(k.startswith("layers.3.downsample.") for k in keys)
        return swin_like and not timm_layout and not any(".dconv." in k for k in keys)
