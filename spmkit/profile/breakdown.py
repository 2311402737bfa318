"""Per-module breakdown: what each stage, merging layer, mixer and MLP costs (params, FLOPs, time).

Components are recognised by the registries (a module whose class is a registered mixer / merging layer /
stem / head / position embedding) and, for timm references, by class name (``*Attention``, ``PatchMerging``,
``*PatchEmbed``, ``*Mlp``). Stages are the children of ``stages`` (or timm's ``layers``). Times are
inclusive wall times between forward hooks (CUDA events on GPU), medians over the repeats; hooks add a
little overhead per module, so the rows do not add up exactly to the model's latency.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from spmkit.profile.flops import count_flops
from spmkit.profile.timing import quantile

_STAGE_RE = re.compile(r"^(stages|layers|levels)\.\d+$")
_INNER_KINDS = ("merging", "pos_embed", "mixer", "mlp")
_NAME_KINDS = {"head": "head", "fc": "head", "classifier": "head", "stem": "stem", "patch_embed": "stem",
               "norm": "norm", "fc_norm": "norm", "head_drop": "dropout"}


@dataclass(frozen=True)
class BreakdownRow:
    """One row: ``module`` names a module or a group (``stages.2.mixer``); ``count`` modules in the group."""

    module: str
    kind: str
    count: int
    params: int
    flops: int
    time_ms: float | None


def _registered_kinds() -> list[tuple[str, tuple[type, ...]]]:
    import spmkit.registry as reg

    kinds = []
    for attr, kind in (("MERGING", "merging"), ("MIXERS", "mixer"), ("STEMS", "stem"), ("HEADS", "head"),
                       ("POS_EMBEDS", "pos_embed")):
        registry = getattr(reg, attr, None)
        if registry is None:
            continue
        classes = tuple(obj for _, obj in registry.items() if isinstance(obj, type))
        if classes:
            kinds.append((kind, classes))
    return kinds


def categorize(module: nn.Module, kinds: list[tuple[str, tuple[type, ...]]] | None = None) -> str | None:
    """``merging`` / ``mixer`` / ``mlp`` / ``stem`` / ``head`` / ``pos_embed`` for a component, else ``None``."""
    for kind, classes in kinds if kinds is not None else _registered_kinds():
        if isinstance(module, classes):
            return kind
    cls = type(module).__name__.lower()
    if "merg" in cls or "downsample" in cls:
        return "merging"
    if "patchembed" in cls:
        return "stem"
    if "attention" in cls or cls.endswith("attn"):
        return "mixer"
    if "mlp" in cls:
        return "mlp"
    if "head" in cls:
        return "head"
    return None


def component_groups(model: nn.Module) -> list[tuple[str, str, list[str]]]:
    """``(row name, kind, [module names])`` in model order: top-level parts, stages and their components."""
    kinds = _registered_kinds()
    modules = dict(model.named_modules())
    groups: list[tuple[str, str, list[str]]] = []
    stage_names = [n for n in modules if _STAGE_RE.match(n)]
    containers = {n.rsplit(".", 1)[0] for n in stage_names}
    for top, child in model.named_children():
        if top in containers:
            for stage in (n for n in stage_names if n.startswith(top + ".")):
                groups.append((stage, "stage", [stage]))
                found: dict[str, list[str]] = {}
                taken: list[str] = []
                for name, mod in modules[stage].named_modules(prefix=stage):
                    if name == stage or any(name.startswith(t + ".") for t in taken):
                        continue
                    kind = categorize(mod, kinds)
                    kind = "merging" if kind == "stem" else kind  # timm PVT-v2 downsamples with a patch embed
                    if kind in _INNER_KINDS:
                        found.setdefault(kind, []).append(name)
                        taken.append(name)
                groups += [(f"{stage}.{k}", k, found[k]) for k in _INNER_KINDS if k in found]
        elif any(True for _ in child.parameters()) or categorize(child, kinds):
            kind = categorize(child, kinds) or _NAME_KINDS.get(top) or type(child).__name__.lower()
            groups.append((top, kind, [top]))
    return groups


def _params(modules: list[nn.Module]) -> int:
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def module_breakdown(model: nn.Module, x: torch.Tensor, *, repeats: int = 5,
                     run: Callable[[], object] | None = None) -> list[BreakdownRow]:
    """Rows for ``model`` on input ``x``: FLOPs counted once, times over ``repeats`` forwards.

    ``run`` (default: ``model(x)`` under ``inference_mode``) lets the caller add autocast; the model should
    be the plain module (hooks do not fire inside a compiled graph).
    """
    groups = component_groups(model)
    modules = dict(model.named_modules())
    flops = count_flops(model, inputs=x[:1]).by_module
    cuda = x.device.type == "cuda"
    tracked = {n for _, _, names in groups for n in names}
    elapsed: dict[str, list] = {}
    starts: dict[str, object] = {}

    def pre(name: str) -> Callable:
        def hook(_m: nn.Module, _a: object) -> None:
            if cuda:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                starts[name] = ev
            else:
                starts[name] = time.perf_counter()
        return hook

    def post(name: str) -> Callable:
        def hook(_m: nn.Module, _a: object, _o: object) -> None:
            if cuda:
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                elapsed.setdefault(name, []).append((starts[name], ev))
            else:
                elapsed.setdefault(name, []).append(time.perf_counter() - starts[name])  # type: ignore[operator]
        return hook

    if run is None:
        def run() -> object:
            with torch.inference_mode():
                return model(x)

    run()  # warm-up, not recorded
    per_run: dict[str, list[float]] = {n: [] for n in tracked}
    handles = [h for n in tracked for h in (modules[n].register_forward_pre_hook(pre(n)),
                                           modules[n].register_forward_hook(post(n)))]
    try:
        for _ in range(max(repeats, 1)):
            elapsed.clear()
            run()
            if cuda:
                torch.cuda.synchronize(x.device)
            for n in tracked:
                vals = elapsed.get(n, [])
                per_run[n].append(sum(s.elapsed_time(e) / 1e3 for s, e in vals) if cuda else sum(vals))
    finally:
        for h in handles:
            h.remove()
    rows = []
    for row, kind, names in groups:
        totals = [sum(per_run[n][i] for n in names) for i in range(max(repeats, 1))]
        rows.append(BreakdownRow(row, kind, len(names), _params([modules[n] for n in names]),
                                 sum(flops.get(n, 0) for n in names), quantile(sorted(totals), 0.5) * 1e3))
    return rows
