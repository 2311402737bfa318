"""Learned absolute position embedding of one stage (PVT v1, LIT-Ti), class-token slot included."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from spmkit.registry import POS_EMBEDS


def resize_pos_embed(pos: torch.Tensor, num_prefix_tokens: int, feat_size: tuple[int, int],
                     hw: tuple[int, int]) -> torch.Tensor:
    """``[1, P + h*w, C]`` embedding for ``feat_size = (h, w)`` -> bilinearly resized to ``hw`` (prefix
    tokens kept); ``pos`` itself when the sizes agree. Opaque to FX symbolic tracing (the ``if``)."""
    if tuple(hw) == tuple(feat_size):
        return pos
    P, (h, w) = num_prefix_tokens, feat_size
    grid = pos[:, P:].reshape(1, h, w, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(hw[0], hw[1]), mode="bilinear", align_corners=False)
    return torch.cat([pos[:, :P], grid.flatten(2).transpose(1, 2)], dim=1)


torch.fx.wrap("resize_pos_embed")


@POS_EMBEDS.register("absolute")
class AbsolutePosEmbed(nn.Module):
    """Adds a ``(1, P + H*W, dim)`` table; the grid part is bilinearly resized when ``hw`` differs from the
    blueprint's size (as PVT does), prefix (class-token) entries are added as they are. Then dropout."""

    def __init__(
        self,
        dim: int,
        feat_size: tuple[int, int],
        num_prefix_tokens: int,
        drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.feat_size, self.num_prefix_tokens = tuple(feat_size), num_prefix_tokens
        self.weight = nn.Parameter(
            torch.zeros(1, num_prefix_tokens + feat_size[0] * feat_size[1], dim, device=device, dtype=dtype)
        )
        self.drop = nn.Dropout(drop)
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.weight, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"weight"}

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return self.drop(x + resize_pos_embed(self.weight, self.num_prefix_tokens, self.feat_size, hw))
