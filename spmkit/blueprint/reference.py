"""How a blueprint relates to the reference count it carries: equal, or a variant that changes fields.

``reference: {params: N}`` belongs to the file that writes it: ``extends`` does not pass it on. A variant that
``extends:`` that file (or a ``--model-set`` override of it) changes the model, so a different count is
expected: :func:`compare_with_reference` finds the nearest file of the ``extends`` chain that writes a count and
says which fields differ and by how many parameters, as information.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spmkit.blueprint.schema import METADATA_FIELDS, Blueprint
from spmkit.errors import SpmkitError
from spmkit.io.safe_yaml import read_yaml_file

_IGNORED = (*METADATA_FIELDS, "imports")  # imports: where components come from, not the model


@dataclass
class ReferenceComparison:
    """``params`` of the blueprint against ``reference_params`` (the reference file's own count)."""

    reference_name: str  # the blueprint whose ``reference:`` this is
    reference_params: int
    params: int
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # dotted field -> (reference, this)
    timm: str | None = None

    @property
    def is_variant(self) -> bool:
        return bool(self.changed)

    @property
    def delta(self) -> int:
        return self.params - self.reference_params


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {f"{prefix}len": len(value)}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: value}


def changed_fields(reference: Blueprint, bp: Blueprint) -> dict[str, tuple[Any, Any]]:
    """Dotted fields whose values differ (``merging.type: patch_merging -> spm``), metadata left out."""
    a = {k: v for k, v in _flatten(reference.model_dump(mode="json")).items() if k.split(".")[0] not in _IGNORED}
    b = {k: v for k, v in _flatten(bp.model_dump(mode="json")).items() if k.split(".")[0] not in _IGNORED}
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=lambda k: (k.split(".")[0], k))
            if a.get(k) != b.get(k)}


def reference_file(source: str | Path) -> Path | None:
    """The file in ``source``'s ``extends:`` chain (itself first) that writes ``reference: {params: ...}``."""
    from spmkit.blueprint.loader import resolve_source

    path: Path | None = Path(source)
    seen: set[Path] = set()
    while path is not None and path.is_file() and path.resolve() not in seen:
        seen.add(path.resolve())
        try:
            data = read_yaml_file(path) or {}  # bounded, as every YAML the project reads
        except SpmkitError:
            return None
        if not isinstance(data, dict):
            return None
        ref = data.get("reference")
        if isinstance(ref, dict) and "params" in ref:
            return path if ref.get("params") else None
        parent = data.get("extends")
        if not isinstance(parent, str):
            return None
        rel = path.parent / parent
        try:
            path = rel if rel.is_file() else resolve_source(parent)
        except Exception:  # noqa: BLE001 - an unresolvable parent was reported when loading
            return None
    return None


def compare_with_reference(bp: Blueprint, params: int) -> ReferenceComparison | None:
    """Compare ``bp`` (with ``params`` parameters) with its own ``reference`` count, or else with the nearest
    file of its ``extends`` chain that writes one; ``None`` when there is none."""
    from spmkit.blueprint.loader import load_blueprint

    own = bp.reference.get("params")
    ref_path = reference_file(bp.source) if bp.source else None
    if ref_path is None:
        return ReferenceComparison(bp.name, int(own), params, timm=bp.reference.get("timm")) if own else None
    ref = load_blueprint(ref_path)
    count = int(ref.reference["params"])
    return ReferenceComparison(ref.name, count, params, changed_fields(ref, bp), timm=ref.reference.get("timm"))


def describe(cmp: ReferenceComparison, max_fields: int = 6) -> str:
    """One line for ``spmkit build``."""
    origin = f"timm's {cmp.timm}" if cmp.timm else f"{cmp.reference_name}'s reference count"
    if not cmp.is_variant:
        if cmp.delta == 0:
            return f"parameters equal to {origin}: {cmp.reference_params:,}."
        return (f"note: {cmp.params:,} parameters, {cmp.delta:+,} against {origin} ({cmp.reference_params:,}); "
                f"the blueprint itself declares that count, so check it.")
    fields = [f"{k} ({_short(a)} -> {_short(b)})" for k, (a, b) in cmp.changed.items()]
    more = f" and {len(fields) - max_fields} more" if len(fields) > max_fields else ""
    return (f"variant of {cmp.reference_name}: changes {', '.join(fields[:max_fields])}{more}; "
            f"{cmp.params:,} parameters, {cmp.delta:+,} against {origin} ({cmp.reference_params:,}).")


def _short(v: Any) -> str:
    text = "null" if v is None else str(v)
    return text if len(text) <= 24 else text[:21] + "..."
