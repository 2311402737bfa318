"""GroupMixFormer checkpoints (AILab-CVC/GroupMixFormer ``models/groupmixformer.py``, sizes M/T/S/B/L).

``conv_stem`` + ``patch_embed_layers.0`` (the stride-1 embed) are spmkit's stem, ``patch_embed_layers.i``
the merging of stage i, ``groupmixformer_backbone.i.gma_stage.j`` block j of stage i, ``att`` the mixer
``attn``, ``norm4`` the final norm, ``head`` spmkit's ``head.fc``. (SyncBatchNorm and BatchNorm store the
same tensors.)
"""

from __future__ import annotations

from typing import Collection

from spmkit.convert.base import Converter, Rule
from spmkit.registry import CONVERTERS

RULES: list[Rule] = [
    (r"^conv_stem\.", "stem."),
    (r"^patch_embed_layers\.0\.", "stem.embed."),
    (r"^patch_embed_layers\.(\d+)\.", r"stages.\1.downsample."),
    (r"^groupmixformer_backbone\.(\d+)\.gma_stage\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"\.att\.", ".attn."),
    (r"^norm4\.", "norm."),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]


@CONVERTERS.register("groupmixformer")
class GroupMixFormer(Converter):
    name = "groupmixformer"
    release = "AILab-CVC/GroupMixFormer models/groupmixformer.py"
    rule_table = RULES

    def detect(self, keys: Collection[str]) -> bool:
        return any(k.startswith(("groupmixformer_backbone.", "conv_stem.")) for k in keys)
