"""Swin (shifted) window attention with a relative position bias table."""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from spmkit.layers.heads import merge_heads
from spmkit.layers.pad import pad_nhwc_to_multiple
from spmkit.layers.rel_pos import cached_relative_position_index
from spmkit.layers.table_resize import TableResizeError, rel_pos_table_to_resize, source_rel_pos_grid
from spmkit.registry import MIXERS

# opaque to FX symbolic tracing (they need concrete sizes; see spmkit/layers/pad.py)
torch.fx.wrap("pad_nhwc_to_multiple")
torch.fx.wrap("cached_relative_position_index")
torch.fx.wrap("cached_shifted_window_mask")


def window_partition(x: torch.Tensor, win: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, Wh*Ww, C)``, windows in row-major order per image."""
    B, H, W, C = x.shape
    x = x.view(B, H // win[0], win[0], W // win[1], win[1], C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, win[0] * win[1], C)


def window_reverse(windows: torch.Tensor, win: tuple[int, int], H: int, W: int) -> torch.Tensor:
    """Inverse of ``window_partition``: ``(B * nW, Wh*Ww, C)`` -> ``(B, H, W, C)``."""
    C = windows.shape[-1]
    x = windows.view(-1, H // win[0], W // win[1], win[0], win[1], C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def shifted_window_mask(H: int, W: int, win: tuple[int, int], shift: tuple[int, int], device=None) -> torch.Tensor:
    """``(nW, N, N)`` additive mask (0 / -100) that stops attention between regions a cyclic shift joined."""
    img = torch.zeros(1, H, W, 1, device=device)
    cnt = 0
    for hs in (slice(0, -win[0]), slice(-win[0], -shift[0]), slice(-shift[0], None)):
        for ws in (slice(0, -win[1]), slice(-win[1], -shift[1]), slice(-shift[1], None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    ids = window_partition(img, win).squeeze(-1)  # nW, N
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


@functools.lru_cache(maxsize=16)
def _cached_mask(H: int, W: int, win: tuple[int, int], shift: tuple[int, int], device: str) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor, so a later training step can save it for backward
        return shifted_window_mask(H, W, win, shift, device=device)


def cached_shifted_window_mask(H: int, W: int, win: tuple[int, int], shift: tuple[int, int],
                               device: torch.device | str) -> torch.Tensor:
    """``shifted_window_mask`` computed once per padded map size, window, shift and device (not cached
    while a graph is captured: torch.export computes it on fake tensors, which must not outlive the trace)."""
    if torch.compiler.is_compiling():
        return shifted_window_mask(H, W, tuple(win), tuple(shift), device=device)
    return _cached_mask(H, W, tuple(win), tuple(shift), str(device))


@MIXERS.register("window")
class WindowAttention(nn.Module):
    """Multi-head attention inside non-overlapping windows, optionally cyclically shifted by half a window.

    As in Swin, a window larger than the stage's feature map (at the blueprint's ``img_size``) shrinks to
    the map and the shift is dropped. At run time, maps that the window does not divide are zero-padded
    at the bottom/right (after the norm, as in Swin) and cropped back; ``shift_order`` says whether the
    shift comes after the padding (``pad_shift``: Microsoft's detection code and mmdet) or before it
    (``shift_pad``: timm). Both give the same result when the window divides the map. Class tokens are
    not supported.
    State-dict names follow Swin/timm: ``qkv``, ``proj``, ``relative_position_bias_table``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        feat_size: tuple[int, int],
        window_size: int = 7,
        shift: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        allow_padding: bool = False,
        shift_order: Literal["pad_shift", "shift_pad"] = "pad_shift",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if shift_order not in ("pad_shift", "shift_pad"):
            raise ValueError(f"shift_order must be 'pad_shift' or 'shift_pad', got {shift_order!r}")
        self.shift_first = shift_order == "shift_pad"
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by heads {num_heads}")
        if window_size < 1:
            raise ValueError(f"window_size must be at least 1, got {window_size}")
        win = tuple(min(r, window_size) for r in feat_size)
        for r, w in zip(feat_size, win):
            if r % w and not allow_padding:
                fits = [d for d in range(2, r + 1) if r % d == 0]
                raise ValueError(
                    f"window_size {window_size} does not divide the {feat_size[0]}x{feat_size[1]} feature map "
                    f"of this stage at the blueprint's img_size; use a window that divides {r} "
                    f"(e.g. {', '.join(map(str, fits[:6]))}) or set allow_padding: true"
                )
        self.window_size: tuple[int, int] = win  # type: ignore[assignment]
        self.shift_size = tuple(0 if r <= window_size else w // 2 for r, w in zip(feat_size, win)) if shift else (0, 0)
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias, **dd)
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * win[0] - 1) * (2 * win[1] - 1), num_heads, **dd)
        )
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def resize_state_dict(self, prefix: str, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """A checkpoint's bias table of another window, resized to this window as timm's Swin
        ``checkpoint_filter_fn`` does (``timm.layers.resize_rel_pos_bias_table``), so transfers equal timm's."""
        found = rel_pos_table_to_resize(self, prefix, state_dict)
        if found is None:
            return []
        src, key = found
        src_win = source_rel_pos_grid(src.shape[0], self.window_size, key)
        try:
            from timm.layers import resize_rel_pos_bias_table
        except ImportError as e:  # very old timm
            raise TableResizeError(f"{key}: resizing needs timm.layers.resize_rel_pos_bias_table ({e})") from e
        try:
            out = resize_rel_pos_bias_table(src, new_window_size=self.window_size, new_bias_shape=self.relative_position_bias_table.shape)
        except (ValueError, AssertionError) as e:
            raise TableResizeError(f"{key}: the {src_win[0]}x{src_win[1]} window's table cannot be resized "
                                   f"to a {self.window_size[0]}x{self.window_size[1]} window ({e})") from e
        state_dict[key] = out.to(src.dtype)
        return [key]

    def no_weight_decay(self) -> set[str]:
        return {"relative_position_bias_table"}

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw
        win, shift = self.window_size, self.shift_size
        n = win[0] * win[1]
        if any(shift) and self.shift_first:  # timm: shift the map, then pad it
            x = torch.roll(x.unflatten(1, (H, W)), shifts=(-shift[0], -shift[1]), dims=(1, 2)).flatten(1, 2)
        x = pad_nhwc_to_multiple(x.view(B, H, W, C), win[0], win[1])
        Hp, Wp = x.shape[1], x.shape[2]
        if any(shift) and not self.shift_first:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = window_partition(x, win)  # [B*nW, n, C]
        nw = windows.shape[0] // B
        # [B*nW, n, 3*C] -> 3 x [B, nW, heads, n, d]
        qkv = self.qkv(windows).view(B, nw, n, 3, self.num_heads, -1).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.unbind(0)
        bias = self.relative_position_bias_table[cached_relative_position_index(*win, x.device).view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1).to(q.dtype)  # [heads, n, n]
        q, k, v = (t.reshape(B * nw, self.num_heads, n, -1) for t in (q, k, v))  # views, no copy
        if any(shift):
            # repeating the [nW, heads, n, n] mask over the batch costs less memory than copying q, k, v
            mask = cached_shifted_window_mask(Hp, Wp, win, shift, x.device).to(q.dtype)
            attn_mask = (bias.unsqueeze(0) + mask.unsqueeze(1)).repeat(B, 1, 1, 1)
        else:
            attn_mask = bias.unsqueeze(0)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.0
        )
        out = merge_heads(out)  # [B*nW, heads, n, d] -> [B*nW, n, C]
        out = self.proj_drop(self.proj(out))
        x = window_reverse(out, win, Hp, Wp)
        if any(shift) and not self.shift_first:
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        x = x[:, :H, :W]  # crop the padding (a view, no copy, when there is none)
        if any(shift) and self.shift_first:
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x.reshape(B, N, C)
