"""PVT spatial-reduction attention: keys and values from a downsampled map (v1 conv, v2 also linear)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.heads import merge_heads
from spmkit.layers.pad import pad_nchw_to_at_least
from spmkit.layers.tokens import cat_prefix_tokens
from spmkit.registry import MIXERS

torch.fx.wrap("pad_nchw_to_at_least")  # opaque to FX symbolic tracing (see spmkit/layers/pad.py)
torch.fx.wrap("cat_prefix_tokens")


@MIXERS.register("sra")
class SpatialReductionAttention(nn.Module):
    """Queries from every token; keys/values from the map reduced by a ``sr_ratio`` x ``sr_ratio`` strided
    conv + LayerNorm (PVT v1/v2), or, with ``linear: true``, by average pooling to ``pool_size`` x
    ``pool_size`` + 1x1 conv + LayerNorm + GELU (PVT v2-li). Prefix (class) tokens attend and are attended
    to; they bypass the reduction. Names follow PVT/timm: ``q``, ``kv``, ``sr``, ``norm``, ``proj``.
    """

    supports_prefix_tokens = True

    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int = 1,
        linear: bool = False,
        pool_size: int = 7,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        sr_norm_eps: float = 1e-5,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by heads {num_heads}")
        if sr_ratio < 1:
            raise ValueError(f"sr_ratio must be at least 1, got {sr_ratio}")
        self.num_heads, self.sr_ratio, self.linear, self.attn_drop = num_heads, sr_ratio, linear, attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias, **dd)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias, **dd)
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pool = nn.AdaptiveAvgPool2d(pool_size) if linear else None
        if linear:
            self.sr: nn.Module | None = nn.Conv2d(dim, dim, 1, **dd)
        elif sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, sr_ratio, sr_ratio, **dd)
        else:
            self.sr = None
        self.norm = nn.LayerNorm(dim, eps=sr_norm_eps, **dd) if self.sr is not None else None
        self.act = nn.GELU() if linear else None

    def _reduce(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw
        P = N - H * W
        prefix, grid = x[:, :P], x[:, P:].transpose(1, 2).reshape(B, C, H, W)
        if self.pool is not None:
            grid = self.pool(grid)
        else:  # tiny maps: pad to one reduction cell
            grid = pad_nchw_to_at_least(grid, self.sr_ratio)
        # otherwise the strided conv floors odd sizes, as PVT's official code does
        red = self.norm(self.sr(grid).flatten(2).transpose(1, 2))
        if self.act is not None:
            red = self.act(red)
        return cat_prefix_tokens(prefix, red)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        kv_in = self._reduce(x, hw) if self.sr is not None else x
        kv = self.kv(kv_in).view(B, -1, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(merge_heads(out)))
