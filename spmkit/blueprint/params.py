"""Component parameters are the constructor's arguments minus the context the builder supplies.

A pydantic model is derived from each registered constructor's signature (type hints and defaults), so
a blueprint's ``{type: window, window_size: 7}`` is validated like any other field, and ``spmkit schema``
can describe every component without a hand-written spec.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from spmkit.registry import COMPONENT_REGISTRIES
from spmkit.io.value_types import parameter_type

#: Arguments the builder supplies (see docs/extending.md); never set in a blueprint.
CONTEXT_ARGS: dict[str, frozenset[str]] = {
    "stem": frozenset({"in_chans", "out_dim", "img_size", "norm_layer", "act_layer"}),
    "merging": frozenset({"in_dim", "out_dim", "feat_size", "norm_layer", "act_layer"}),
    "mixer": frozenset({"dim", "num_heads", "feat_size", "num_prefix_tokens", "norm_layer", "act_layer"}),
    "block": frozenset(
        {"dim", "num_heads", "mlp_ratio", "drop_path", "mixer", "feat_size", "norm_layer", "act_layer"}
    ),
    "pos_embed": frozenset({"dim", "feat_size", "num_prefix_tokens"}),
    "head": frozenset({"in_dim"}),
    "norm": frozenset({"num_features"}),
}
FACTORY_ARGS = frozenset({"device", "dtype"})


def constructor_parameters(obj: Any) -> dict[str, inspect.Parameter]:
    """Named parameters of a class's ``__init__`` (or a factory function), without ``self``/``*args``."""
    fn = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(fn).parameters
    return {
        n: p
        for n, p in params.items()
        if n != "self" and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def accepts(obj: Any, name: str) -> bool:
    return name in constructor_parameters(obj)


@functools.cache
def param_model(kind: str, obj: Any) -> type[BaseModel]:
    """The pydantic model of a component's user parameters (extra keys forbidden)."""
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable hints: fall back to Any rather than refusing the component
        hints = {}
    fields: dict[str, Any] = {}
    skip = CONTEXT_ARGS[kind] | FACTORY_ARGS
    for name, p in constructor_parameters(obj).items():
        if name in skip:
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        annotation = parameter_type(hints.get(name, Any), name, default)
        fields[name] = (annotation, default)
    label = getattr(obj, "__name__", str(obj))
    return create_model(  # type: ignore[call-overload]
        f"{kind}:{label}", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False),
        **fields
    )


def user_parameter_names(kind: str, obj: Any) -> list[str]:
    return list(param_model(kind, obj).model_fields)


def validate_params(kind: str, name: str, params: dict[str, Any], path: str) -> tuple[dict[str, Any], list]:
    """Check ``params`` against component ``name`` of ``kind``; returns (coerced params, [FieldIssue])."""
    from spmkit.errors import FieldIssue, shorten

    registry = COMPONENT_REGISTRIES[kind]
    obj = registry.get(name)
    model = param_model(kind, obj)
    allowed = list(model.model_fields)
    try:
        validated = model.model_validate(params)
    except ValidationError as err:
        issues = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"])
            field = str(e["loc"][0]) if e["loc"] else ""
            if e["type"] == "extra_forbidden":
                close = difflib.get_close_matches(field[:100], allowed, n=2, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                context = sorted(CONTEXT_ARGS[kind] & set(constructor_parameters(obj)))
                ctx = f" ({', '.join(context)} come from the stage, not the spec.)" if field in context else ""
                msg = (
                    f"unknown parameter {shorten(field)} for {kind} {name!r}.{hint}{ctx} "
                    f"Allowed: {', '.join(allowed) or '(none)'}."
                )
            elif e["type"] == "missing":
                msg = f"{kind} {name!r} needs parameter {field!r}"
            else:
                msg = f"{e['msg']} (got {shorten(e.get('input'), 80)})"
            issues.append(FieldIssue(f"{path}.{key}" if key else path, msg))
        return params, issues
    # keep only what the user set (defaults stay the constructor's), coerced to the declared types
    return {k: getattr(validated, k) for k in params}, []


def validate_value(kind: str, obj: Any, name: str, value: Any) -> tuple[Any, str | None]:
    """One parameter ``name`` of component ``obj`` (e.g. an extra such as ``window_size``): (the coerced
    value, None), or (value, what is wrong)."""
    from spmkit.errors import shorten

    model = param_model(kind, obj)
    if name not in model.model_fields:
        return value, None
    try:
        validated = model.model_validate({name: value})
    except ValidationError as err:
        for e in err.errors():
            if e["loc"] and e["loc"][0] == name and e["type"] != "missing":
                return value, f"{e['msg']} (got {shorten(e.get('input'), 80)})"
        return value, None  # only other (required) parameters missing: this value is fine
    return getattr(validated, name), None

