"""FLOP counting with torch's ``FlopCounterMode``: counts the ops the model really runs (so SPM's folded
GLE and fused attention are counted as computed), per module. MACs = FLOPs / 2 (the field's "GFLOPs").

Only matmul/conv-like ops are counted (as fvcore and the papers do); norms, softmax and activations are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class FlopReport:
    total_flops: int
    by_module: dict[str, int] = field(default_factory=dict)  # module path ("" = whole model) -> flops

    @property
    def macs(self) -> int:
        return self.total_flops // 2

    def module_macs(self, name: str) -> int:
        return self.by_module.get(name, 0) // 2


def count_flops(
    model: nn.Module, input_size: tuple[int, ...] = (1, 3, 224, 224), device: str | torch.device | None = None
) -> FlopReport:
    """FLOPs of one forward pass on a zero input of ``input_size`` (on the model's device; meta works)."""
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    x = torch.zeros(input_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, depth=None)
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    root = type(model).__name__
    by_module: dict[str, int] = {}
    for name, ops in counter.get_flop_counts().items():
        key = "" if name in ("Global", root) else name.removeprefix(f"{root}.")
        by_module[key] = by_module.get(key, 0) + int(sum(ops.values()))
    return FlopReport(total_flops=int(counter.get_total_flops()), by_module=by_module)
