"""Opt-in, side-effect-free recording of what a module computes during a normal forward.

Nothing here edits a component: forward hooks are added for the duration of a ``with`` block and removed
after it. ``attention_probs`` also routes ``torch.nn.functional.scaled_dot_product_attention`` through a
wrapper for that block; the wrapper returns the original function's result untouched (so outputs are
bit-identical) and, only while the chosen module is running, additionally computes
``softmax(q k^T * scale + mask)`` from the very q, k and mask the module passed.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def explicit_attention(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None = None,
                       is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """The attention probabilities ``scaled_dot_product_attention`` uses, ``[..., Lq, Lk]`` float32."""
    q, k = q.detach().float(), k.detach().float()
    logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if is_causal:
        lq, lk = logits.shape[-2:]
        logits = logits.masked_fill(~torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float("-inf"))
        else:
            logits = logits + attn_mask.detach().float()
    return logits.softmax(dim=-1)


@contextmanager
def hooks(*handles_or_none: Any) -> Iterator[None]:
    """Remove every hook handle on exit."""
    try:
        yield
    finally:
        for h in handles_or_none:
            if h is not None:
                h.remove()


@contextmanager
def attention_probs(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, every ``scaled_dot_product_attention`` call made inside ``module``'s forward
    appends its probabilities ``[..., Lq, Lk]`` (float32, detached) to the yielded list."""
    records: list[torch.Tensor] = []
    active = [0]
    original = F.scaled_dot_product_attention

    def wrapper(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        out = original(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                       scale=scale, **kw)
        if active[0]:
            records.append(explicit_attention(query, key, attn_mask, is_causal, scale))
        return out

    def enter(*_: Any) -> None:
        active[0] += 1

    def leave(*_: Any) -> None:
        active[0] -= 1

    pre = module.register_forward_pre_hook(enter)
    post = module.register_forward_hook(leave)
    F.scaled_dot_product_attention = wrapper
    try:
        with hooks(pre, post):
            yield records
    finally:
        F.scaled_dot_product_attention = original


@contextmanager
def record(module: nn.Module, fn: Callable[[nn.Module, tuple, dict, Any], Any]) -> Iterator[list[Any]]:
    """Within the block, each forward of ``module`` appends ``fn(module, args, kwargs, output)``."""
    records: list[Any] = []

    def hook(mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        with torch.no_grad():
            records.append(fn(mod, args, kwargs, output))

    with hooks(module.register_forward_hook(hook, with_kwargs=True)):
        yield records
