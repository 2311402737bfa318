"""What ``spmkit profile`` accepts as an ENTRY, resolved into something that builds a fresh model.

An entry is a blueprint (builtin name or YAML path, with ``--set`` overrides), ``timm:MODEL_NAME`` (a timm
reference, ``pretrained=False``), or, from Python, any ``nn.Module`` factory. Entries built from strings
can be rebuilt in a fresh process, which is how CPU memory is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from torch import nn

from spmkit.profile.errors import ProfileError

TIMM_PREFIX = "timm:"


@dataclass
class Entry:
    """One model to profile. ``spec`` is ``None`` for Python-only entries (no subprocess rebuild)."""

    name: str
    build: Callable[[], nn.Module]
    input_size: tuple[int, int] = (224, 224)
    spec: str | None = None
    overrides: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    in_chans: int = 3

    def request(self) -> dict[str, Any]:
        """The JSON-able description a fresh process rebuilds this entry from."""
        return {"spec": self.spec, "overrides": list(self.overrides), "kwargs": dict(self.kwargs)}


def _as_hw(size: Any) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    return size[-2:] if len(size) >= 2 else (size[0], size[0])  # type: ignore[return-value]


def _timm_entry(model_name: str, kwargs: dict[str, Any], name: str | None) -> Entry:
    import timm

    from spmkit.timm_models import UnknownTimmModel, timm_name

    try:
        timm_name(model_name)
    except UnknownTimmModel as e:
        raise ProfileError(str(e)) from None
    cfg = timm.get_pretrained_cfg(model_name)
    size = _as_hw(getattr(cfg, "input_size", (3, 224, 224)) if cfg is not None else (3, 224, 224))

    def build() -> nn.Module:
        return timm.create_model(model_name, pretrained=False, **kwargs)

    return Entry(name or TIMM_PREFIX + model_name, build, size, TIMM_PREFIX + model_name, (), dict(kwargs))


def _blueprint_entry(spec: str, overrides: Sequence[str], name: str | None) -> Entry:
    import spmkit

    bp = spmkit.load_blueprint(spec, overrides=tuple(overrides))  # validates; raises BlueprintError

    def build() -> nn.Module:
        return spmkit.build_model(bp)

    label = name or str(getattr(bp, "name", None) or spec)
    if overrides and name is None:
        label += "[" + ",".join(overrides) + "]"
    size = _as_hw(getattr(bp, "image_size", None) or bp.img_size)
    return Entry(label, build, size, spec, tuple(overrides), {}, int(getattr(bp, "in_chans", 3)))


def resolve_entry(spec: str, overrides: Sequence[str] = (), *, kwargs: dict[str, Any] | None = None,
                  name: str | None = None) -> Entry:
    """Resolve an ENTRY string; ``overrides`` apply to blueprints, ``kwargs`` to ``timm:`` models."""
    spec = spec.strip()
    if spec.startswith(TIMM_PREFIX):
        model_name = spec[len(TIMM_PREFIX):]
        if not model_name:
            raise ProfileError("`timm:` needs a model name, e.g. timm:swin_tiny_patch4_window7_224.")
        return _timm_entry(model_name, dict(kwargs or {}), name)
    if kwargs:
        raise ProfileError(f"{spec}: keyword arguments apply to timm: entries only; use --set for blueprints.")
    return _blueprint_entry(spec, overrides, name)


def resolve_entries(specs: Sequence[str], overrides: Sequence[str] = (),
                    variants: Sequence[Sequence[str]] = ()) -> list[Entry]:
    """Entries in order; each blueprint also gets one entry per variant (``overrides`` + the variant's)."""
    if not specs:
        raise ProfileError("give at least one ENTRY: a blueprint name or path, or timm:MODEL_NAME.")
    out: list[Entry] = []
    for spec in specs:
        if spec.strip().startswith(TIMM_PREFIX):
            out.append(resolve_entry(spec))
            continue
        out.append(resolve_entry(spec, overrides))
        for variant in variants:
            out.append(resolve_entry(spec, tuple(overrides) + tuple(variant)))
    return out
