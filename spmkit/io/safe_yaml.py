"""The one YAML reader of spmkit: ``yaml.safe_load`` with bounds on what a document may expand to.

Aliases let a few hundred bytes describe gigabytes ("billion laughs"): PyYAML shares the aliased objects,
so loading is cheap, but anything that later walks the result (validation, deep copies, error messages,
``yaml.safe_dump`` of a run's blueprint) expands it. Every document is therefore measured on its node graph
before anything is constructed: nesting depth, expanded node count and expanded scalar characters, each
counted once per node with memoisation, so the measurement itself costs the size of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from spmkit.errors import SpmkitError, shorten

#: bounds of one document (the largest builtin blueprint has ~200 nodes and nests 5 deep)
MAX_FILE_BYTES = 4 * 2**20
MAX_DEPTH = 48
MAX_NODES = 20_000
MAX_CHARS = 4 * 2**20


class YamlInputError(SpmkitError):
    """A YAML file or value that cannot be read, is not valid YAML, or exceeds the size bounds."""


class YamlSyntaxError(YamlInputError):
    """Text that is not valid YAML."""


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses nesting deeper than ``MAX_DEPTH`` while composing (before Python's own
    recursion limit turns deep nesting into a ``RecursionError``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Limit(f"the document nests deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Limit(Exception):
    pass


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Raise ``_Limit`` if the document, with every alias expanded, exceeds the bounds or is recursive."""
    sizes: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            nodes, chars = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            for child in _children(node):
                n, c = sizes[id(child)]
                nodes, chars = nodes + n, chars + c
            active.discard(key)
            sizes[key] = (nodes, chars)
            if nodes > MAX_NODES:
                raise _Limit(f"the document expands (aliases included) to more than {MAX_NODES:,} values")
            if chars > MAX_CHARS:
                raise _Limit(f"the document expands (aliases included) to more than {MAX_CHARS:,} characters of text")
            continue
        if key in sizes:
            continue
        if key in active:
            raise _Limit("an alias refers to a value that contains it (a recursive document)")
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document safely (no tags beyond the standard ones) within the bounds above.

    Raises ``YamlInputError`` naming ``source`` for invalid YAML and for documents over the bounds.
    """
    loader = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _Limit as err:
        raise YamlInputError(f"{source}: refused: {err}.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise YamlSyntaxError(f"{source}: not valid YAML: {where}{shorten(problem, 200, quote=False)}") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer with more digits than Python converts
        raise YamlInputError(f"{source}: a value cannot be read: {shorten(str(err), 200, quote=False)}") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """Read a UTF-8 YAML file of at most ``MAX_FILE_BYTES`` and parse it with :func:`load_yaml`."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise YamlInputError(f"{p}: cannot read the file: {err.strerror or err}.") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlInputError(f"{p}: refused: larger than {MAX_FILE_BYTES // 2**20} MiB, too large for a "
                             "blueprint or recipe.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise YamlInputError(f"{p}: not a UTF-8 text file (byte {err.start} cannot be decoded); blueprints and "
                             "recipes are UTF-8 YAML.") from None
    return load_yaml(text, str(p))
