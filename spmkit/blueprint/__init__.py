"""Blueprints: schema, loading (extends, overrides) and validation."""

from spmkit.blueprint.loader import builtin_dir, list_blueprints, load_blueprint, parse_override
from spmkit.blueprint.schema import Blueprint, ComponentSpec, MixerSpec, StageSpec

__all__ = [
    "Blueprint",
    "ComponentSpec",
    "MixerSpec",
    "StageSpec",
    "builtin_dir",
    "list_blueprints",
    "load_blueprint",
    "parse_override",
]
