"""PVT v1 checkpoints (whai362/PVT ``classification/pvt.py``: pvt_tiny/small/medium/large).

``patch_embed1`` is the stem, ``patch_embed{n}`` the merging at the start of stage n, ``pos_embed{n}`` the
stage's position table, ``cls_token`` joins in stage 4, ``head`` is spmkit's ``head.fc``.
"""

from __future__ import annotations

from typing import Collection

from spmkit.convert.base import Converter, Rule, shift_stage
from spmkit.registry import CONVERTERS

#: shared with the releases built on PVT v1's model file (PVT+SPM, LIT-Ti)
PVT_V1_RULES: list[Rule] = [
    (r"^patch_embed1\.", "stem."),
    (r"^patch_embed(\d)\.", shift_stage(-1, "stages.{}.downsample.")),
    (r"^pos_embed(\d)$", shift_stage(-1, "stages.{}.pos_embed.weight")),
    (r"^block(\d)\.", shift_stage(-1, "stages.{}.blocks.")),
    (r"^cls_token$", "stages.3.cls_token"),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]


@CONVERTERS.register("pvt_v1")
class PVTv1(Converter):
    name = "pvt_v1"
    release = "whai362/PVT classification/pvt.py"
    rule_table = PVT_V1_RULES

    def detect(self, keys: Collection[str]) -> bool:
        return "pos_embed1" in keys and "patch_embed2.proj.weight" in keys
