"""Where LIT's Deformable Token Merging samples: the deformable conv's sampling locations on the image.

For output cell ``(i, j)`` and kernel tap ``(ki, kj)`` the sampling point is ``(i*s + ki + dy, j*s + kj + dx)``
in the layer's input map (``deform_conv2d`` with padding 0, dilation 1; the offset channels are ``(dy, dx)``
per tap, taps row-major), drawn at ``(y + 0.5) * cell - 0.5`` image pixels with ``cell`` the input map's
stride. A fresh model's offsets are zero (LIT initialises the offset conv to zero): a regular grid.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from spmkit.merging.dtm import DeformConv2dPack
from spmkit.visualize.capture import record
from spmkit.visualize.kind import KINDS, Inputs, Kind, Options, Panel, Row
from spmkit.visualize.sites import Site, find_sites


def sampling_points(offset: torch.Tensor, kernel: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 2*k*k, Ho, Wo]`` offsets -> (sampling points, regular points) ``[B, Ho, Wo, k*k, 2]`` (y, x)
    in input-map cells."""
    b, _, ho, wo = offset.shape
    ki, kj = torch.meshgrid(torch.arange(kernel), torch.arange(kernel), indexing="ij")
    i, j = torch.meshgrid(torch.arange(ho), torch.arange(wo), indexing="ij")
    base = torch.stack([i[..., None] * stride + ki.flatten(), j[..., None] * stride + kj.flatten()], -1).double()
    off = offset.double().view(b, kernel * kernel, 2, ho, wo).permute(0, 3, 4, 1, 2)
    return base + off, base.expand_as(off)


@KINDS.register("offsets")
class DeformableOffsets(Kind):
    name = "offsets"
    summary = "sampling locations of DTM's deformable conv (LIT) on the image"
    targets = (DeformConv2dPack,)
    needs = "deformable token merging (merging dtm)"

    def sites(self, model: nn.Module, opts: Options) -> list[Site]:
        sites = find_sites(model, self.targets)
        if opts.stage is not None:
            chosen = [s for s in sites if s.stage == opts.stage]
            if not chosen:
                from spmkit.errors import SpmkitError

                raise SpmkitError(f"stage {opts.stage} has no deformable token merging; stages with one: "
                                  f"{', '.join(str(s.stage) for s in sites)} (--stage N).")
            sites = chosen
        return sites

    @contextmanager
    def _capture(self, sites: list[Site]) -> Iterator[list[tuple[list, list]]]:
        with ExitStack() as stack:
            recs = [(stack.enter_context(record(s.module.conv_offset, lambda m, a, k, o: o.detach().float().cpu())),
                     stack.enter_context(record(s.module, lambda m, a, k, o: tuple(a[0].shape))))
                    for s in sites]
            yield recs

    def capture(self, model: nn.Module, opts: Options):
        return self._capture(self.sites(model, opts))

    def compute(self, model: nn.Module, label: str, inputs: Inputs, opts: Options) -> tuple[list[Row], dict[str, Any]]:
        sites = self.sites(model, opts)
        with torch.no_grad(), self._capture(sites) as recs:
            model(inputs.tensor)
        size = tuple(inputs.tensor.shape[-2:])
        rows = [Row(label if len(inputs.names) <= 1 else f"{label}\n{n}", []) for n in
                (inputs.names or [f"input {j + 1}" for j in range(inputs.tensor.shape[0])])]
        layers = []
        for site, (offs, shapes) in zip(sites, recs):
            mod = site.module
            offset = offs[0]
            _, _, hin, win = shapes[0]
            prev = model.feature_info[site.stage - 2]["reduction"] if site.stage > 1 else size[0] / hin
            cell = float(prev)
            pts, regular = sampling_points(offset, mod.kernel_size, mod.stride)
            ho, wo = offset.shape[-2:]
            qi, qj = (min(int(f * n), n - 1) for f, n in zip(opts.query, (ho, wo)))
            px = (pts + 0.5) * cell - 0.5
            mag = (pts - regular).norm(dim=-1).mean(-1)  # [B, Ho, Wo], input cells
            entry = dict(stage=site.stage, module=site.name, type=site.label, grid_in=[hin, win], grid_out=[ho, wo],
                         cell_px=cell, query_cell=[qi, qj],
                         regular_px=np.round(((regular[0, qi, qj] + 0.5) * cell - 0.5).numpy(), 2).tolist(),
                         images=[])
            for j, row in enumerate(rows):
                img = None if inputs.rgb is None else inputs.rgb[j]
                q = px[j, qi, qj].numpy()
                marker = ((qi + 0.5) * size[0] / ho - 0.5, (qj + 0.5) * size[1] / wo - 0.5)
                row.panels.append(Panel(f"stage {site.stage} DTM: {ho * wo * q.shape[0]} samples,\n"
                                        f"mean |offset| {float(mag[j].mean()):.3f} cells", image=img,
                                        points=px[j].reshape(-1, 2).numpy(), highlight=q, marker=marker))
                row.panels.append(Panel(f"stage {site.stage}: |offset| per output cell", image=img,
                                        heat=mag[j].numpy(), cmap="viridis"))
                entry["images"].append(dict(
                    mean_abs_offset=round(float(mag[j].mean()), 5), max_abs_offset=round(float(mag[j].max()), 5),
                    query_px=np.round(q, 2).tolist(), points_px=np.round(px[j].reshape(-1, 2).numpy(), 2).tolist()))
            layers.append(entry)
        return rows, dict(label=label, layers=layers)
