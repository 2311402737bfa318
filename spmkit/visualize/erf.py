"""Effective receptive field (Luo et al., NeurIPS 2016) of every stage.

For each stage's map ``F`` (``forward_intermediates``) the gradient of ``sum_c relu(F[:, c, h//2, w//2])``
(the centre cell) w.r.t. the input, absolute, summed over input channels and averaged over the batch;
then the radius around that cell's centre (in input pixels) inside which 50% / 90% of the gradient mass
lies. The ReLU is RepLKNet's (Ding et al., CVPR 2022): a plain channel sum is constant after a LayerNorm
with unit weight (a stage norm), so its gradient would vanish. One forward, one backward per stage;
parameters get no gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from spmkit.visualize.kind import KINDS, Inputs, Kind, Options, Panel, Row


def stage_erfs(model: nn.Module, x: torch.Tensor) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Per stage, the ``[H, W]`` mean absolute input gradient of the centre output (float64) and the
    stage's map size ``(h, w)``."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            feats = model.forward_intermediates(x, intermediates_only=True)
            out = []
            for i, f in enumerate(feats):
                h, w = f.shape[-2:]
                (g,) = torch.autograd.grad(f[:, :, h // 2, w // 2].relu().sum(), x, retain_graph=i < len(feats) - 1)
                out.append((g.abs().sum(1).mean(0).double().cpu().numpy(), (h, w)))
        return out
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def centre_of(grid: tuple[int, int], image: tuple[int, int]) -> tuple[float, float]:
    """Input-pixel coordinates of the centre of cell ``(h//2, w//2)`` of a ``grid`` map over ``image``."""
    return tuple((g // 2 + 0.5) * s / g - 0.5 for g, s in zip(grid, image))  # type: ignore[return-value]


def mass_radius(erf: np.ndarray, centre: tuple[float, float], fractions=(0.5, 0.9)) -> list[float | None]:
    """Smallest Euclidean distance from ``centre`` (pixels) within which each fraction of the mass lies
    (None when there is no gradient at all)."""
    yy, xx = np.mgrid[0 : erf.shape[0], 0 : erf.shape[1]]
    d = np.hypot(yy - centre[0], xx - centre[1]).ravel()
    order = np.argsort(d, kind="stable")
    total = erf.sum()
    if total <= 0:
        return [None] * len(fractions)
    cum = np.cumsum(erf.ravel()[order]) / total
    return [float(d[order][min(np.searchsorted(cum, f), len(cum) - 1)]) for f in fractions]


def _coarse(a: np.ndarray, cells: int = 32) -> tuple[list, int]:
    """The map summed into at most ``cells`` x ``cells`` blocks, as fractions of the mass."""
    k = max(1, -(-max(a.shape) // cells))
    h, w = -(-a.shape[0] // k) * k, -(-a.shape[1] // k) * k
    p = np.zeros((h, w))
    p[: a.shape[0], : a.shape[1]] = a
    p = p.reshape(h // k, k, w // k, k).sum((1, 3))
    p = p / max(p.sum(), 1e-300)
    return np.round(p, 6).tolist(), k


@KINDS.register("erf")
class EffectiveReceptiveField(Kind):
    name = "erf"
    summary = "effective receptive field of each stage, with the radii holding 50% / 90% of it"
    needs = "stages"
    random_inputs = True

    def compute(self, model: nn.Module, label: str, inputs: Inputs, opts: Options) -> tuple[list[Row], dict[str, Any]]:
        image_hw = tuple(inputs.tensor.shape[-2:])
        erfs = stage_erfs(model, inputs.tensor)
        panels, stages = [], []
        for i, ((a, grid), info) in enumerate(zip(erfs, model.feature_info)):
            red = int(info["reduction"])
            c = centre_of(grid, image_hw)
            r50, r90 = mass_radius(a, c)
            coarse, cell = _coarse(a)
            if r50 is None or r90 is None:
                stages.append(dict(stage=i + 1, reduction=red, grid=list(grid), centre=[round(v, 2) for v in c],
                                   r50=None, r90=None, map=coarse, map_cell_px=cell))
                panels.append(Panel(f"stage {i + 1}: no gradient reaches the input", heat=a, cmap="magma"))
                continue
            stages.append(dict(stage=i + 1, reduction=red, grid=list(grid), centre=[round(v, 2) for v in c],
                               r50=round(r50, 2), r90=round(r90, 2), map=coarse, map_cell_px=cell))
            shown = np.log10(1 + 1000 * a / max(a.max(), 1e-300)) / 3  # log scale: the tails show
            panels.append(Panel(f"stage {i + 1}: r50 {r50:.1f}, r90 {r90:.1f} px", heat=shown, cmap="magma",
                                marker=c, circles=(r50, r90)))
        return [Row(label, panels)], dict(label=label, stages=stages)
