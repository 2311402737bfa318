"""What a sweep is: a base blueprint, axes of blueprint and recipe overrides, seeds.

A sweep comes from the command line (``--vary KEY=V1,V2``) or from a YAML file (``blueprints/sweeps/``)::

    name: pvt_tiny_merging
    base: pvt_tiny                  # builtin name, or a path relative to this file
    overrides: {img_size: 32}       # blueprint overrides of every variant
    axes: {merging.type: [conv, msa_only, gle_only, spm]}
    zip: false                      # true: the i-th values of every axis together, not the grid
    recipe: cpu_small               # recipe file or builtin name
    recipe_overrides: {epochs: 1}
    recipe_axes: {lr: [1.0e-3, 2.0e-3]}
    seeds: 1                        # N (seeds 0..N-1) or a list; omitted: the recipe's own seed, one run

A file is a sweep (not a blueprint) when it has a top-level ``base`` key; blueprints use ``extends``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spmkit.io.overrides import split_override
from spmkit.sweep.errors import SweepError


class SweepSpec(BaseModel):
    """A sweep file, validated (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="sweep name (default: the file name or the base's)")
    description: str = ""
    base: str = Field(description="blueprint name or path (relative to the sweep file)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="blueprint overrides of every variant")
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="blueprint KEY -> values to vary")
    zip: bool = Field(False, description="pair the i-th values of all axes instead of the full grid")
    task: str = Field("classification", description="task name, or SOURCE:NAME (a .py file relative to this "
                                                  "file, or a module) registering it")
    recipe: str | None = Field(None, description="recipe YAML path or builtin recipe name")
    recipe_overrides: dict[str, Any] = Field(default_factory=dict, description="recipe overrides of every run")
    recipe_axes: dict[str, list[Any]] = Field(default_factory=dict, description="recipe KEY -> values to vary")
    seeds: int | list[int] | None = Field(None, description="N (seeds 0..N-1) or a list of seeds")

    @field_validator("axes", "recipe_axes")
    @classmethod
    def _non_empty(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"axis {key!r} has no values")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int] | None) -> int | list[int] | None:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be at least 1")
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return v

    def seed_list(self) -> list[int | None]:
        """The seeds of each variant; ``[None]``: one run with the recipe's own seed."""
        if self.seeds is None:
            return [None]
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def sweeps_dir() -> Path:
    from spmkit.blueprint.loader import builtin_dir

    return builtin_dir() / "sweeps"


def list_sweeps() -> dict[str, Path]:
    """Builtin sweep files (``blueprints/sweeps/*.yaml``) by name."""
    return {p.stem: p for p in sorted(sweeps_dir().glob("*.yaml"))}


def find_sweep_file(src: str) -> Path | None:
    """``src`` as a sweep file: an existing sweep YAML path or a builtin sweep name; else ``None``."""
    path = Path(src)
    if path.is_file():
        if path.suffix not in (".yaml", ".yml"):
            return None
        from spmkit.io.safe_yaml import read_yaml_file

        data = read_yaml_file(path)  # a file that cannot be read is an error naming it, whatever it holds
        return path if isinstance(data, dict) and "base" in data else None
    return list_sweeps().get(src)


def load_sweep_file(path: Path) -> SweepSpec:
    """Read and validate a sweep file; ``base`` and ``recipe`` paths become relative to the file."""
    from spmkit.errors import SpmkitError
    from spmkit.io.safe_yaml import read_yaml_file
    from spmkit.io.user_code import is_file_entry, split_task

    try:
        data = read_yaml_file(path)  # bounded: size, depth, alias expansion, UTF-8
    except SpmkitError as err:
        raise SweepError(str(err)) from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: a sweep file must be a YAML mapping with base and axes.")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        lines = [f"{path}: invalid sweep file ({err.error_count()} problem{'s' if err.error_count() != 1 else ''})"]
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "<root>"
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            if e["type"] == "extra_forbidden":
                msg += f"; allowed: {', '.join(SweepSpec.model_fields)}"
            lines.append(f"  - {loc}: {msg}")
        raise SweepError("\n".join(lines)) from None
    updates: dict[str, Any] = {}
    for field in ("base", "recipe"):
        value = getattr(spec, field)
        if value and not Path(value).is_absolute() and (path.parent / value).is_file():
            updates[field] = str((path.parent / value).resolve())
    source, name = split_task(spec.task)
    if source is not None and is_file_entry(source) and (path.parent / source).is_file():
        updates["task"] = f"{(path.parent / source).resolve()}:{name}"
    if spec.name is None:
        updates["name"] = path.stem
    return spec.model_copy(update=updates)


def split_values(text: str) -> list[str]:
    """``"conv,spm"`` -> ``["conv", "spm"]``; commas inside ``[...]``, ``{...}`` or quotes do not split."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_vary(text: str, option: str = "--vary") -> tuple[str, list[Any]]:
    """``"stages.1.depth=1,2"`` -> (``"stages.1.depth"``, [1, 2]); values are read as YAML."""
    try:
        key, _ = split_override(text)
    except ValueError:
        raise SweepError(f"{option} {text!r}: expected KEY=V1,V2,..., e.g. {option} merging.type=conv,spm.") from None
    raw = text.split("=", 1)[1]
    parts = split_values(raw)
    if not key or any(not p for p in parts):
        raise SweepError(f"{option} {text!r}: expected KEY=V1,V2,... with no empty key or value.")
    values = [split_override(f"{key}={p}")[1] for p in parts]
    return key, values


def value_text(value: Any) -> str:
    """A value as the text of a ``KEY=VALUE`` override (YAML flow style), e.g. ``{type: conv, stride: 2}``."""
    if isinstance(value, str):
        reparsed = split_override(f"k={value}")[1]
        return value if reparsed == value else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return text.removesuffix("...").strip()
