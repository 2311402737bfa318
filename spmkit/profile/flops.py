"""FLOP counting with ``torch.utils.flop_counter.FlopCounterMode``, attributed to named modules.

It counts the ops the model really runs, so SPM's folded GLE and fused attention
(``scaled_dot_product_attention``: the CPU flash kernel, CUDA flash / efficient / cuDNN kernels, or the
math fallback's matmuls) are counted as computed.

Convention (the one papers and timm tables use): a multiply-add is 2 FLOPs, MACs = FLOPs / 2; only
matrix multiplications, convolutions and attention (``scaled_dot_product_attention``, fused or not) are
counted. Norms, activations, softmax, additions and bias terms count zero: they are memory-bound and
papers leave them out. Counting never needs a GPU: build the model on the ``meta`` device and no memory
is used.

Fixes over torch's own table: the backward of a grouped (depthwise) convolution is counted per group
(torch counts the weight gradient as if the convolution were dense), and the count is attributed to
``named_modules()`` names (``stages.1.blocks.0.mixer``) instead of class-prefixed paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

aten = torch.ops.aten


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, groups, output_mask, out_shape=None, **kwargs) -> int:
    """``convolution_backward`` counted per group: each gradient costs what the forward costs."""
    flops = 0
    if output_mask[0]:  # grad_input: a (transposed) convolution of grad_out with the weight
        flops += conv_flop_count(list(grad_out_shape), list(w_shape), list(x_shape), not transposed)
    if output_mask[1]:  # grad_weight: one multiply-add per (output element, weight element in its group)
        conv_out = grad_out_shape if not transposed else x_shape
        conv_in = x_shape if not transposed else grad_out_shape
        batch, spatial = conv_in[0], prod(conv_out[2:])
        flops += 2 * batch * spatial * prod(w_shape)  # w_shape already holds C_in / groups
    return flops


def _attention_flops(q: Sequence[int], k: Sequence[int], v: Sequence[int], heads_last: bool) -> int:
    """``softmax(q k^T) v`` forward: ``2 * L_q * L_k * (E + E_v)`` per batch and head (the scaling, softmax,
    mask and dropout count zero). Layout ``(B, H, L, E)``, or ``(B, L, H, E)`` when ``heads_last``."""
    if heads_last:
        rows, lq, lk, e, ev = q[0] * q[2], q[1], k[1], q[3], v[3]
    else:
        rows, lq, lk, e, ev = prod(q[:-2]), q[-2], k[-2], q[-1], v[-1]
    return 2 * rows * lq * lk * (e + ev)


def _attention_formula(heads_last: bool, backward: bool) -> Callable[..., int]:
    """A formula for one SDPA kernel: forward ops take ``(q, k, v, ...)``, backward ops ``(grad_out, q, k,
    v, ...)``. A backward costs twice its forward (gradients of q, k, v and of the attention matrix), the
    convention of torch's own table; the score recomputation some kernels do is not counted."""

    def formula(*args: Any, out_shape: Any = None, **_kwargs: Any) -> int:
        q, k, v = args[1:4] if backward else args[0:3]
        flops = _attention_flops(q, k, v, heads_last)
        return 2 * flops if backward else flops

    return formula


def _attention_kernels() -> dict[Any, Callable[..., int]]:
    """Every fused attention kernel this torch has, forward and backward, mapped to its formula.

    Which kernel ``scaled_dot_product_attention`` dispatches to (CPU flash, CUDA flash / efficient / cuDNN,
    a backend's overrideable one) depends on the torch version, the device and the inputs, and torch's own
    table has not always listed them all (2.14 misses the CPU flash kernel). So the kernels are found by
    name among the ops this torch registers, and all get the same count. The math fallback is left out:
    it runs plain matmuls, which the table counts alike.
    """
    sdpa = {"_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_fused_attention_overrideable"}
    list_ops = getattr(torch._C, "_dispatch_get_all_op_names", None)
    if list_ops is not None:  # kernels added after this was written are found too
        sdpa |= {n.split("::", 1)[1].split(".", 1)[0] for n in list_ops()
                 if n.startswith("aten::_scaled_dot_product_") and "attention" in n and "_math" not in n}
    layouts = {name.removesuffix("_backward"): False for name in sdpa}  # (B, H, L, E)
    layouts |= {"_flash_attention": True, "_efficient_attention": True}  # inner kernels: (B, L, H, E)
    formulas: dict[Any, Callable[..., int]] = {}
    for base, heads_last in layouts.items():
        forward = f"{base}_forward" if heads_last else base
        for name, backward in ((forward, False), (f"{base}_backward", True)):
            op = getattr(aten, name, None)
            if op is not None:
                formulas[op] = _attention_formula(heads_last, backward)
    return formulas


CUSTOM_FLOP_FORMULAS: dict[Any, Any] = {aten.convolution_backward: _conv_backward_flop, **_attention_kernels()}


@dataclass
class FlopReport:
    """FLOPs of one call: the total, per ``named_modules()`` name (``""`` = whole model, inclusive), per op."""

    total_flops: int
    by_module: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return self.total_flops // 2

    @property
    def gmacs(self) -> float:
        return self.total_flops / 2e9

    def module_macs(self, name: str) -> int:
        return self.by_module.get(name, 0) // 2


def count_flops(model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224),
                device: str | torch.device | None = None, *, backward: bool = False,
                inputs: torch.Tensor | None = None) -> FlopReport:
    """FLOPs of ``model(x)`` for a zero ``x`` of ``input_size`` (or the given ``inputs``), in eval mode.

    ``x`` lives on ``device`` (default: the model's; ``meta`` costs nothing) in the model's dtype. With
    ``backward=True`` the count covers forward + backward of ``output.float().sum()`` (what a training
    step computes, optimizer excluded). The model's train/eval mode is restored afterwards.
    """
    p = next(model.parameters(), None)
    if inputs is None:
        device = device if device is not None else (p.device if p is not None else "cpu")
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        inputs = torch.zeros(input_size, device=device, dtype=dtype)
    by_module: dict[str, int] = {}
    counter = FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOP_FORMULAS)
    starts: dict[int, list[int]] = {}
    names = {id(m): n for n, m in model.named_modules()}

    def pre(mod: nn.Module, _args: Any) -> None:
        starts.setdefault(id(mod), []).append(counter.get_total_flops())

    def post(mod: nn.Module, _args: Any, _out: Any) -> None:
        start = starts[id(mod)].pop()
        name = names[id(mod)]
        by_module[name] = by_module.get(name, 0) + counter.get_total_flops() - start

    handles = []
    for mod in model.modules():
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        grad = torch.enable_grad() if backward else torch.no_grad()
        with grad, counter:
            out = model(inputs)
            if backward:
                out = out if isinstance(out, torch.Tensor) else out[0]
                out.float().sum().backward()
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return FlopReport(total_flops=int(counter.get_total_flops()), by_module=by_module, by_op=by_op)
