"""Merging attention heads back into channels after ``scaled_dot_product_attention``."""

from __future__ import annotations

import torch


def is_exporting() -> bool:
    """True while torch.export (and the ONNX exporter built on it) traces; torch without the flag (< 2.4)
    answers ``torch.compiler.is_compiling()``."""
    return getattr(torch.compiler, "is_exporting", torch.compiler.is_compiling)()


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, heads, N, d] -> [B, N, heads*d]`` (head-major channels).

    CPU SDPA returns ``[B, N, heads, d]`` memory when the query has it, so eager pays nothing here and an
    export traces the reshape as a view; exporters that later decompose SDPA (ONNX) get ``[B, heads, N, d]``
    memory, where that view fails. While exporting, the attention output is copied to a standard layout
    first; eager and torch.compile keep the free view.
    """
    if is_exporting():
        x = x.clone(memory_format=torch.contiguous_format)
    b, _, n, _ = x.shape
    return x.transpose(1, 2).reshape(b, n, -1)
