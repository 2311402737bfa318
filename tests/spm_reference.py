"""Straightforward Stepwise Patch Merging, computed the way the official module does it.

Used by the tests (our fast SPM must equal it) and by ``benchmarks/spm.py`` (our SPM must beat it).
Same parameter names and layout as the official module, so ``load_state_dict`` works both ways:
the MSA concatenates its scales one at a time, the GLE projects all 5 window tokens to q, k, v and
computes the full 5x5 attention, then keeps the guide's row. Odd sizes: the window tokens are
zero-padded and masked out as keys (the official code crashes on odd sizes; spmkit defines them so).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReferenceMSA(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel_sizes=(3, 5, 7, 9), expand_ratio: int = 2) -> None:
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        self.local_dim = in_dim // len(self.kernel_sizes)
        for k in self.kernel_sizes:
            setattr(self, f"local_conv_{k}",
                    nn.Conv2d(self.local_dim, self.local_dim, k, padding=k // 2, groups=self.local_dim))
        self.proj = nn.Sequential(
            nn.Conv2d(in_dim, in_dim * expand_ratio, 1, groups=self.local_dim),
            nn.BatchNorm2d(in_dim * expand_ratio),
            nn.GELU(),
            nn.Conv2d(in_dim * expand_ratio, out_dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # NCHW -> NCHW
        b, c, h, w = x.shape
        n = len(self.kernel_sizes)
        xs = x.view(b, n, self.local_dim, h, w).permute(1, 0, 2, 3, 4)
        out = None
        for i, k in enumerate(self.kernel_sizes):
            y = getattr(self, f"local_conv_{k}")(xs[i]).unsqueeze(2)
            out = y if out is None else torch.cat([out, y], dim=2)
        return self.proj(out.reshape(b, c, h, w))


class ReferenceAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, length, c = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if key_mask is not None:  # (N, L) bool, True = real token
            attn = attn.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        attn = attn.softmax(dim=-1)
        return (attn @ v).transpose(1, 2).reshape(n, length, c)


class ReferenceGLE(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, guide_kernel: int = 7, window: int = 2) -> None:
        super().__init__()
        self.window = window
        self.gtg = nn.Sequential(
            nn.BatchNorm2d(dim), nn.GELU(),
            nn.Conv2d(dim, dim, guide_kernel, stride=window, padding=guide_kernel // 2, groups=dim),
        )
        self.attn = ReferenceAttention(dim, num_heads)
        self.norm0 = nn.LayerNorm(dim)
        self.norm1 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # NCHW -> NHWC
        b, c, h, w = x.shape
        s = self.window
        guide = self.gtg(x)
        ho, wo = guide.shape[-2:]
        xp = F.pad(x, (0, wo * s - w, 0, ho * s - h))
        windows = xp.reshape(b, c, ho, s, wo, s).permute(0, 2, 4, 3, 5, 1).reshape(b * ho * wo, s * s, c)
        key_mask = None
        if (ho * s, wo * s) != (h, w):
            valid = F.pad(torch.ones(h, w, dtype=torch.bool), (0, wo * s - w, 0, ho * s - h))
            valid = valid.reshape(ho, s, wo, s).permute(0, 2, 1, 3).reshape(ho * wo, s * s).repeat(b, 1)
            key_mask = torch.cat([torch.ones(b * ho * wo, 1, dtype=torch.bool), valid], dim=1)
        guide = guide.flatten(2).transpose(1, 2).reshape(b * ho * wo, 1, c)
        seq = torch.cat([guide, windows], dim=1)
        out = self.attn(self.norm0(seq), key_mask)[:, 0].reshape(b, ho, wo, c)
        return self.norm1(out)


class ReferenceSPM(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel_sizes=(3, 5, 7, 9), expand_ratio: int = 2,
                 gle_heads: int = 8, guide_kernel: int = 7, window: int = 2) -> None:
        super().__init__()
        self.msa = ReferenceMSA(in_dim, out_dim, kernel_sizes, expand_ratio)
        self.gle = ReferenceGLE(out_dim, gle_heads, guide_kernel, window)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # NHWC -> NHWC
        return self.gle(self.msa(x.permute(0, 3, 1, 2)))
