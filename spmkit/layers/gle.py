"""Guided Local Enhancement (GLE), the second step of Stepwise Patch Merging (Yu et al., IJCAI 2025).

Stride ``w`` (default 2), channels unchanged::

    x (B, C, H, W)
      guide token generator gtg: BatchNorm2d, GELU, depthwise conv 7x7 stride w padding 3 (bias)
          -> one guide token per w x w window                    (B, ceil(H/w), ceil(W/w), C)
      non-overlapping w x w windows, row-major: [guide, t00, t01, t10, t11]
      LayerNorm norm0 -> multi-head attention (qkv = Linear(C, 3C), 8 heads, no output projection)
      keep the guide token's output -> LayerNorm norm1
    -> (B, ceil(H/w), ceil(W/w), C)   channels-last

Only the guide's output row is kept, so only its query matters (``GuideAttention``). Odd sizes: the
guide conv gives ``ceil(H/w)`` rows natively; the window tokens are zero-padded to a multiple of ``w``
and the padded tokens are masked out of the attention, so a border window attends over its guide and
its real tokens only. (The official module requires even sizes.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d

#: the paper's defaults, shared by every merging layer built on GLE (``spm``, ``gle_only``)
GLE_HEADS = 8
GLE_GUIDE_KERNEL = 7
GLE_WINDOW = 2


class GuideAttention(nn.Module):
    """Multi-head attention of the first token of each sequence over the whole sequence.

    Equal to the official ``Attention`` followed by ``[:, 0]`` but computed as one query per sequence,
    with the key projection folded into the query and the value projection applied after the
    attention-weighted sum (exact: the key bias shifts every logit of a head equally, and the
    weights sum to one). Projection work per sequence of L tokens: 3 C^2 instead of 3 L C^2.
    The parameter stays one ``qkv`` Linear so official weights load unchanged.
    """

    def __init__(self, dim: int, num_heads: int = GLE_HEADS, *, device=None, dtype=None) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(
                f"guided local enhancement splits its {dim} output channels into gle_heads={num_heads} "
                f"attention heads, so out_dim must be divisible by gle_heads: make the stage's dim a multiple "
                f"of {num_heads} or set the merging's gle_heads to a divisor of {dim}."
            )
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, device=device, dtype=dtype)

    def forward(self, u: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``u``: (N, L, C) normalised tokens, the query token first; ``bias``: additive logits
        (N, L, 1), -inf masks a token, or None -> (N, C), the first token's output."""
        n, _, c = u.shape
        h, d = self.num_heads, self.head_dim
        w_q, w_k, w_v = self.qkv.weight.view(3, h, d, c).unbind(0)
        b_q, _, b_v = self.qkv.bias.view(3, h, d).unbind(0)  # the key bias cancels in the softmax
        q = F.linear(u[:, 0], (w_q * self.scale).flatten(0, 1), (b_q * self.scale).flatten())  # [N, C]
        # fold the key projection into the query, per head: r_h = W_k,h^T q_h, [h, N, d] @ [h, d, C]
        r = torch.bmm(q.view(n, h, d).transpose(0, 1).contiguous(), w_k)  # [h, N, C]
        logits = torch.bmm(u, r.permute(1, 2, 0))  # [N, L, h]
        if bias is not None:
            logits = logits + bias
        attn = logits.softmax(dim=1)
        z = torch.bmm(attn.transpose(1, 2), u)  # [N, h, C]: per head, the attention-weighted sum of tokens
        # value projection after the sum, per head: [h, N, C] @ [h, C, d] -> [h, N, d]
        out = torch.baddbmm(b_v.unsqueeze(1), z.transpose(0, 1), w_v.transpose(1, 2))
        return out.transpose(0, 1).reshape(n, c)


class GuidedLocalEnhancement(nn.Module):
    """GLE: guide tokens from a strided depthwise conv attend over their w x w windows."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = GLE_HEADS,
        guide_kernel: int = GLE_GUIDE_KERNEL,
        window: int = GLE_WINDOW,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if guide_kernel < 1 or guide_kernel % 2 == 0:
            raise ValueError(
                f"guide_kernel must be an odd positive integer (padding guide_kernel//2 gives one guide "
                f"token per window); got {guide_kernel}."
            )
        if window < 1:
            raise ValueError(f"window must be a positive integer; got {window}.")
        f = {"device": device, "dtype": dtype}
        self.dim, self.window, self.guide_kernel = dim, window, guide_kernel
        self.gtg = nn.Sequential(  # guide token generator
            nn.BatchNorm2d(dim, **f),
            nn.GELU(),
            DepthwiseConv2d(dim, dim, guide_kernel, stride=window, padding=guide_kernel // 2, groups=dim, **f),
        )
        self.attn = GuideAttention(dim, num_heads, **f)
        self.norm0 = nn.LayerNorm(dim, **f)
        self.norm1 = nn.LayerNorm(dim, **f)

    def init_weights(self) -> None:
        """Nothing beyond PyTorch's defaults: the official module has no custom init (a backbone's
        model-wide pass sets ``attn.qkv`` to trunc-normal 0.02, as the official PVT does)."""

    #: In eager mode on CPU with one thread, the windows are processed in chunks of whole window rows whose
    #: per-head intermediates (num_heads * C floats per window) total about this many elements (2 MB in
    #: float32): they then stay in the caches and are reused from the allocator instead of being fresh,
    #: page-faulted memory, which halves GLE's CPU time at PVT sizes at batch 32. With several threads the
    #: chunks' many small parallel ops cost more than they save (measured on a shared 2-core machine), so
    #: chunking is off there, on other devices, and whenever a graph is captured (torch.compile,
    #: torch.export, jit.trace, ONNX export, FX): a captured graph is one unchunked pass whatever the batch
    #: size and thread count. Same arithmetic, same result; 0 disables it.
    cpu_chunk_elements: int = 1 << 19

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` (any memory format) -> ``(B, ceil(H/w), ceil(W/w), C)`` channels-last."""
        b, c = x.shape[0], x.shape[1]
        guide = self.gtg(x).permute(0, 2, 3, 1)  # [B, Ho, Wo, C]; BatchNorm sees the whole batch
        ho, wo = guide.shape[1], guide.shape[2]
        # rows of windows: guide [B*Ho, Wo, C], tokens [B*Ho, w, Wo, w, C]; bias [Ho*Wo, 1 + w*w, 1]
        tokens, bias = gle_window_tokens(x, ho, wo, self.window)
        guide = guide.reshape(b * ho, wo, c)
        rows = b * ho
        step = self._eager_chunk_rows(x, wo)
        if not step or step >= rows:
            return self._attend(guide, tokens, bias.repeat(b, 1, 1)).view(b, ho, wo, c)
        # split (not slices): its backward is one concatenation, not a full-size gradient per chunk
        bias = bias.view(ho, wo, *bias.shape[1:])
        outs = []
        for r0, g, t in zip(range(0, rows, step), guide.split(step), tokens.split(step)):  # row r: window row r % Ho
            rb = bias[torch.arange(r0, r0 + g.shape[0], device=x.device) % ho].flatten(0, 1)
            outs.append(self._attend(g, t, rb))
        return torch.cat(outs).view(b, ho, wo, c)

    def _eager_chunk_rows(self, x: torch.Tensor, wo: int) -> int:
        """Window rows per chunk in eager CPU one-thread mode; 0 (no chunking) otherwise, and always
        while a graph is captured, so no graph depends on the thread count or branches on the batch."""
        if (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
                or isinstance(x, torch.fx.Proxy)):
            return 0
        if x.device.type != "cpu" or self.cpu_chunk_elements <= 0 or torch.get_num_threads() != 1:
            return 0
        return max(1, self.cpu_chunk_elements // (self.attn.num_heads * x.shape[1] * wo))

    def _attend(self, guide: torch.Tensor, tokens: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Rows of windows: guide [R, Wo, C], tokens [R, w, Wo, w, C], bias [R*Wo, 1 + w*w, 1]
        -> norm1(attention output) [R, Wo, C]."""
        r, wo, c = guide.shape
        w = self.window
        # sequences [guide, t00, t01, t10, t11] per window: [R, Wo, 1 + w*w, C] (one concatenation: the
        # TorchScript ONNX exporter loses in-place writes into a preallocated buffer)
        seq = torch.cat([guide.unsqueeze(2), tokens.transpose(1, 2).reshape(r, wo, w * w, c)], dim=2)
        seq = self.norm0(seq)
        out = self.attn(seq.view(r * wo, 1 + w * w, c), bias)  # [R*Wo, C]
        return self.norm1(out.view(r, wo, c))


def gle_window_tokens(x: torch.Tensor, ho: int, wo: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` -> its tokens as rows of ``w x w`` windows ``[B*Ho, w, Wo, w, C]`` (zero-padded
    at the bottom/right to ``Ho*w x Wo*w``) and the additive logits of each window's sequence
    ``[Ho*Wo, 1 + w*w, 1]``: 0, and -inf at padded tokens (the guide is always there).

    Opaque to FX symbolic tracing (its ``if`` needs concrete sizes); torch.compile and torch.export trace
    it, branching on the spatial size only.
    """
    b, c, height, width = x.shape
    tokens = x.permute(0, 2, 3, 1)  # [B, H, W, C]
    pad_h, pad_w = ho * w - height, wo * w - width
    if pad_h or pad_w:
        tokens = F.pad(tokens, (0, 0, 0, pad_w, 0, pad_h))
        rows = torch.arange(ho * w, device=x.device) < height
        cols = torch.arange(wo * w, device=x.device) < width
        valid = (rows[:, None] & cols[None, :]).view(ho, w, wo, w).transpose(1, 2).reshape(ho * wo, w * w)
        valid = torch.cat([valid.new_ones(ho * wo, 1), valid], dim=1)
        bias = torch.zeros(valid.shape, device=x.device, dtype=x.dtype).masked_fill(~valid, float("-inf"))
    else:
        bias = torch.zeros(ho * wo, 1 + w * w, device=x.device, dtype=x.dtype)
    return tokens.reshape(b * ho, w, wo, w, c), bias.unsqueeze(-1)


torch.fx.wrap("gle_window_tokens")
