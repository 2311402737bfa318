"""PVT v2 checkpoints (whai362/PVT ``classification/pvt_v2.py``: pvt_v2_b0..b5).

``patch_embed1`` is the stem, ``patch_embed{n}`` the merging at the start of stage n, ``norm{n}`` the
stage's closing norm; the MLP's depthwise conv sits one module deeper (``mlp.dwconv.dwconv``).
"""

from __future__ import annotations

from typing import Collection

from spmkit.convert.base import Converter, Rule, shift_stage
from spmkit.registry import CONVERTERS

RULES: list[Rule] = [
    (r"^patch_embed1\.", "stem."),
    (r"^patch_embed(\d)\.", shift_stage(-1, "stages.{}.downsample.")),
    (r"^block(\d)\.", shift_stage(-1, "stages.{}.blocks.")),
    (r"^norm(\d)\.", shift_stage(-1, "stages.{}.norm.")),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]


@CONVERTERS.register("pvt_v2")
class PVTv2(Converter):
    name = "pvt_v2"
    release = "whai362/PVT classification/pvt_v2.py"
    rule_table = RULES

    def detect(self, keys: Collection[str]) -> bool:
        return "patch_embed1.proj.weight" in keys and "norm1.weight" in keys and "pos_embed1" not in keys
