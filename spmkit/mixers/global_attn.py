"""Full (global) multi-head self-attention, optionally with a relative position bias table (LIT-S)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.heads import merge_heads
from spmkit.layers.rel_pos import cached_relative_position_index
from spmkit.layers.table_resize import rel_pos_table_to_resize, source_rel_pos_grid
from spmkit.registry import MIXERS


def resize_bias_table(table: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a ``[(2H-1)(2W-1), heads]`` table to another map size (as timm does)."""
    if tuple(src) == tuple(dst):
        return table
    heads = table.shape[1]
    grid = table.t().reshape(1, heads, 2 * src[0] - 1, 2 * src[1] - 1)
    grid = F.interpolate(grid, size=(2 * dst[0] - 1, 2 * dst[1] - 1), mode="bicubic", align_corners=False)
    return grid.reshape(heads, -1).t()


def relative_attn_bias(table: torch.Tensor, feat_size: tuple[int, int], hw: tuple[int, int],
                       num_prefix_tokens: int) -> torch.Tensor:
    """``[heads, P+HW, P+HW]`` bias of a ``feat_size`` table at map size ``hw``; prefix tokens get none.
    Opaque to FX symbolic tracing (the resize and the index need concrete sizes)."""
    h, w = hw
    table = resize_bias_table(table, feat_size, (h, w))
    bias = table[cached_relative_position_index(h, w, table.device)].permute(2, 0, 1)  # [heads, hw, hw]
    p = num_prefix_tokens
    if p:
        bias = F.pad(bias, (p, 0, p, 0))
    return bias


torch.fx.wrap("relative_attn_bias")


@MIXERS.register("global")
class GlobalAttention(nn.Module):
    """Multi-head self-attention over all ``P + H*W`` tokens (ViT / LIT / GLNet MHSA).

    ``rel_pos_bias=True`` adds LIT-S's learned bias table of ``(2H-1)(2W-1) x heads`` entries, sized
    from ``feat_size`` and bicubically resized when the runtime map differs; prefix (class) tokens get no
    bias. Attention runs through ``scaled_dot_product_attention`` (the bias is passed as a float mask).
    """

    supports_prefix_tokens = True

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        feat_size: tuple[int, int] | None = None,
        num_prefix_tokens: int = 0,
        qkv_bias: bool = True,
        rel_pos_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"global attention needs dim ({dim}) divisible by heads ({num_heads}).")
        if rel_pos_bias and feat_size is None:
            raise ValueError("global attention with rel_pos_bias needs the stage's feat_size.")
        dd = dict(device=device, dtype=dtype)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_prefix_tokens = num_prefix_tokens
        self.feat_size = tuple(feat_size) if feat_size is not None else None
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, **dd)
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        if rel_pos_bias:
            h, w = self.feat_size
            self.relative_position_bias_table = nn.Parameter(torch.empty((2 * h - 1) * (2 * w - 1), num_heads, **dd))
        else:
            self.relative_position_bias_table = None
        self.init_weights()

    def init_weights(self) -> None:
        if self.relative_position_bias_table is not None:
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def resize_state_dict(self, prefix: str, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """A checkpoint's bias table of another map size, resized to this one exactly as ``forward`` resizes
        it at run time (bicubic): this model then computes what the source computes at this size."""
        found = rel_pos_table_to_resize(self, prefix, state_dict)
        if found is None:
            return []
        src, key = found
        grid = source_rel_pos_grid(src.shape[0], self.feat_size, key)
        state_dict[key] = resize_bias_table(src.float(), grid, self.feat_size).to(src.dtype)
        return [key]

    def no_weight_decay(self) -> set[str]:
        return {"relative_position_bias_table"} if self.relative_position_bias_table is not None else set()

    def attn_bias(self, hw: tuple[int, int]) -> torch.Tensor | None:
        """The additive bias ``[heads, P+HW, P+HW]`` for a map of size ``hw`` (None without a table)."""
        table = self.relative_position_bias_table
        if table is None:
            return None
        return relative_attn_bias(table, self.feat_size, hw, self.num_prefix_tokens)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        if not isinstance(n, torch.fx.Proxy) and n != self.num_prefix_tokens + hw[0] * hw[1]:  # FX: sizes unknown
            raise ValueError(f"got {n} tokens, expected {self.num_prefix_tokens} + {hw[0]}x{hw[1]}")
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim]
        bias = self.attn_bias(hw)
        if bias is not None:
            bias = bias.to(q.dtype).unsqueeze(0)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_drop if self.training else 0.0
        )
        x = merge_heads(x)  # [B, heads, N, d] -> [B, N, C]
        return self.proj_drop(self.proj(x))
