"""GroupMixFormer's Group-Mix Attention (GMA): token and group proxies, factorised attention."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d
from spmkit.layers.separable_conv import SeparableConv2d
from spmkit.layers.tokens import nchw_to_tokens, tokens_to_nchw
from spmkit.registry import MIXERS


class GroupAggregator(nn.Module):
    """Builds the proxies from stacked ``[3B, C, H, W]`` q/k/v maps split into 5 channel segments.

    Segment 0: BN + Hardswish (token proxies); segments 1-3: separable conv ``k x k`` + BN + Hardswish
    (group proxies); segment 4: the q, k, v slices concatenated -> separable conv 3x3 -> LN -> Hardswish
    (the non-attention branch, ``agg0``). Names follow the official release.
    """

    def __init__(self, dim: int, kernels: tuple[int, int, int] = (3, 5, 7), *, device=None, dtype=None) -> None:
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.seg_dim = s = dim // 5
        self.norm0 = nn.BatchNorm2d(s, **dd)
        self.agg1 = SeparableConv2d(s, s, kernels[0], **dd)
        self.norm1 = nn.BatchNorm2d(s, **dd)
        self.agg2 = SeparableConv2d(s, s, kernels[1], **dd)
        self.norm2 = nn.BatchNorm2d(s, **dd)
        self.agg3 = SeparableConv2d(s, s, kernels[2], **dd)
        self.norm3 = nn.BatchNorm2d(s, **dd)
        self.agg0 = nn.Module()
        self.agg0.conv = SeparableConv2d(3 * s, s, 3, **dd)
        self.agg0.norm = nn.LayerNorm(s, **dd)
        self.act = nn.Hardswish()

    def forward(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[3B, C, H, W]`` -> (proxies ``[3B, 4C/5, H, W]``, branch tokens ``[B, H*W, C/5]``)."""
        three_b, _, h, w = qkv.shape
        s = self.seg_dim
        x0, x1, x2, x3, x4 = qkv.split(s, dim=1)
        b = three_b // 3
        local = x4.reshape(3, b, s, h, w).transpose(0, 1).reshape(b, 3 * s, h, w)  # [B, (q k v) s, H, W]
        local = self.act(self.agg0.norm(nchw_to_tokens(self.agg0.conv(local))))
        proxies = torch.cat(
            [
                self.act(self.norm0(x0)),
                self.act(self.norm1(self.agg1(x1))),
                self.act(self.norm2(self.agg2(x2))),
                self.act(self.norm3(self.agg3(x3))),
            ],
            dim=1,
        )
        return proxies, local


class ConvRelPosEnc(nn.Module):
    """CoaT's convolutional relative position encoding: ``q * dwconv(v)``, kernel sizes per head group."""

    def __init__(
        self, head_dim: int, windows: tuple[int, ...], head_splits: tuple[int, ...], *, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.channel_splits = [hs * head_dim for hs in head_splits]
        self.conv_list = nn.ModuleList(
            DepthwiseConv2d(c, c, k, padding=k // 2, groups=c, device=device, dtype=dtype)
            for k, c in zip(windows, self.channel_splits)
        )

    def forward(self, q: torch.Tensor, v: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, heads, n, ch = v.shape
        v_img = v.transpose(2, 3).reshape(b, heads * ch, hw[0], hw[1])  # [B, heads*Ch, H, W]
        parts = v_img.split(self.channel_splits, 1)  # indexed, not iterated: an FX proxy has no length
        conv_v = torch.cat([conv(parts[i]) for i, conv in enumerate(self.conv_list)], 1)
        conv_v = conv_v.reshape(b, heads, ch, n).transpose(2, 3)
        return q * conv_v


@MIXERS.register("group_mix")
class GroupMixAttention(nn.Module):
    """Group-Mix Attention (GroupMixFormer, arXiv 2311.15157).

    ``qkv`` is split into 5 channel segments (``dim`` divisible by 5): four feed a factorised
    (linear-complexity, CoaT-style) attention over ``num_heads`` heads -- softmax of K over tokens,
    ``Q (K^T V) * scale`` (``scale = (dim // heads)^-0.5`` as released) plus the conv relative position encoding -- and one is a non-attention conv
    branch. The factorised form is not ``softmax(QK^T)V``, so ``scaled_dot_product_attention`` does not
    apply. BatchNorm inside means train/eval mode matters; no class tokens.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        *,
        qkv_bias: bool = True,
        agg_kernels: tuple[int, int, int] = (3, 5, 7),
        crpe_windows: tuple[int, ...] = (3, 5, 7),
        crpe_head_splits: tuple[int, ...] = (2, 3, 3),
        proj_drop: float = 0.0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if dim % 5:
            raise ValueError(f"group_mix splits channels into 5 segments: dim ({dim}) must be divisible by 5.")
        trans_dim = dim // 5 * 4
        if trans_dim % num_heads:
            raise ValueError(f"group_mix needs 4*dim/5 ({trans_dim}) divisible by heads ({num_heads}).")
        if len(crpe_windows) != len(crpe_head_splits) or sum(crpe_head_splits) != num_heads:
            raise ValueError(
                f"group_mix crpe_head_splits {tuple(crpe_head_splits)} must pair with crpe_windows "
                f"{tuple(crpe_windows)} and sum to heads ({num_heads})."
            )
        dd = dict(device=device, dtype=dtype)
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = trans_dim // num_heads
        self.scale = (dim // num_heads) ** -0.5  # as released: from dim, not the 4/5 attended channels
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, **dd)
        self.aggregator = GroupAggregator(dim, tuple(agg_kernels), **dd)
        self.crpe = ConvRelPosEnc(self.head_dim, tuple(crpe_windows), tuple(crpe_head_splits), **dd)
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_proxies(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """q, k, v ``[B, heads, N, Ch]`` after aggregation, and the branch tokens ``[B, N, C/5]``."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, c).permute(2, 0, 1, 3).reshape(3 * b, n, c)
        proxies, local = self.aggregator(tokens_to_nchw(qkv, hw))
        q, k, v = proxies.reshape(3, b, self.num_heads, self.head_dim, n).transpose(-1, -2).unbind(0)
        return q, k, v, local

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v, local = self.qkv_proxies(x, hw)
        kv = k.softmax(dim=2).transpose(-1, -2) @ v  # [B, heads, Ch, Ch]
        out = self.scale * (q @ kv) + self.crpe(q, v, hw)
        out = out.transpose(1, 2).reshape(b, n, c // 5 * 4)
        return self.proj_drop(self.proj(torch.cat([out, local], dim=-1)))
