"""LIT's attention-free block, by name: ``x + DP(mlp(norm(x)))``."""

from __future__ import annotations

from torch import nn

from spmkit.blocks.transformer import TransformerBlock
from spmkit.registry import BLOCKS


@BLOCKS.register("mlp_only")
class MlpOnlyBlock(TransformerBlock):
    """The ``transformer`` block without its mixing branch (LIT's early stages). The same as a
    ``transformer`` block in a stage with ``mixer: null``; naming it makes a blueprint say so, and a stage
    that also sets a mixer is refused instead of silently dropping it. Names: ``norm2``, ``mlp.fc1/fc2``."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        drop_path: float,
        mixer: nn.Module | None,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module],
        proj_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        if mixer is not None:
            raise ValueError(
                "the mlp_only block has no token mixer; set `mixer: null` on this stage "
                "(or use the transformer block to keep the mixer)."
            )
        super().__init__(dim, mlp_ratio, drop_path, None, norm_layer, act_layer, proj_drop=proj_drop,
                         device=device, dtype=dtype)
