"""GLMix token mixer (GLNet, arXiv 2411.14429): soft clustering into semantic slots + a conv branch."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d
from spmkit.layers.heads import merge_heads
from spmkit.layers.tokens import nchw_to_tokens, tokens_to_nchw
from spmkit.registry import MIXERS


class SlotAttention(nn.Module):
    """Multi-head self-attention over the slots, laid out as ``nn.MultiheadAttention``
    (``in_proj_weight``, ``in_proj_bias``, ``out_proj``) but computed with ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim, device=device, dtype=dtype))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim, device=device, dtype=dtype))
        self.out_proj = nn.Linear(dim, dim, device=device, dtype=dtype)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(merge_heads(x))


@MIXERS.register("glmix")
class GLMix(nn.Module):
    """Global (slots) + local (conv) mixing of one GLMix block.

    Slots start as ``adaptive_avg_pool2d(x, sqrt(num_slots))`` (``slot_init='ada_avgpool'``) or as a
    learned ``[1, num_slots, C]`` parameter (``'param'``). Soft clustering:
    ``logits = normalize(slots) @ (s * normalize(x))^T`` with learnable ``s`` (init ``C^-0.5``),
    slots = ``softmax_pixels(logits) @ x``; MHSA over the slots; soft dispatch
    ``softmax_slots(logits^T) @ slots``; plus the parallel conv branch 1x1 -> depthwise ``k x k`` -> 1x1.

    ``forward(x, hw, slot_source=None)``: the official block pools the initial slots from the block
    input (before its position conv and norm); the ``glmix`` block passes that map as
    ``slot_source`` ``[B, C, H, W]``. Without it (e.g. inside a ``transformer`` block) the slots are
    pooled from ``x`` itself. No class tokens.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        num_slots: int = 64,
        slot_init: Literal["ada_avgpool", "param"] = "ada_avgpool",
        slot_scale: float | None = None,
        learnable_scale: bool = True,
        local_kernel: int = 5,
        slot_attention: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"glmix needs dim ({dim}) divisible by heads ({num_heads}).")
        if slot_init == "ada_avgpool" and math.isqrt(num_slots) ** 2 != num_slots:
            raise ValueError(f"glmix slot_init 'ada_avgpool' needs a square num_slots, got {num_slots}.")
        if local_kernel < 0 or (local_kernel and local_kernel % 2 == 0):
            raise ValueError(f"glmix local_kernel must be odd (or 0 for no conv branch), got {local_kernel}.")
        dd = dict(device=device, dtype=dtype)
        self.dim = dim
        self.num_slots = num_slots
        self.slot_init = slot_init
        self.pool_size = math.isqrt(num_slots)
        self.slot_scale_init = slot_scale if slot_scale is not None else dim**-0.5
        scale = torch.empty((), **dd)
        if learnable_scale:
            self.slot_scale = nn.Parameter(scale)
        else:
            self.register_buffer("slot_scale", scale)
        self.init_slots = nn.Parameter(torch.empty(1, num_slots, dim, **dd)) if slot_init == "param" else None
        self.relation_mha = SlotAttention(dim, num_heads, **dd) if slot_attention else nn.Identity()
        if local_kernel:
            self.feature_conv = nn.Sequential(
                nn.Conv2d(dim, dim, 1, **dd),
                DepthwiseConv2d(dim, dim, local_kernel, padding=local_kernel // 2, groups=dim, **dd),
                nn.Conv2d(dim, dim, 1, **dd),
            )
        else:
            self.feature_conv = None
        self.init_weights()

    def init_weights(self) -> None:
        with torch.no_grad():
            self.slot_scale.fill_(self.slot_scale_init)
        if self.init_slots is not None:
            nn.init.normal_(self.init_slots, std=0.02)

    def initial_slots(self, source: torch.Tensor) -> torch.Tensor:
        """``[B or 1, num_slots, C]`` starting slots from an NCHW map."""
        if self.init_slots is not None:
            return self.init_slots
        return nchw_to_tokens(F.adaptive_avg_pool2d(source, self.pool_size))

    def clustering_logits(self, slots: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``[B, S, N]`` cosine similarities of slots and pixels times the learned scale."""
        return F.normalize(slots, dim=-1) @ (self.slot_scale * F.normalize(x, dim=-1)).transpose(-1, -2)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], slot_source: torch.Tensor | None = None) -> torch.Tensor:
        x_map = tokens_to_nchw(x, hw)
        slots = self.initial_slots(x_map if slot_source is None else slot_source)
        logits = self.clustering_logits(slots, x)
        slots = logits.softmax(dim=-1) @ x  # soft clustering: [B, S, C]
        slots = self.relation_mha(slots)
        out = logits.transpose(-1, -2).softmax(dim=-1) @ slots  # soft dispatch: [B, N, C]
        if self.feature_conv is not None:
            out = out + nchw_to_tokens(self.feature_conv(x_map))
        return out
