"""The variants of a sweep: the grid (or zip) of its axes, each validated before anything runs.

A variant is the base blueprint with the sweep's overrides and one value per axis. Its *runs* are one per
seed. Invalid variants (the blueprint does not validate or does not build) are reported with the reason
and skipped; the rest still run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from spmkit.sweep.errors import SweepError
from spmkit.sweep.spec import SweepSpec, value_text

RECIPE_PREFIX = "recipe."


@dataclass(frozen=True)
class Variant:
    """One point of the sweep. ``values``: (column, value text) per axis, recipe axes as ``recipe.KEY``."""

    index: int
    base: str
    values: tuple[tuple[str, str], ...]
    blueprint_overrides: tuple[str, ...]
    recipe_overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values) or "base"

    @property
    def blueprint_key(self) -> str:
        """Identifies the built model (not the recipe): the cache key of its costs."""
        return _digest({"base": self.base, "overrides": list(self.blueprint_overrides)})

    @property
    def slug(self) -> str:
        text = "__".join(f"{k}-{v}" for k, v in self.values) or "base"
        text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60]
        return f"{self.index:02d}_{text}"


@dataclass(frozen=True)
class Run:
    """One training run of a variant: a seed (``None``: the recipe's), in its own folder under the sweep."""

    variant: Variant
    seed: int | None
    key: str  # digest of everything that decides the result: blueprint, task, recipe, seed, data

    @property
    def folder_name(self) -> str:
        seed = "" if self.seed is None else f"_seed{self.seed}"
        return f"{self.variant.slug}{seed}_{self.key[:8]}"

    @property
    def recipe_overrides(self) -> tuple[str, ...]:
        return self.variant.recipe_overrides + (() if self.seed is None else (f"seed={self.seed}",))


@dataclass
class Grid:
    valid: list[Variant] = field(default_factory=list)
    invalid: list[tuple[Variant, str]] = field(default_factory=list)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _points(axes: dict[str, list[Any]], zipped: bool) -> list[tuple[tuple[str, Any], ...]]:
    keys = list(axes)
    if not keys:
        return [()]
    if zipped:
        lengths = {k: len(v) for k, v in axes.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            raise SweepError(f"--zip pairs the i-th values of every axis, so all axes need the same number of "
                             f"values ({shown}).")
        return [tuple(zip(keys, vals)) for vals in zip(*axes.values())]
    return [tuple(zip(keys, vals)) for vals in itertools.product(*axes.values())]


def expand(spec: SweepSpec) -> list[Variant]:
    """Every variant of ``spec`` in order: the first value of each axis first (the delta baseline)."""
    both = {**spec.axes, **{RECIPE_PREFIX + k: v for k, v in spec.recipe_axes.items()}}
    dupes = set(spec.axes) & set(spec.overrides)
    if dupes:
        raise SweepError(f"{', '.join(sorted(dupes))}: both an axis and a fixed override; keep one.")
    base_bp = tuple(f"{k}={value_text(v)}" for k, v in spec.overrides.items())
    base_recipe = tuple(f"{k}={value_text(v)}" for k, v in spec.recipe_overrides.items())
    variants = []
    for i, point in enumerate(_points(both, spec.zip)):
        values = tuple((k, value_text(v)) for k, v in point)
        bp = tuple(f"{k}={t}" for k, t in values if not k.startswith(RECIPE_PREFIX))
        rc = tuple(f"{k[len(RECIPE_PREFIX):]}={t}" for k, t in values if k.startswith(RECIPE_PREFIX))
        variants.append(Variant(i, spec.base, values, base_bp + bp, base_recipe + rc))
    return variants


def run_key(variant: Variant, seed: int | None, task: str, recipe: str | None, data: str | None) -> str:
    return _digest({"blueprint": variant.blueprint_key, "task": task, "recipe": recipe,
                    "recipe_overrides": list(variant.recipe_overrides), "seed": seed, "data": data})


def runs_of(variant: Variant, spec: SweepSpec, data: str | None) -> list[Run]:
    return [Run(variant, s, run_key(variant, s, spec.task, spec.recipe, data)) for s in spec.seed_list()]
