"""spmkit: hierarchical vision backbones from YAML blueprints.

Importing spmkit is cheap (no torch): the public functions load on first use, and every builtin blueprint
is registered with timm (``timm.create_model("spmkit_swin_t")``) as soon as timm is imported, before or
after spmkit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spmkit._timm_hook import install as _install_timm_hook

__version__ = "0.1.0"

_LAZY = {
    "Blueprint": "spmkit.blueprint.schema",
    "load_blueprint": "spmkit.blueprint.loader",
    "list_blueprints": "spmkit.blueprint.loader",
    "BlueprintError": "spmkit.errors",
    "SpmkitError": "spmkit.errors",
    "create_model": "spmkit.factory",
    "register_blueprint": "spmkit.factory",
    "register_builtin_blueprints": "spmkit.factory",
    "build_model": "spmkit.builder",
}

if TYPE_CHECKING:
    from spmkit.blueprint.loader import list_blueprints, load_blueprint
    from spmkit.blueprint.schema import Blueprint
    from spmkit.builder import build_model
    from spmkit.errors import BlueprintError, SpmkitError
    from spmkit.factory import create_model, register_blueprint, register_builtin_blueprints


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spmkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


_install_timm_hook()

__all__ = [
    "Blueprint",
    "BlueprintError",
    "SpmkitError",
    "build_model",
    "create_model",
    "list_blueprints",
    "load_blueprint",
    "register_blueprint",
    "register_builtin_blueprints",
    "__version__",
]
