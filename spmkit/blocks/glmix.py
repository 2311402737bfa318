"""GLNet's block: conv position encoding, a mixer (GLMix or MHSA), layer scale, conv MLP."""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from spmkit.blocks.transformer import LayerScale
from spmkit.layers.drop import DropPath
from spmkit.layers.tokens import residual_conv_on_grid, tokens_to_nchw
from spmkit.mixers.glmix import GLMix
from spmkit.registry import BLOCKS


class ConvMlp(nn.Module):
    """GLNet's MLP: 1x1 conv (as ``fc1``), optional residual depthwise 3x3 (``dw``), act, 1x1 conv (``fc2``).

    The 1x1 convs are ``nn.Linear`` on tokens (same maths and parameter count as the official convs).
    """

    def __init__(self, dim: int, hidden: int, act_layer: Callable[[], nn.Module], dw: bool, *, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.fc1 = nn.Linear(dim, hidden, **dd)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, **dd) if dw else None
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, dim, **dd)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)
        if self.dw is not None:
            x = residual_conv_on_grid(x, hw, self.dw)
        return self.fc2(self.act(x))


@BLOCKS.register("glmix")
class GLNetBlock(nn.Module):
    """``x += dwconv(x)`` (if ``cpe_kernel``); ``x += DP(LS(mixer(norm1 x)))``; ``x += DP(LS(mlp(norm2 x)))``.

    Covers the official ``GLMixBlock``, ``MHSA_NCHW_Block`` (mixer ``global``) and ``MHSA_Block``
    (mixer ``global``, ``cpe_kernel: 0``, ``mlp_dw: false``). ``norm_eps`` set: both norms are plain
    LayerNorms with that eps (GLNet: 1e-6, while its stem, transitions and final norm are BatchNorm)
    instead of the model norm. A GLMix mixer gets the block input as its slot source, as released.
    ``layer_scale <= 0`` disables layer scale. ``mixer: null`` gives the MLP branch only. Class tokens
    (with a mixer that takes them, e.g. ``global``) skip the convs. ``release_init``: initialise as the
    release does instead of spmkit's trunc-normal Linears: the 1x1-conv MLPs of its NCHW blocks keep
    PyTorch's default conv init (biases included), ``nn.MultiheadAttention``'s in-projection is
    Xavier-uniform with zero bias (the token-format ``MHSA_Block``'s Linear MLP stays trunc-normal).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float,
        mixer: nn.Module | None,
        *,
        norm_layer: Callable[..., nn.Module],
        act_layer: Callable[[], nn.Module] = nn.GELU,
        cpe_kernel: int = 0,
        mlp_dw: bool = False,
        layer_scale: float = -1.0,
        norm_eps: float | None = None,
        release_init: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.release_init = release_init
        if cpe_kernel < 0 or (cpe_kernel and cpe_kernel % 2 == 0):
            raise ValueError(f"glmix block cpe_kernel must be odd (or 0 for none), got {cpe_kernel}.")
        dd = dict(device=device, dtype=dtype)
        if norm_eps is not None:
            norm_layer = functools.partial(nn.LayerNorm, eps=norm_eps)
        self.pos_conv = nn.Conv2d(dim, dim, cpe_kernel, padding=cpe_kernel // 2, groups=dim, **dd) if cpe_kernel else None
        self.norm1 = norm_layer(dim, **dd) if mixer is not None else None
        self.mixer = mixer
        self.ls1 = LayerScale(dim, layer_scale, **dd) if layer_scale > 0 and mixer is not None else nn.Identity()
        self.norm2 = norm_layer(dim, **dd)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer, mlp_dw, **dd)
        self.ls2 = LayerScale(dim, layer_scale, **dd) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def init_weights(self) -> None:
        """Runs after the model-wide Linear init (and before the mixer's own ``init_weights``)."""
        if not self.release_init:
            return
        from spmkit.mixers.global_attn import GlobalAttention

        if isinstance(self.mixer, GLMix) or self.pos_conv is not None or self.mlp.dw is not None:  # NCHW blocks
            self.mlp.fc1.reset_parameters()  # = nn.Conv2d's default init of the same 1x1 conv
            self.mlp.fc2.reset_parameters()
        if isinstance(self.mixer, GlobalAttention):
            nn.init.xavier_uniform_(self.mixer.qkv.weight)
            if self.mixer.qkv.bias is not None:
                nn.init.zeros_(self.mixer.qkv.bias)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        source = x
        if self.pos_conv is not None:
            x = residual_conv_on_grid(x, hw, self.pos_conv)
        if self.mixer is not None:
            if isinstance(self.mixer, GLMix):
                y = self.mixer(self.norm1(x), hw, slot_source=tokens_to_nchw(source, hw))
            else:
                y = self.mixer(self.norm1(x), hw)
            x = x + self.drop_path(self.ls1(y))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x), hw)))
