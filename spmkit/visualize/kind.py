"""What a visualization kind is, the registry of kinds, and how a model's kinds are found.

A kind declares the module classes it applies to (``targets``; empty: every backbone). Which kinds a
model has is read from its modules, never from its name, so a new mixer that subclasses a target (or a
new kind) needs no per-model code.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar, ContextManager

import numpy as np
import torch
from torch import nn

from spmkit.errors import SpmkitError
from spmkit.registry import Registry

KINDS: Registry = Registry("visualize kind")


class KindNotAvailableError(SpmkitError):
    """The model has no component that the requested kind draws."""


@dataclass
class Options:
    """Settings shared by the kinds; each kind reads those it needs.

    ``stage`` is 1-based (as ``spmkit build`` numbers stages); ``block`` is a 1-based block index in that
    stage or ``"merging"`` for the layer entering it; ``query`` is ``(y, x)`` as fractions of the image
    height and width (0..1, (0.5, 0.5) is the centre).
    """

    size: int | None = None
    samples: int = 2
    stage: int | None = None
    block: str | None = None
    query: tuple[float, float] = (0.5, 0.5)
    seed: int = 0


@dataclass
class Panel:
    """One picture of the figure: a background RGB image, a heat map over it, points and circles."""

    title: str
    image: np.ndarray | None = None  # [H, W, 3] floats in 0..1
    heat: np.ndarray | None = None  # [h, w], stretched over the image
    cmap: str = "inferno"
    vmin: float | None = None  # colour scale floor (None: the map's minimum)
    points: np.ndarray | None = None  # [K, 2] (y, x) in image pixels
    highlight: np.ndarray | None = None  # [K, 2] (y, x) in image pixels, drawn large
    marker: tuple[float, float] | None = None  # (y, x) in image pixels
    circles: tuple[float, ...] = ()  # radii around the marker, image pixels


@dataclass
class Row:
    """A row of panels and its label (a model, or a model and an image)."""

    label: str
    panels: list[Panel]


@dataclass
class Inputs:
    """The batch a kind runs on: normalised tensor, the RGB images shown (None: random inputs), source."""

    tensor: torch.Tensor  # [N, 3, H, W], normalised for the model
    rgb: np.ndarray | None  # [N, H, W, 3] floats 0..1, or None for random inputs
    source: str  # "images", "built-in image" or "random"
    names: list[str] = field(default_factory=list)


class Kind:
    """Base of a visualization kind. Subclasses set ``name``, ``summary``, ``targets``, ``needs`` and
    implement ``compute``; ``capture`` is the opt-in recording (default: nothing recorded)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    targets: ClassVar[tuple[type[nn.Module], ...]] = ()
    needs: ClassVar[str] = ""  # what the model must contain, in words (for the error sentence)
    random_inputs: ClassVar[bool] = False  # without IMAGE: random tensors (True) or the built-in image

    def available(self, model: nn.Module) -> bool:
        return not self.targets or any(isinstance(m, self.targets) for m in model.modules())

    def capture(self, model: nn.Module, opts: Options) -> ContextManager[Any]:
        """A context within which forwards of ``model`` record what the kind draws (outputs unchanged)."""
        return nullcontext([])

    def compute(self, model: nn.Module, label: str, inputs: Inputs, opts: Options) -> tuple[list[Row], dict[str, Any]]:
        raise NotImplementedError


def kinds_for(model: nn.Module) -> list[str]:
    """Names of the registered kinds that apply to ``model``."""
    return [name for name, cls in KINDS.items() if cls().available(model)]


def require_kind(kind: str, model: nn.Module, label: str) -> Kind:
    """The kind's instance; ``KindNotAvailableError`` (one sentence listing the model's kinds) when the
    model lacks what it draws."""
    obj = KINDS.get(kind)()
    if not obj.available(model):
        raise KindNotAvailableError(
            f"{label} has no {obj.needs}, so there is no `{kind}` picture to draw; "
            f"the kinds {label} has are: {', '.join(kinds_for(model))}."
        )
    return obj
