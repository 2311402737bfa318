"""GLMix's soft clustering: how strongly each pixel is assigned to each semantic slot.

The assignment is GLMix's dispatch weight ``softmax over slots`` of the clustering logits
``normalize(slots) @ (s * normalize(x))^T`` (per pixel, sums to 1 over the slots), recomputed in a
forward hook from the mixer's own inputs with its own ``initial_slots`` and ``clustering_logits``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from spmkit.layers.tokens import tokens_to_nchw
from spmkit.mixers.glmix import GLMix
from spmkit.visualize.capture import record
from spmkit.visualize.kind import KINDS, Inputs, Kind, Options, Panel, Row
from spmkit.visualize.sites import Site, find_sites, select_site

MAX_SLOTS_SHOWN = 6


def slot_logits(mod: GLMix, args: tuple, kwargs: dict) -> tuple[torch.Tensor, tuple[int, int]]:
    """The clustering logits ``[B, S, N]`` of one GLMix forward, from the inputs it was called with."""
    x = args[0] if args else kwargs["x"]
    hw = tuple(args[1] if len(args) > 1 else kwargs["hw"])
    source = args[2] if len(args) > 2 else kwargs.get("slot_source")
    slots = mod.initial_slots(tokens_to_nchw(x, hw) if source is None else source)
    return mod.clustering_logits(slots, x).float(), hw  # type: ignore[return-value]


@KINDS.register("slots")
class SlotAssignments(Kind):
    name = "slots"
    summary = "GLMix soft-clustering: each pixel's assignment to each semantic slot"
    targets = (GLMix,)
    needs = "GLMix mixer (semantic slots)"

    def site(self, model: nn.Module, opts: Options) -> Site:
        return select_site(find_sites(model, self.targets), opts.stage, opts.block, "GLMix mixer")

    def capture(self, model: nn.Module, opts: Options):
        return record(self.site(model, opts).module, lambda m, a, k, o: slot_logits(m, a, k))

    def compute(self, model: nn.Module, label: str, inputs: Inputs, opts: Options) -> tuple[list[Row], dict[str, Any]]:
        import matplotlib

        site = self.site(model, opts)
        with torch.no_grad(), record(site.module, lambda m, a, k, o: slot_logits(m, a, k)) as rec:
            model(inputs.tensor)
        logits, (h, w) = rec[0]
        assign = logits.transpose(-1, -2).softmax(-1).cpu()  # [B, N, S]
        num = assign.shape[-1]
        palette = matplotlib.colormaps["tab20"](np.arange(num) % 20)[:, :3]
        rows, per_image = [], []
        for j in range(assign.shape[0]):
            name = inputs.names[j] if j < len(inputs.names) else f"input {j + 1}"
            img = None if inputs.rgb is None else inputs.rgb[j]
            a = assign[j].double().numpy()  # [N, S]
            hard = a.argmax(1)
            share = a.mean(0)
            hard_share = np.bincount(hard, minlength=num) / len(hard)
            colours = palette[hard].reshape(h, w, 3)
            shown = colours if img is None else 0.45 * _stretch_rgb(colours, img.shape[:2]) + 0.55 * img
            panels = [Panel(f"{site.where()}: most likely slot\n({num} slots, {h}x{w} tokens)", image=shown)]
            for s in np.argsort(-share, kind="stable")[:MAX_SLOTS_SHOWN]:
                col = a[:, s]
                panels.append(Panel(f"slot {s + 1}: {100 * share[s]:.1f}% of the mass\n"
                                    f"[{col.min():.3g}, {col.max():.3g}]", image=img,
                                    heat=col.reshape(h, w), cmap="viridis"))
            rows.append(Row(label if len(inputs.names) <= 1 else f"{label}\n{name}", panels))
            per_image.append(dict(image=name, share=np.round(share, 4).tolist(),
                                  hard_share=np.round(hard_share, 4).tolist(), argmax=hard.reshape(h, w).tolist()))
        return rows, dict(label=label, site=dict(stage=site.stage, block=site.block, module=site.name,
                                                 type=site.label), num_slots=num, grid=[h, w], images=per_image)


def _stretch_rgb(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    ys = np.minimum((np.arange(hw[0]) * rgb.shape[0]) // hw[0], rgb.shape[0] - 1)
    xs = np.minimum((np.arange(hw[1]) * rgb.shape[1]) // hw[1], rgb.shape[1] - 1)
    return rgb[ys][:, xs]
