"""spmkit: hierarchical vision backbones from YAML blueprints.

``import spmkit`` registers every builtin blueprint with timm (``timm.create_model("spmkit_swin_t")``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from spmkit.blueprint import Blueprint, list_blueprints, load_blueprint
from spmkit.errors import BlueprintError, SpmkitError
from spmkit.factory import create_model, register_blueprint, register_builtin_blueprints


def build_model(blueprint, *, device=None, dtype=None):  # noqa: ANN001, ANN201 - thin re-export
    """Assemble a validated ``Blueprint`` into a ``Backbone`` (see ``spmkit.builder.build_model``)."""
    from spmkit.builder import build_model as _build

    return _build(blueprint, device=device, dtype=dtype)


register_builtin_blueprints()

__all__ = [
    "Blueprint",
    "BlueprintError",
    "SpmkitError",
    "build_model",
    "create_model",
    "list_blueprints",
    "load_blueprint",
    "register_blueprint",
    "__version__",
]
