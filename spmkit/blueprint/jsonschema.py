"""The blueprint JSON Schema with every registered component spelled out, for editor autocompletion."""

from __future__ import annotations

from typing import Any

from spmkit.blueprint.params import param_model
from spmkit.blueprint.schema import Blueprint
from spmkit.registry import COMPONENT_REGISTRIES, load_components

_DEFS = {
    "StemSpec": "stem",
    "MergingSpec": "merging",
    "MixerSpec": "mixer",
    "BlockSpec": "block",
    "PosEmbedSpec": "pos_embed",
    "HeadSpec": "head",
    "NormSpec": "norm",
}


def _component_schema(kind: str, name: str, obj: Any, defs: dict[str, Any]) -> dict[str, Any]:
    sub = param_model(kind, obj).model_json_schema(ref_template="#/$defs/{model}")
    defs.update(sub.pop("$defs", {}))
    props = {"type": {"const": name}, **sub.get("properties", {})}
    if kind == "mixer":
        props["block"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "block type override"}
    doc = (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
    return {
        "title": f"{kind} {name}",
        "description": doc,
        "type": "object",
        "properties": props,
        "required": ["type", *sub.get("required", [])],
        "additionalProperties": False,
    }


def blueprint_json_schema() -> dict[str, Any]:
    load_components()
    schema = Blueprint.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    for def_name, kind in _DEFS.items():
        variants = [_component_schema(kind, n, obj, defs) for n, obj in COMPONENT_REGISTRIES[kind].items()]
        defs[def_name] = {"oneOf": variants, "description": f"a registered {kind}: {{type: NAME, ...parameters}}"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "spmkit blueprint"
    return schema
