"""GLNet checkpoints (rayleizhu/GLMix ``models/glnet.py``: glnet_stl, glnet_stl_paramslot, glnet_4g,
glnet_9g, glnet_16g).

- ``downsample_layers.0`` is the stem: ``(conv, BN)`` for STL, ``(Identity, conv, BN, GELU, conv, BN)`` for
  the overlapping 4G/9G/16G stem; ``downsample_layers.i`` the transition into stage i, ``(BN, conv)`` (STL)
  or ``(conv, BN)`` (4G/9G/16G), told apart by the first tensor's rank.
- GLMix blocks keep ``slot_scale``, ``init_slots``, ``relation_mha`` and ``feature_conv`` at block level
  (spmkit: in ``mixer``); MHSA blocks use ``nn.MultiheadAttention`` (``mha_op.in_proj_*`` -> ``mixer.qkv``,
  ``mha_op.out_proj`` -> ``mixer.proj``, same [q; k; v] row order).
- The MLP is ``(1x1 conv, residual dw 3x3 | Identity, GELU, 1x1 conv)``, or ``(Linear, GELU, Linear)`` in
  STL's last stage: 1x1 conv weights become linear weights. Layer scale (16G) stores ``(1, C, 1, 1)``
  or ``(C,)``; spmkit ``(C,)``.
"""

from __future__ import annotations

from typing import Collection, Sequence

import torch

from spmkit.convert.base import Converter, Rule, Transform, flatten_1x1
from spmkit.registry import CONVERTERS

_BLOCKS: list[Rule] = [
    (r"^(stages\.\d+\.blocks\.\d+\.)(slot_scale|init_slots|relation_mha\.|feature_conv\.)", r"\1mixer.\2"),
    (r"\.mha_op\.in_proj_(weight|bias)$", r".mixer.qkv.\1"),
    (r"\.mha_op\.out_proj\.", ".mixer.proj."),
    (r"\.mlp\.0\.", ".mlp.fc1."),
    (r"\.mlp\.1\.", ".mlp.dw."),
    (r"\.mlp\.[23]\.", ".mlp.fc2."),
    (r"^head\.(weight|bias)$", r"head.fc.\1"),
]


@CONVERTERS.register("glnet")
class GLNet(Converter):
    name = "glnet"
    release = "rayleizhu/GLMix models/glnet.py"
    transforms: Sequence[Transform] = (
        (r"\.mlp\.fc[12]\.weight$", flatten_1x1),
        (r"\.ls[12]\.gamma$", lambda t: t.flatten()),
    )

    def detect(self, keys: Collection[str]) -> bool:
        return any(k.startswith("downsample_layers.") for k in keys)

    def rules(self, state_dict: dict[str, torch.Tensor]) -> Sequence[Rule]:
        if "downsample_layers.0.5.weight" in state_dict:  # overlapping stem
            stem = [(r"^downsample_layers\.0\.1\.", "stem.proj1."), (r"^downsample_layers\.0\.2\.", "stem.norm1."),
                    (r"^downsample_layers\.0\.4\.", "stem.proj2."), (r"^downsample_layers\.0\.5\.", "stem.norm2.")]
        else:
            stem = [(r"^downsample_layers\.0\.0\.", "stem.proj."), (r"^downsample_layers\.0\.1\.", "stem.norm.")]
        first = state_dict.get("downsample_layers.1.0.weight")
        norm_first = first is not None and first.dim() == 1
        a, b = ("norm", "proj") if norm_first else ("proj", "norm")
        trans = [(r"^downsample_layers\.([1-9])\.0\.", rf"stages.\1.downsample.{a}."),
                 (r"^downsample_layers\.([1-9])\.1\.", rf"stages.\1.downsample.{b}.")]
        return [*stem, *trans, *_BLOCKS]
