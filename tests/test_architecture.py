"""The import graph of ``spmkit/``: no cycles, and no import from a lower layer to a higher one.

Modules are nodes; every ``import`` / ``from ... import`` in a module is an edge, at any depth (imports
inside functions count: a lazy import is still a dependency). Imports under ``if TYPE_CHECKING:`` count for
the layers (a type hint from a higher layer is a dependency too) but not for cycles (a hook typed with the
loop that calls it never imports it at run time). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
else to ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spmkit"

#: Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS: list[list[str]] = [
    ["spmkit.errors", "spmkit.registry", "spmkit.io", "spmkit.recipes"],
    ["spmkit.layers"],
    ["spmkit.mixers", "spmkit.merging", "spmkit.stems", "spmkit.blocks", "spmkit.heads", "spmkit.pos_embeds"],
    ["spmkit.backbone", "spmkit.blueprint", "spmkit.sizing", "spmkit.builder"],
    ["spmkit.convert"],
    # the public API: create_model, load_blueprint, timm registration
    ["spmkit", "spmkit.factory", "spmkit._timm_hook", "spmkit.timm_models"],
    ["spmkit.data", "spmkit.profile"],
    ["spmkit.tasks"],
    ["spmkit.train", "spmkit.infer"],
    ["spmkit.export", "spmkit.sweep", "spmkit.visualize"],
    ["spmkit.cli", "spmkit.__main__"],
]


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages as their ``__init__``)."""
    out: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                skip.update(id(n) for n in ast.walk(stmt))
    return skip


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package: Path = PACKAGE, type_hints: bool = True) -> dict[str, set[str]]:
    """Module -> the spmkit modules it imports (with ``type_hints=False``: at run time)."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = set() if type_hints else _type_checking_nodes(tree)
        is_pkg = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            else:
                continue
            for t in targets:
                if t == "spmkit" or t.startswith("spmkit."):
                    owner = _owner(t, modules)
                    if owner and owner != name:
                        edges.add(owner)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def layer_of(module: str) -> int:
    """Index in ``LAYERS`` of the longest listed prefix of ``module``; -1 when none."""
    best, best_len = -1, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            # "spmkit" (the package's __init__) names itself only, not every module below it
            if (module == n or (n != "spmkit" and module.startswith(n + "."))) and len(n) > best_len:
                best, best_len = i, len(n)
    return best


def uphill_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
                  for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def test_graph_sees_lazy_imports_and_type_hints(tmp_path):
    pkg = tmp_path / "spmkit"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from spmkit.high import c\n"
        "def f():\n    from spmkit.low import b\n")
    (pkg / "low" / "b.py").write_text("import spmkit.low.a as a\n")
    (pkg / "high.py").write_text("from spmkit.low.a import f\n")
    graph = import_graph(pkg)
    assert graph["spmkit.low.a"] == {"spmkit.low.b", "spmkit.high"}
    assert graph["spmkit.low.b"] == {"spmkit.low.a"}
    assert find_cycle(graph) == ["spmkit.high", "spmkit.low.a", "spmkit.high"]
    runtime = import_graph(pkg, type_hints=False)
    assert runtime["spmkit.low.a"] == {"spmkit.low.b"}
    assert find_cycle(runtime) == ["spmkit.low.a", "spmkit.low.b", "spmkit.low.a"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_every_module_has_a_layer():
    missing = sorted(m for m in module_names() if layer_of(m) < 0)
    assert not missing, f"modules in no layer of LAYERS (add them where they belong): {missing}"


def test_no_import_cycles():
    cycle = find_cycle(import_graph(type_hints=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_goes_uphill():
    bad = uphill_imports(import_graph())
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", ["spmkit.train.loop", "spmkit.infer.predict", "spmkit.convert.load"])
def test_graph_is_not_empty(module):
    assert import_graph()[module], f"{module} imports nothing from spmkit? the graph builder is broken"


def test_layers_order_the_packages():
    assert layer_of("spmkit.io.safe_yaml") < layer_of("spmkit.builder") < layer_of("spmkit.convert.load") \
        < layer_of("spmkit.tasks.base") < layer_of("spmkit.train.loop") < layer_of("spmkit.cli.app")
    assert layer_of("spmkit.overrides_somewhere_new") == -1  # the root package's layer is the root only
    assert uphill_imports({"spmkit.tasks.base": {"spmkit.train.loop"}, "spmkit.train.loop": {"spmkit.tasks.base"}}) \
        == ["spmkit.tasks.base (layer 7) imports spmkit.train.loop (layer 8)"]
