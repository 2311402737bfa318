"""Learned absolute position embedding of one stage (PVT v1, LIT-Ti), class-token slot included."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from spmkit.layers.table_resize import TableResizeError, source_grid, table_to_resize
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

    def resize_state_dict(self, prefix: str, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """A checkpoint's table of another grid, resized to this one exactly as ``forward`` would resize it
        (bilinear, prefix entries kept): this model then computes what the source computes at this size."""
        pair = table_to_resize(self, prefix, "weight", state_dict)
        if pair is None:
            return []
        src, own = pair
        key, P = prefix + "weight", self.num_prefix_tokens
        if src.dim() != 3 or src.shape[0] != 1 or src.shape[2] != own.shape[2] or src.shape[1] <= P:
            raise TableResizeError(f"{key}: position embedding {list(src.shape)} cannot be resized to "
                                   f"{list(own.shape)} (only the grid of positions can change, not the width "
                                   f"{own.shape[2]} or the {P} class-token entries)")
        grid = source_grid(src.shape[1] - P, self.feat_size, key)
        resized = resize_pos_embed(src.float(), P, grid, self.feat_size)
        state_dict[key] = resized.to(src.dtype)
        return [key]

    def no_weight_decay(self) -> set[str]:
        return {"weight"}

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return self.drop(x + resize_pos_embed(self.weight, self.num_prefix_tokens, self.feat_size, hw))
