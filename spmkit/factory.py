"""``spmkit.create_model`` and timm registration of every builtin blueprint (``spmkit_<name>``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from spmkit.blueprint import Blueprint, list_blueprints, load_blueprint
from spmkit.errors import SpmkitError

# timm-style keyword arguments -> blueprint fields
_KWARG_FIELDS = {
    "num_classes": "head.num_classes",
    "global_pool": "head.pool",
    "drop_rate": "head.drop",
    "drop_path_rate": "drop_path_rate",
    "in_chans": "in_chans",
    "img_size": "img_size",
}
_IGNORED = {"pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args"}


def _kwargs_to_overrides(kwargs: dict[str, Any]) -> list[str]:
    out = []
    for key in list(kwargs):
        if key in _IGNORED:
            kwargs.pop(key)
        elif key in _KWARG_FIELDS:
            value = kwargs.pop(key)
            if value is not None:
                if isinstance(value, (tuple, list)):
                    value = list(value)
                out.append(f"{_KWARG_FIELDS[key]}={value!r}" if isinstance(value, str) else f"{_KWARG_FIELDS[key]}={value}")
    if kwargs:
        raise TypeError(f"unexpected keyword arguments for an spmkit model: {', '.join(kwargs)}; "
                        f"supported: {', '.join(_KWARG_FIELDS)} (use overrides=[...] for anything else)")
    return out


def _build(blueprint: Blueprint, overrides: Sequence[str] = (), device: Any = None, dtype: Any = None,
           **kwargs: Any) -> nn.Module:
    from spmkit.builder import build_model

    bp = load_blueprint(blueprint, [*overrides, *_kwargs_to_overrides(kwargs)])
    return build_model(bp, device=device, dtype=dtype)


def create_model(
    name_or_path: str | os.PathLike | Blueprint,
    *,
    overrides: Sequence[str] = (),
    pretrained: bool = False,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_from: str | None = None,
    device: Any = None,
    dtype: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a model from a builtin blueprint name, a YAML path or a ``Blueprint``, the way timm does.

    ``overrides`` are dotted ``--set`` strings; ``num_classes``, ``drop_path_rate``, ``in_chans``,
    ``img_size``, ``global_pool`` and ``drop_rate`` work as in timm. ``features_only=True`` returns timm's
    feature extractor (a list of NCHW maps per ``out_indices``). ``checkpoint_path`` loads weights strictly:
    an spmkit file, timm's, or an official release's (converted on the fly; the layout is detected from
    the keys, ``checkpoint_from`` names it; see ``spmkit.convert``). ``checkpoint_path`` may also be a
    ``save_pretrained`` folder, and ``name_or_path`` ``"local-dir:FOLDER"`` builds from such a folder.
    """
    if pretrained:
        raise SpmkitError(
            "spmkit hosts no pretrained weights. Pass checkpoint_path=FILE (official, timm or spmkit weights), "
            "or use timm.create_model('spmkit_NAME', pretrained=True, pretrained_cfg_overlay=dict(file=FILE))."
        )
    if isinstance(name_or_path, (str, os.PathLike)) and os.fspath(name_or_path).startswith("local-dir:"):
        from spmkit.convert.pretrained import blueprint_of_folder

        folder = os.fspath(name_or_path)[len("local-dir:"):]
        name_or_path = blueprint_of_folder(folder)
        checkpoint_path = checkpoint_path or folder
    bp = name_or_path if isinstance(name_or_path, Blueprint) else load_blueprint(name_or_path)
    ov = [*overrides, *_kwargs_to_overrides(kwargs)]
    if not features_only:
        model = _build(bp, ov, device=device, dtype=dtype)
    else:
        from timm.models._builder import build_model_with_cfg

        n = len(bp.stages)
        model = build_model_with_cfg(
            lambda **kw: _build(bp, ov, device=device, dtype=dtype, **kw),
            f"spmkit_{bp.name}",
            pretrained=False,
            pretrained_cfg=dict(architecture=f"spmkit_{bp.name}", num_classes=0),
            feature_cfg=dict(feature_cls="getter", out_indices=tuple(out_indices or bp.out_indices or range(n))),
            features_only=True,
        )
    if checkpoint_path:
        from spmkit.convert.load import load_weights

        target = model.model if features_only else model  # type: ignore[union-attr]
        load_weights(target, checkpoint_path, from_=checkpoint_from, strict=not features_only)
    return model


def _timm_entry(name: str):
    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        features_only = kwargs.pop("features_only", False)
        out_indices = kwargs.pop("out_indices", None)
        kwargs.pop("feature_cls", None)
        cfg, overlay = kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
        model = create_model(name, features_only=features_only, out_indices=out_indices, **kwargs)
        if pretrained:  # weights from pretrained_cfg (file, local-dir, Hub) through spmkit's converters
            from spmkit.convert.pretrained import load_timm_pretrained

            target = model.model if features_only else model  # type: ignore[union-attr]
            load_timm_pretrained(target, entry.__name__, cfg, overlay)
        return model

    entry.__name__ = entry.__qualname__ = f"spmkit_{name}"
    entry.__module__ = __name__
    entry.__doc__ = f"spmkit blueprint {name!r} (timm entry point)."
    return entry


def register_blueprint(path_or_name: str | os.PathLike, name: str | None = None) -> str:
    """Register a blueprint file with timm as ``spmkit_<name>`` (default: its ``name`` field); returns the
    timm model name, usable with ``timm.create_model`` (``features_only`` included)."""
    from timm.models import register_model

    bp = load_blueprint(path_or_name)
    # a file by absolute path: the entry reads it (and its ``imports``) again from any working directory
    entry = _timm_entry(bp.source if bp.source and Path(bp.source).is_file() else str(path_or_name))
    entry.__name__ = entry.__qualname__ = f"spmkit_{name or bp.name}"
    setattr(sys.modules[__name__], entry.__name__, entry)
    register_model(entry)
    return entry.__name__


def register_builtin_blueprints() -> list[str]:
    """Register every builtin blueprint with timm (cheap: no YAML is read until a model is created)."""
    from timm.models import register_model
    from timm.models._registry import _model_entrypoints

    names = []
    for name in list_blueprints():
        fn_name = f"spmkit_{name}"
        if fn_name in _model_entrypoints:
            continue
        entry = _timm_entry(name)
        setattr(sys.modules[__name__], fn_name, entry)
        register_model(entry)
        names.append(fn_name)
    return names
