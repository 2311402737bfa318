"""Number types of the blueprint schema, component parameters and recipes: a bool is not a number, a float
is finite, and every integer has a range.

YAML reads ``true`` as a bool and pydantic's lax mode would take it for 1; ``.inf`` would pass ``gt=0``.
Integers are strict (``depth: 2.5`` or ``"4"`` is an error); floats still accept numeric text, because
PyYAML reads ``1e-3`` (no dot) as a string.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, Strict


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def Int(ge: int | None = None, le: int | None = None) -> Any:  # noqa: N802 (a type factory)
    """A strict integer in [ge, le]."""
    return Annotated[int, Strict(), Field(ge=ge, le=le)]


def Float(ge: float | None = None, le: float | None = None, gt: float | None = None,  # noqa: N802
          lt: float | None = None) -> Any:
    """A finite float (ints and numeric text accepted, bools refused) with optional bounds."""
    return Annotated[float, BeforeValidator(_no_bool), Field(ge=ge, le=le, gt=gt, lt=lt, allow_inf_nan=False)]


#: the largest integer a component parameter may take unless its name says otherwise
MAX_INT_PARAM = 65536
#: (name test, bounds) for component parameters, first match wins; see docs/extending.md
_FLOAT_RULES: list[tuple[typing.Callable[[str], bool], dict[str, float]]] = [
    (lambda n: n == "eps" or n.endswith("_eps"), {"gt": 0.0, "le": 1.0}),
    (lambda n: n == "drop" or n.endswith("_drop") or n == "dropout", {"ge": 0.0, "lt": 1.0}),
    (lambda n: n == "momentum", {"ge": 0.0, "le": 1.0}),
]
_INT_RULES: list[tuple[typing.Callable[[str], bool], dict[str, int]]] = [
    (lambda n: n == "num_classes", {"ge": 0, "le": 2**20}),
]


def parameter_type(annotation: Any, name: str, default: Any) -> Any:
    """``annotation`` of a component parameter with the rules above applied to its ints and floats.

    An int's lower bound is 1, or 0 when the default is 0 (an "off" value), none when it is negative;
    its upper bound is ``MAX_INT_PARAM``. Floats are finite; names ending in ``eps`` are positive,
    dropout rates are in [0, 1).
    """
    if annotation is int:
        for test, bounds in _INT_RULES:
            if test(name):
                return Int(**bounds)
        if isinstance(default, int) and not isinstance(default, bool) and default <= 0:
            return Int(ge=0 if default == 0 else None, le=MAX_INT_PARAM)
        return Int(ge=1, le=MAX_INT_PARAM)
    if annotation is float:
        for test, fbounds in _FLOAT_RULES:
            if test(name):
                return Float(**fbounds)
        return Float()
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = None if default is None else default
        return typing.Union[tuple(parameter_type(a, name, inner) for a in args)]  # type: ignore[return-value]
    if origin is tuple and args:
        first = default[0] if isinstance(default, tuple) and default else None
        return tuple[tuple(a if a is Ellipsis else parameter_type(a, name, first) for a in args)]  # type: ignore[misc]
    if origin is list and args:
        return list[parameter_type(args[0], name, None)]  # type: ignore[misc]
    return annotation


def is_number_annotation(annotation: Any) -> tuple[bool, bool]:
    """(takes an int, takes a float) somewhere in ``annotation`` (bool excluded)."""
    if annotation is int:
        return True, False
    if annotation is float:
        return False, True
    has_int = has_float = False
    for a in typing.get_args(annotation):
        i, f = is_number_annotation(a)
        has_int, has_float = has_int or i, has_float or f
    return has_int, has_float


def check_number(value: Any, annotation: Any) -> Any:
    """For a model-wide ``field_validator("*", mode="before")``: refuse a bool where only numbers are
    expected, and a non-finite float anywhere a number is expected (lists and tuples included)."""
    has_int, has_float = is_number_annotation(annotation)
    if not (has_int or has_float):
        return value
    takes_bool = _takes_bool(annotation)
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if isinstance(v, bool) and not takes_bool:
            raise ValueError(f"expected a number, got {str(v).lower()}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v}")
    return value


def _takes_bool(annotation: Any) -> bool:
    return annotation is bool or any(_takes_bool(a) for a in typing.get_args(annotation))
