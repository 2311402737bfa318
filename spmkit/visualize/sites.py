"""Where in a backbone a kind's target modules sit: (stage, block or merging) addresses, and the choice
of one from ``--stage`` / ``--block``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from spmkit.errors import SpmkitError
from spmkit.registry import COMPONENT_REGISTRIES


@dataclass
class Site:
    stage: int  # 1-based
    block: str  # "1", "2", ... or "merging"
    name: str  # module path in the backbone
    module: nn.Module
    label: str = ""  # registered name, e.g. "mixer window" or "merging spm / GuidedLocalEnhancement"

    def where(self) -> str:
        return f"stage {self.stage} " + ("merging" if self.block == "merging" else f"block {self.block}")


def component_name(module: nn.Module) -> str:
    """The registered name of the module's class (``mixer window``), else the class name."""
    for kind, reg in COMPONENT_REGISTRIES.items():
        for name, obj in reg.items():
            if obj is type(module):
                return f"{kind} {name}"
    return type(module).__name__


def find_sites(model: nn.Module, targets: tuple[type[nn.Module], ...]) -> list[Site]:
    """Every module of ``targets`` class in the stages, in forward order (merging first in a stage)."""
    out: list[Site] = []
    for i, stage in enumerate(getattr(model, "stages", [])):
        parts = [("merging", f"stages.{i}.downsample", stage.downsample)] if stage.downsample is not None else []
        parts += [(str(j + 1), f"stages.{i}.blocks.{j}", blk) for j, blk in enumerate(stage.blocks)]
        for block, prefix, part in parts:
            for name, m in part.named_modules():
                if isinstance(m, targets):
                    label = component_name(m)
                    if label == type(m).__name__:  # an unregistered layer: name the component holding it
                        owner = next((o for o in part.modules() if m in set(o.modules())
                                      and component_name(o) != type(o).__name__), part)
                        label = f"{component_name(owner)} / {label}"  # e.g. merging spm / GuidedLocalEnhancement
                    out.append(Site(i + 1, block, f"{prefix}.{name}" if name else prefix, m, label))
    return out


def select_site(sites: list[Site], stage: int | None, block: str | None, what: str) -> Site:
    """The site at ``stage`` / ``block`` (either may be None: the first matching); a clear error lists
    the sites when none matches."""
    block = None if block is None else str(block).strip().lower()
    hits = [s for s in sites if (stage is None or s.stage == stage) and (block is None or s.block == block)]
    if not hits:
        listing = ", ".join(f"{s.where()} ({s.label})" for s in sites)
        want = " ".join(x for x in (f"stage {stage}" if stage else "", f"block {block}" if block else "") if x)
        raise SpmkitError(f"{want} has no {what}; choose one of: {listing} (--stage N, --block M or merging).")
    return hits[0]
