"""Checks that need the registries: component names, their parameters, stage extras, indices.

Constraints that depend on sizes (dim divisible by heads, windows that fit, merging channel rules) are
raised by the components' constructors and reported by the builder at the same dotted paths.
"""

from __future__ import annotations

import difflib
from typing import Any, Sequence

from spmkit.blueprint.params import accepts, user_parameter_names, validate_params, validate_value
from spmkit.blueprint.schema import Blueprint, ComponentSpec, MixerSpec, StageSpec
from spmkit.errors import FieldIssue, shorten
from spmkit.registry import ACTS, BLOCKS, COMPONENT_REGISTRIES, MIXERS, UnknownComponentError, load_components


def _check_spec(kind: str, spec: ComponentSpec, path: str, issues: list[FieldIssue]) -> bool:
    registry = COMPONENT_REGISTRIES[kind]
    try:
        registry.get(spec.type)
    except UnknownComponentError as err:
        issues.append(FieldIssue(f"{path}.type", str(err)))
        return False
    coerced, found = validate_params(kind, spec.type, spec.params, path)
    issues.extend(found)
    if not found and spec.__pydantic_extra__ is not None:
        spec.__pydantic_extra__.update(coerced)
    return not found


def _mixer_list(value: Any) -> list[MixerSpec]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _check_mixers(value: Any, path: str, issues: list[FieldIssue]) -> None:
    items = _mixer_list(value)
    for j, spec in enumerate(items):
        p = f"{path}.{j}" if isinstance(value, list) else path
        _check_spec("mixer", spec, p, issues)
        if spec.block is not None and spec.block not in BLOCKS:
            issues.append(FieldIssue(f"{p}.block", str(UnknownComponentError("block", spec.block, BLOCKS.names()))))


def stage_classes(bp: Blueprint, i: int) -> list[Any]:
    """The mixer and block classes stage ``i`` uses (those that exist), for routing extras."""
    out: list[Any] = []
    block = bp.stage_value(i, "block")
    for spec in _mixer_list(bp.stage_value(i, "mixer")):
        if spec.type in MIXERS:
            out.append(MIXERS.get(spec.type))
        if spec.block and spec.block in BLOCKS:
            out.append(BLOCKS.get(spec.block))
    if block is not None and block.type in BLOCKS:
        out.append(BLOCKS.get(block.type))
    return out


def _stage_components(bp: Blueprint, i: int) -> str:
    """``mixer 'sra', block 'transformer'``: the mixers and blocks stage ``i`` has, by name."""
    parts = [f"mixer {m.type!r}" for m in _mixer_list(bp.stage_value(i, "mixer"))]
    parts += [f"block {m.block!r}" for m in _mixer_list(bp.stage_value(i, "mixer")) if m.block]
    block = bp.stage_value(i, "block")
    if block is not None:
        parts.append(f"block {block.type!r}")
    return ", ".join(dict.fromkeys(parts)) or "no mixer or block"


def _all_stage_components(bp: Blueprint) -> str:
    """``stages.0-3: mixer 'sra', block 'transformer'``: consecutive stages with the same components merged."""
    groups: list[tuple[int, int, str]] = []
    for i in range(len(bp.stages)):
        desc = _stage_components(bp, i)
        if groups and groups[-1][2] == desc:
            groups[-1] = (groups[-1][0], i, desc)
        else:
            groups.append((i, i, desc))
    return "; ".join(f"stages.{a}{f'-{b}' if b > a else ''}: {d}" for a, b, d in groups)


def _check_extras(bp: Blueprint, issues: list[FieldIssue], overridden: frozenset[str] = frozenset()) -> None:
    stage_fields = list(StageSpec.model_fields)
    top_fields = list(Blueprint.model_fields)
    classes_per_stage = [stage_classes(bp, i) for i in range(len(bp.stages))]
    for key in bp.extras:
        if not any(accepts(c, key) for classes in classes_per_stage for c in classes):
            names = {n for classes in classes_per_stage for c in classes for n in _names(c)}
            issues.append(FieldIssue(key, _extra_message(key, top_fields, names).replace(
                "no mixer or block of this stage takes it.",
                f"no mixer or block of any stage takes it ({_all_stage_components(bp)}).")))
    # a stage extra that only another stage's components take is tolerated (a stage may switch its mixer
    # off with --set, which cannot delete keys); one that nothing takes is a typo
    every = [c for classes in classes_per_stage for c in classes]
    for i, stage in enumerate(bp.stages):
        for key in stage.extras:
            if f"stages.{i}.{key}" in overridden and not any(accepts(c, key) for c in classes_per_stage[i]):
                # an override the user just gave must reach a component of that very stage
                names = {n for c in classes_per_stage[i] for n in _names(c)}
                takes = f"; they take: {', '.join(sorted(names))}" if names else ""
                close = difflib.get_close_matches(key, stage_fields + sorted(names), n=2, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                issues.append(FieldIssue(f"stages.{i}.{key}", (
                    f"no component of stages.{i} takes {key!r} (stages.{i} has {_stage_components(bp, i)}{takes}); "
                    f"the override would be ignored.{hint}")))
            elif not any(accepts(c, key) for c in every):
                names = {n for c in classes_per_stage[i] for n in _names(c)}
                issues.append(FieldIssue(f"stages.{i}.{key}", _extra_message(key, stage_fields, names)))
    if issues:
        return
    # the value of an extra must suit every component of the stage that takes it (and is coerced to its type)
    seen: set[str] = set()
    for i, stage in enumerate(bp.stages):
        for key, value in bp.stage_extras(i).items():
            path = f"stages.{i}.{key}" if key in stage.extras else key
            for cls in classes_per_stage[i]:
                if not accepts(cls, key):
                    continue
                kind = "block" if cls in BLOCKS._items.values() else "mixer"
                coerced, problem = validate_value(kind, cls, key, value)
                if problem is not None:
                    if path not in seen:
                        seen.add(path)
                        issues.append(FieldIssue(path, problem))
                    break
                owner = stage.__pydantic_extra__ if key in stage.extras else bp.__pydantic_extra__
                if owner is not None:
                    owner[key] = coerced


def _names(cls: Any) -> list[str]:
    kind = "block" if cls in BLOCKS._items.values() else "mixer"
    return user_parameter_names(kind, cls)


def _extra_message(key: str, fields: list[str], params: set[str]) -> str:
    close = difflib.get_close_matches(key[:100], fields + sorted(params), n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    takes = f" The mixers/blocks here take: {', '.join(sorted(params))}." if params else ""
    return (f"unknown field {shorten(key)}: not a field here, and no mixer or block of this stage takes it."
            f"{hint}{takes}")


def check_components(bp: Blueprint, overridden: Sequence[str] = ()) -> list[FieldIssue]:
    """Every problem of names, parameters and extras in ``bp`` (empty list: fine).

    ``overridden``: dotted keys set by ``--model-set``; a stage extra among them must be taken by a mixer or
    block of that stage (other stage extras may serve another stage's components)."""
    load_components()
    issues: list[FieldIssue] = []
    _check_spec("stem", bp.stem, "stem", issues)
    _check_spec("block", bp.block, "block", issues)
    _check_spec("head", bp.head, "head", issues)
    _check_spec("norm", bp.norm, "norm", issues)
    _check_mixers(bp.mixer, "mixer", issues)
    if bp.merging is not None:
        _check_spec("merging", bp.merging, "merging", issues)
    if bp.pos_embed is not None:
        _check_spec("pos_embed", bp.pos_embed, "pos_embed", issues)
    if bp.act not in ACTS:
        issues.append(FieldIssue("act", str(UnknownComponentError("act", bp.act, ACTS.names()))))
    for i, stage in enumerate(bp.stages):
        p = f"stages.{i}"
        if "mixer" in stage.model_fields_set:
            _check_mixers(stage.mixer, f"{p}.mixer", issues)
        for kind in ("block", "merging", "pos_embed"):
            spec = getattr(stage, kind)
            if kind in stage.model_fields_set and spec is not None:
                _check_spec(kind, spec, f"{p}.{kind}", issues)
    if bp.out_indices is not None:
        n = len(bp.stages)
        for j, idx in enumerate(bp.out_indices):
            if not -n <= idx < n:
                issues.append(FieldIssue(f"out_indices.{j}", f"stage index {idx} out of range for {n} stages"))
    if not issues:
        _check_extras(bp, issues, frozenset(overridden))
    return issues
