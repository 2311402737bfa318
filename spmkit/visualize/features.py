"""PCA of each stage's feature map to RGB: the first three principal components of the channels,
fitted jointly over the images of the batch, each stretched to 0..1 (1st..99th percentile)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from spmkit.visualize.kind import KINDS, Inputs, Kind, Options, Panel, Row


def pca_rgb(f: torch.Tensor) -> tuple[np.ndarray, list[float]]:
    """``[N, C, h, w]`` -> (``[N, h, w, 3]`` colours in 0..1, explained variance ratio of the 3 components)."""
    n, c, h, w = f.shape
    x = f.permute(0, 2, 3, 1).reshape(-1, c).double()
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / max(len(x) - 1, 1))  # ascending
    k = min(3, c)
    top, vecs = evals.flip(0)[:k].clamp_min(0), evecs.flip(1)[:, :k]
    vecs = vecs * torch.sign(vecs[vecs.abs().argmax(0), torch.arange(k)])  # sign: largest loading positive
    proj = (x @ vecs).numpy()
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    rgb = np.zeros((len(x), 3))
    rgb[:, :k] = ((proj - lo) / np.maximum(hi - lo, 1e-12)).clip(0, 1)
    ratio = (top / evals.clamp_min(0).sum().clamp_min(1e-300)).tolist()
    return rgb.reshape(n, h, w, 3), [round(r, 4) for r in ratio]


@KINDS.register("features")
class FeaturePCA(Kind):
    name = "features"
    summary = "PCA of each stage's feature map to RGB"
    needs = "stages"

    def compute(self, model: nn.Module, label: str, inputs: Inputs, opts: Options) -> tuple[list[Row], dict[str, Any]]:
        with torch.no_grad():
            feats = model.forward_intermediates(inputs.tensor, intermediates_only=True)
        colours, stages = [], []
        for i, f in enumerate(feats):
            rgb, ratio = pca_rgb(f.float().cpu())
            colours.append(rgb)
            stages.append(dict(stage=i + 1, grid=list(f.shape[-2:]), channels=int(f.shape[1]),
                               explained_variance=ratio))
        rows = []
        for j in range(inputs.tensor.shape[0]):
            name = inputs.names[j] if j < len(inputs.names) else f"input {j + 1}"
            panels = [Panel(name, image=inputs.rgb[j])] if inputs.rgb is not None else []
            panels += [Panel(f"stage {s['stage']} ({s['grid'][0]}x{s['grid'][1]}): "
                             f"{100 * sum(s['explained_variance']):.0f}% var", image=colours[s["stage"] - 1][j])
                       for s in stages]
            rows.append(Row(label if len(inputs.names) <= 1 else f"{label}\n{name}", panels))
        return rows, dict(label=label, stages=stages)
