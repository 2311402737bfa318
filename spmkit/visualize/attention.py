"""Attention maps of one block for one query position: global, spatial-reduction and (shifted) window
attention, and what SPM's guide tokens attend to in Guided Local Enhancement.

Probabilities of the SDPA mixers are those of the module's own ``scaled_dot_product_attention`` call
(``capture.attention_probs``). GLE's ``GuideAttention`` computes in a folded form; its probabilities are
recomputed from the normalised window tokens it receives, in the plain ``softmax(q k^T * scale + mask)``
form (tests check that they reproduce its output).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from spmkit.layers.gle import GuideAttention, GuidedLocalEnhancement
from spmkit.mixers.global_attn import GlobalAttention
from spmkit.mixers.sra import SpatialReductionAttention
from spmkit.mixers.window import WindowAttention, window_partition
from spmkit.visualize.capture import attention_probs, record
from spmkit.visualize.kind import KINDS, Inputs, Kind, Options, Panel, Row
from spmkit.visualize.sites import Site, find_sites, select_site

MAX_HEADS_SHOWN = 4


def guide_attention_probs(attn: GuideAttention, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``[N, heads, L]``: each window's guide query (token 0 of ``u`` ``[N, L, C]``) over its L tokens."""
    n, length, c = u.shape
    h, d = attn.num_heads, attn.head_dim
    w_q, w_k, _ = attn.qkv.weight.float().view(3, h * d, c).unbind(0)
    b_q, b_k, _ = attn.qkv.bias.float().view(3, h * d).unbind(0)
    u = u.float()
    q = (u[:, 0] @ w_q.T + b_q).view(n, h, d)
    k = (u @ w_k.T + b_k).view(n, length, h, d)
    logits = torch.einsum("nhd,nlhd->nhl", q, k) * attn.scale
    if bias is not None:
        logits = logits + bias[..., 0].float().unsqueeze(1)
    return logits.softmax(dim=-1)


def _args(args: tuple, kwargs: dict, i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs[name]


@contextmanager
def capture_site(site: Site) -> Iterator[dict[str, Any]]:
    """Record what ``site``'s module attends to during the forwards run inside the block."""
    m = site.module
    rec: dict[str, Any] = {}
    with ExitStack() as stack:
        if isinstance(m, GuidedLocalEnhancement):
            rec["probs"] = stack.enter_context(record(
                m.attn, lambda mod, a, k, o: guide_attention_probs(mod, _args(a, k, 0, "u"), _args(a, k, 1, "bias"))))
            rec["shapes"] = stack.enter_context(record(
                m, lambda mod, a, k, o: (tuple(_args(a, k, 0, "x").shape), tuple(o.shape))))
        else:
            rec["probs"] = stack.enter_context(attention_probs(m))
            rec["shapes"] = stack.enter_context(record(
                m, lambda mod, a, k, o: (tuple(_args(a, k, 1, "hw")), _args(a, k, 0, "x").shape[1])))
            if isinstance(m, SpatialReductionAttention) and m.sr is not None:
                rec["key_grid"] = stack.enter_context(record(m.sr, lambda mod, a, k, o: tuple(o.shape[-2:])))
        yield rec


def _query_token(frac: tuple[float, float], hw: tuple[int, int]) -> tuple[int, int]:
    return tuple(min(int(f * s), s - 1) for f, s in zip(frac, hw))  # type: ignore[return-value]


def token_maps(site: Site, rec: dict[str, Any], query: tuple[float, float]) -> dict[str, Any]:
    """Per image, the query's attention ``[B, heads, kh, kw]`` over its key grid, the weight on keys that
    are not grid cells (class tokens, window padding) ``[B, heads]``, and the query's token and grid."""
    m = site.module
    probs = (torch.cat(rec["probs"]) if isinstance(m, WindowAttention) else rec["probs"][0]).cpu()
    (h, w), n = rec["shapes"][0]
    qy, qx = _query_token(query, (h, w))
    t = qy * w + qx
    if isinstance(m, WindowAttention):
        win, shift = m.window_size, m.shift_size
        hp, wp = -(-h // win[0]) * win[0], -(-w // win[1]) * win[1]
        grid = torch.full((1, hp, wp, 1), -1, dtype=torch.long)
        grid[:, :h, :w, 0] = torch.arange(h * w).view(h, w)
        if any(shift):
            grid = torch.roll(grid, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        wins = window_partition(grid, win)[..., 0]  # [nW, n]: token index (or -1, padding) per window slot
        wi, i = (wins == t).nonzero()[0].tolist()
        row = probs.view(-1, wins.shape[0], *probs.shape[1:])[:, wi, :, i]  # [B, heads, n]
        keys = wins[wi]
        maps = row.new_zeros(row.shape[0], row.shape[1], h * w)
        maps[:, :, keys[keys >= 0]] = row[:, :, keys >= 0]
        return dict(maps=maps.view(*maps.shape[:2], h, w), other=row[:, :, keys < 0].sum(-1), token=(qy, qx),
                    grid=(h, w), other_name="padding")
    p = n - h * w
    row = probs[:, :, p + t]  # [B, heads, keys]
    kh, kw = rec["key_grid"][0] if rec.get("key_grid") else (h, w)
    return dict(maps=row[:, :, p:].reshape(*row.shape[:2], kh, kw), other=row[:, :, :p].sum(-1), token=(qy, qx),
                grid=(h, w), other_name="class token")


def guide_maps(site: Site, rec: dict[str, Any], query: tuple[float, float]) -> dict[str, Any]:
    """GLE: per image the weight each window token gets from its guide ``[B, heads, H, W]``, the guide's
    weight on itself ``[B, heads, Ho, Wo]``, and the query's window."""
    probs = torch.cat(rec["probs"]).cpu()  # [B*Ho*Wo, heads, 1 + w*w]
    (b, _, h, w), (_, ho, wo, _) = rec["shapes"][0]
    win = site.module.window
    heads = probs.shape[1]
    p = probs.view(b, ho, wo, heads, 1 + win * win)
    tokens = p[..., 1:].reshape(b, ho, wo, heads, win, win).permute(0, 3, 1, 4, 2, 5)
    tokens = tokens.reshape(b, heads, ho * win, wo * win)[:, :, :h, :w]
    qy, qx = _query_token(query, (h, w))
    return dict(maps=tokens, guide=p[..., 0].permute(0, 3, 1, 2), token=(qy, qx), grid=(h, w),
                window=(qy // win, qx // win), window_weights=p[:, qy // win, qx // win])


def _range(t: torch.Tensor) -> str:
    """The colour scale's ends: colours stretch over them, so near-uniform maps still show structure."""
    return f"[{float(t.min()):.3g}, {float(t.max()):.3g}]"


def _entropy(p: torch.Tensor) -> list[float]:
    return [round(float(v), 4) for v in -(p.clamp_min(1e-30).log() * p).sum(-1)]


@KINDS.register("attention")
class AttentionMaps(Kind):
    name = "attention"
    summary = "attention of one block for one query (global, spatial-reduction, window, GLE guide tokens)"
    targets = (GlobalAttention, SpatialReductionAttention, WindowAttention, GuidedLocalEnhancement)
    needs = "global, spatial-reduction (sra) or window attention mixer, nor a GLE merging (spm, gle_only)"

    def capture(self, model: nn.Module, opts: Options):
        return capture_site(self.site(model, opts))

    def site(self, model: nn.Module, opts: Options) -> Site:
        return select_site(find_sites(model, self.targets), opts.stage, opts.block, "attention")

    def compute(self, model: nn.Module, label: str, inputs: Inputs, opts: Options) -> tuple[list[Row], dict[str, Any]]:
        site = self.site(model, opts)
        with torch.no_grad(), capture_site(site) as rec:
            model(inputs.tensor)
        size = inputs.tensor.shape[-2:]
        gle = isinstance(site.module, GuidedLocalEnhancement)
        r = guide_maps(site, rec, opts.query) if gle else token_maps(site, rec, opts.query)
        (qy, qx), (h, w) = r["token"], r["grid"]
        marker = ((qy + 0.5) * size[0] / h - 0.5, (qx + 0.5) * size[1] / w - 0.5)
        rows, per_image = [], []
        what = f"{site.where()}\n{site.label}"
        for j in range(inputs.tensor.shape[0]):
            name = inputs.names[j] if j < len(inputs.names) else f"input {j + 1}"
            img = None if inputs.rgb is None else inputs.rgb[j]
            maps = r["maps"][j].cpu()  # [heads, kh, kw]
            mean = maps.mean(0)
            panels = [Panel(f"{what}\nmean of {maps.shape[0]} heads {_range(mean)}", image=img, heat=mean.numpy(),
                            marker=marker, cmap="jet")]
            if gle:
                guide = r["guide"][j].cpu()
                panels.append(Panel(f"guide's weight on itself\n{_range(guide.mean(0))}", image=img,
                                    heat=guide.mean(0).numpy(), cmap="jet"))
                ww = r["window_weights"][j].cpu()  # [heads, 1 + w*w]
                entry = dict(image=name, query_window=list(r["window"]),
                             guide_weight=[round(float(v), 4) for v in ww[:, 0]],
                             token_weights=np.round(ww[:, 1:].double().numpy(), 4).tolist(),
                             mean_guide_weight=[round(float(v), 4) for v in guide.flatten(1).mean(1)],
                             map=np.round(mean.double().numpy(), 5).tolist(),
                             guide_map=np.round(guide.mean(0).double().numpy(), 5).tolist())
            else:
                other = r["other"][j].cpu()
                full = torch.cat([maps.flatten(1), other[:, None]], 1)
                peak = divmod(int(mean.argmax()), mean.shape[1])
                entry = dict(image=name, key_grid=list(mean.shape), peak=list(peak),
                             entropy=_entropy(full), **{r["other_name"].replace(" ", "_") + "_weight":
                                                         [round(float(v), 4) for v in other]},
                             map=np.round(mean.double().numpy(), 5).tolist())
            for hd in range(min(MAX_HEADS_SHOWN, maps.shape[0]) if maps.shape[0] > 1 else 0):
                panels.append(Panel(f"head {hd + 1} {_range(maps[hd])}", image=img, heat=maps[hd].numpy(),
                                    marker=marker, cmap="jet"))
            rows.append(Row(label if len(inputs.names) <= 1 else f"{label}\n{name}", panels))
            per_image.append(entry)
        site_info = dict(stage=site.stage, block=site.block, module=site.name, type=site.label)
        return rows, dict(label=label, site=site_info,
                          query=dict(fraction=list(opts.query), token=[qy, qx], grid=[h, w]), images=per_image)
