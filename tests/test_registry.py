from __future__ import annotations

import pytest
from torch import nn

from spmkit.errors import SpmkitError
from spmkit.registry import COMPONENT_REGISTRIES, MIXERS, Registry, UnknownComponentError, load_components

from conftest import tiny_blueprint_files


def test_register_and_get() -> None:
    reg: Registry = Registry("thing")

    @reg.register("a")
    class A(nn.Module):
        pass

    assert reg.get("a") is A
    assert "a" in reg and reg.names() == ["a"] and len(reg) == 1


def test_duplicate_name_fails_loudly() -> None:
    reg: Registry = Registry("thing")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(type("B", (), {}))


def test_unknown_name_suggests_nearest() -> None:
    load_components()
    with pytest.raises(UnknownComponentError) as info:
        MIXERS.get("windw")
    assert "'window'" in str(info.value) and "Did you mean" in str(info.value)
    assert isinstance(info.value, SpmkitError)


def test_every_registered_component_is_exercised_by_a_tiny_blueprint() -> None:
    """Each component runs in at least one blueprint of blueprints/tiny (which the model tests run)."""
    import yaml

    load_components()
    used: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("type"), str):
                used.add(node["type"])
            for key in ("block",):
                if isinstance(node.get(key), str):
                    used.add(node[key])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in tiny_blueprint_files():
        walk(yaml.safe_load(path.read_text()))
    defaults = {"transformer", "classifier", "layernorm"}
    missing = [
        f"{kind}:{name}"
        for kind, reg in COMPONENT_REGISTRIES.items()
        for name in reg.names()
        if name not in used and name not in defaults and kind != "norm"
    ]
    assert not missing, f"components no tiny blueprint uses: {missing}"
