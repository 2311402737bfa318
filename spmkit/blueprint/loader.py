"""Reading blueprints: builtin names, YAML files (``yaml.safe_load``), ``extends``, dotted overrides.

Merge rules for ``extends`` (and documented in docs/blueprints.md):
- mappings merge key by key; lists and scalars in the child replace the base's;
- a component mapping in the child that names a ``type`` replaces the base's component wholesale;
- top-level keys with dots (``stages.2.depth: 4``) are overrides applied after the merge, like ``--set``;
- a dotted override that changes a component's ``type`` drops that component's old parameters;
- ``reference`` and ``release`` belong to the file that writes them: a child never gets its base's
  (a child that reproduces a release too writes its own figures).
- ``imports`` accumulate along the chain (base first); each file's entries are relative to that file and are
  stored absolute, so a resolved blueprint (checkpoint, run folder) imports the same files from anywhere.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Sequence

from pydantic import ValidationError

from spmkit.blueprint.schema import OWN_FIELDS, Blueprint
from spmkit.errors import BlueprintError, FieldIssue, shorten
from spmkit.io.overrides import split_override
from spmkit.io.safe_yaml import YamlInputError, read_yaml_file
from spmkit.io.user_code import UserImportError, absolute_entry, check_entry, import_entry

_PREFIX = "spmkit_"
#: the longest ``extends`` chain and the most parts of a dotted key (``stages.2.mixer.window_size``)
MAX_EXTENDS = 16
MAX_KEY_PARTS = 16


def builtin_dir() -> Path:
    """The packaged blueprints (``spmkit/_blueprints`` in a wheel, ``blueprints/`` in a checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_blueprints", here.parent / "blueprints"):
        if candidate.is_dir():
            return candidate
    return here / "_blueprints"


#: folders of the builtin directory that hold other YAML than blueprints (sweep files: ``spmkit sweep``)
NOT_BLUEPRINTS = ("sweeps",)


def list_blueprints() -> dict[str, Path]:
    """Builtin blueprint names (file stems, unique across family folders) -> paths."""
    out: dict[str, Path] = {}
    root = builtin_dir()
    for path in sorted(root.rglob("*.yaml")):
        if path.relative_to(root).parts[0] not in NOT_BLUEPRINTS:
            out.setdefault(path.stem, path)
    return out


def resolve_source(src: str | os.PathLike) -> Path:
    """A path to an existing file, a builtin name (``swin_t``), or a timm-style ``spmkit_swin_t``."""
    path = Path(src)
    if path.is_file():
        return path
    name = str(src)
    builtins = list_blueprints()
    for candidate in (name, name.removeprefix(_PREFIX)):
        if candidate in builtins:
            return builtins[candidate]
    if path.suffix or len(path.parts) > 1:
        raise BlueprintError(name, [FieldIssue("", "no such blueprint file")])
    close = difflib.get_close_matches(name.removeprefix(_PREFIX)[:100], list(builtins), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise BlueprintError(
        name,
        [FieldIssue("", f"no blueprint file and no builtin blueprint of that name.{hint} "
                        f"Builtin: {', '.join(builtins)}.")],
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml_file(path)
    except YamlInputError as err:
        detail = str(err).removeprefix(f"{path}: ")
        raise BlueprintError(path, [FieldIssue("", detail)]) from None
    if not isinstance(data, dict):
        raise BlueprintError(path, [FieldIssue("", "a blueprint must be a YAML mapping (key: value lines)")])
    return data


def _is_component(value: Any) -> bool:
    return isinstance(value, dict) and "type" in value


def merge(base: Any, child: Any) -> Any:
    """Child over base: mappings merge recursively, a component with a ``type`` replaces, the rest replaces."""
    if isinstance(base, dict) and isinstance(child, dict) and not _is_component(child):
        out = dict(base)
        for key, value in child.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(child)


def parse_override(text: str) -> tuple[str, Any]:
    """``"stages.2.depth=4"`` -> (``"stages.2.depth"``, 4); the value is read as YAML (``null``, ``[3, 5]``)."""
    try:
        return split_override(text)
    except ValueError:
        raise BlueprintError("--set", [FieldIssue(text, "an override is KEY=VALUE, e.g. stages.2.depth=4")]) from None


def set_dotted(data: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists; list indices must exist, mapping keys may be new."""
    parts = key.split(".")
    if len(parts) > MAX_KEY_PARTS:
        raise BlueprintError(source, [FieldIssue(shorten(key, 200, quote=False),
                                                 f"a dotted key has at most {MAX_KEY_PARTS} parts")])
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.lstrip("-").isdigit():
                raise BlueprintError(source, [FieldIssue(where, f"{shorten(part)} is not a list index")])
            idx = int(part)
            if not -len(node) <= idx < len(node):
                raise BlueprintError(
                    source, [FieldIssue(where, f"index {idx} is out of range: the list has {len(node)} entries")]
                )
            if last:
                node[idx] = value
            else:
                if node[idx] is None:
                    node[idx] = {}
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                if part == "type" and node.get("type") not in (None, value):
                    node.clear()  # a new component type starts from its own defaults
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            parent = ".".join(parts[:depth])
            raise BlueprintError(source, [FieldIssue(parent,
                                                     f"is {shorten(node)}, which has no field {shorten(part)}")])


def read_raw(src: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Path]:
    """The merged mapping of a blueprint file and everything it extends."""
    path = resolve_source(src).resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise BlueprintError(path, [FieldIssue("extends", f"circular extends: {shorten(chain, 300, quote=False)}")])
    if len(_seen) >= MAX_EXTENDS:
        raise BlueprintError(_seen[0], [FieldIssue("extends", f"the extends chain is longer than {MAX_EXTENDS} "
                                                              f"files (stopped at {path.name})")])
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    own_imports = _absolute_imports(data.pop("imports", None), path.parent, path) if "imports" in data else None
    dotted = {k: data.pop(k) for k in [k for k in data if isinstance(k, str) and "." in k]}
    if parent is not None:
        if not isinstance(parent, str) or not parent or "\0" in parent:
            raise BlueprintError(path, [FieldIssue("extends", "must be a blueprint name or a relative path")])
        rel = path.parent / parent
        base_src: str | Path = rel if rel.is_file() else parent
        base, _ = read_raw(base_src, (*_seen, path))
        for key in OWN_FIELDS:  # the base's figures and release are the base's, never the child's
            base.pop(key, None)
        data = merge(base, data)
    if own_imports is not None:
        data["imports"] = list(dict.fromkeys([*data.get("imports", []), *own_imports]))
    for key, value in dotted.items():
        set_dotted(data, key, value, str(path))
    return data, path


def _absolute_imports(value: Any, base: Path, source: str | Path) -> list[str]:
    """A blueprint's ``imports`` checked, with file entries made absolute against folder ``base``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BlueprintError(source, [FieldIssue("imports", "must be a list of .py files (relative to the "
                                                            "blueprint) or module names, e.g. [my_mixer.py]")])
    issues = [FieldIssue(f"imports.{i}", p) for i, p in enumerate(map(check_entry, value)) if p is not None]
    if issues:
        raise BlueprintError(source, issues)
    return [absolute_entry(entry, base) for entry in value]


def run_imports(data: dict[str, Any], source: str, base: Path | None = None) -> None:
    """Import the files and modules ``data["imports"]`` names (their registrations), before validation.
    Entries still relative (a dict or ``--set`` override) are relative to ``base``, default the working
    directory; they are stored absolute in ``data``."""
    if data.get("imports", []) is None:
        del data["imports"]
    if "imports" not in data:
        return
    entries = _absolute_imports(data["imports"], base or Path.cwd(), source)
    data["imports"] = entries
    for i, entry in enumerate(entries):
        try:
            import_entry(entry)
        except UserImportError as err:
            raise BlueprintError(source, [FieldIssue(f"imports.{i}", str(err))]) from None


_TYPE_TAGS = ("function-", "list[", "tuple[", "constrained-", "nullable[", "union[", "MixerSpec")


def _is_type_tag(part: Any) -> bool:
    """Union members and validators that pydantic puts in error locations (not field names)."""
    return isinstance(part, str) and (part.startswith(_TYPE_TAGS) or part in ("int", "float", "str", "bool"))


def pydantic_issues(err: ValidationError) -> list[FieldIssue]:
    issues = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not _is_type_tag(p))
        msg = e["msg"]
        if e["type"] == "missing":
            msg = "required field is missing"
        elif "input" in e and e["type"] not in ("missing",):
            msg = f"{msg} (got {shorten(e['input'], 80)})"
        issues.append(FieldIssue(loc, msg))
    # union types repeat one problem per member; keep the first per path
    seen, out = set(), []
    for issue in issues:
        if issue.path not in seen:
            seen.add(issue.path)
            out.append(issue)
    return out


def load_blueprint(src: str | os.PathLike | dict[str, Any] | Blueprint, overrides: Sequence[str] = ()) -> Blueprint:
    """Read, merge, override and validate a blueprint. Raises ``BlueprintError`` listing every problem."""
    from spmkit.blueprint.check import check_components

    if isinstance(src, Blueprint):
        if not overrides:
            return src
        data, source = src.model_dump(exclude_unset=True), src.source or src.name
    elif isinstance(src, dict):
        data, source = copy.deepcopy(src), "<dict>"
        data.pop("extends", None)
    else:
        data, path = read_raw(src)
        source = str(path)
    keys = []
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(data, key, value, f"{source} (--set {text})")
        keys.append(key)
    run_imports(data, source)
    try:
        bp = Blueprint.model_validate(data)
    except ValidationError as err:
        raise BlueprintError(source, pydantic_issues(err)) from None
    bp._source = source
    issues = check_components(bp, keys)
    if issues:
        raise BlueprintError(source, issues)
    return bp
