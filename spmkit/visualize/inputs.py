"""Models and images for ``spmkit visualize``: a blueprint or a run checkpoint in, a Backbone out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from spmkit.errors import SpmkitError


@dataclass
class LoadedModel:
    label: str  # blueprint name or checkpoint path, as shown in the picture
    model: nn.Module  # an spmkit Backbone in eval mode


def find_backbone(model: nn.Module) -> nn.Module:
    """The spmkit ``Backbone`` itself or inside a detector / segmentor (the first one found)."""
    from spmkit.backbone import Backbone

    for m in model.modules():
        if isinstance(m, Backbone):
            return m
    raise SpmkitError(f"the model ({type(model).__name__}) has no spmkit backbone to visualize "
                      f"(timm: models are not supported).")


def from_blueprint(name: str, overrides: Sequence[str] = (), seed: int = 0) -> LoadedModel:
    """A freshly initialised model (seeded, so pictures repeat) from a builtin name or YAML path."""
    import spmkit

    bp = spmkit.load_blueprint(name, list(overrides))
    torch.manual_seed(seed)
    return LoadedModel(bp.name, spmkit.create_model(bp).eval())


def from_checkpoint(path: str | Path, use_ema: bool = False) -> LoadedModel:
    """The backbone of an spmkit run checkpoint (classification, detection or segmentation)."""
    from spmkit.infer.run_model import load_run_model

    def spmkit_backbones_only(_task_name: str, spec) -> None:
        if spec.blueprint.startswith("timm:") and spec.resolved is None:
            raise SpmkitError(f"{path} holds a timm model ({spec.blueprint}); visualize draws spmkit backbones.")

    model = load_run_model(path, use_ema=use_ema, check=spmkit_backbones_only).model
    path = Path(path)
    label = f"{path.parent.name}/{path.name}" if path.parent.name else path.name  # RUN/best.pt
    return LoadedModel(label, find_backbone(model).eval())


def builtin_image(size: int) -> np.ndarray:
    """A deterministic synthetic picture (sky, ground, a sun, a house and a tree), ``[size, size, 3]``
    floats in 0..1: something with edges and regions when no IMAGE is given, with no extra dependency."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.empty((size, size, 3))
    img[:] = np.stack([0.45 + 0.3 * yy, 0.65 + 0.2 * yy, 0.95 - 0.1 * yy], -1)  # sky
    ground = yy > 0.68
    img[ground] = np.array([0.30, 0.55, 0.22]) - 0.15 * (yy[ground, None] - 0.68)
    img[(yy - 0.2) ** 2 + (xx - 0.8) ** 2 < 0.01] = (1.0, 0.85, 0.2)  # sun
    img[(yy > 0.45) & (yy < 0.75) & (xx > 0.15) & (xx < 0.45)] = (0.75, 0.3, 0.25)  # house walls
    img[(yy > 0.25) & (yy <= 0.45) & (np.abs(xx - 0.3) < (yy - 0.25) * 0.85)] = (0.45, 0.2, 0.15)  # roof
    img[(yy > 0.6) & (yy < 0.75) & (xx > 0.26) & (xx < 0.34)] = (0.3, 0.2, 0.1)  # door
    img[(yy > 0.55) & (yy < 0.8) & (np.abs(xx - 0.65) < 0.025)] = (0.4, 0.25, 0.1)  # trunk
    img[(yy - 0.48) ** 2 + (xx - 0.65) ** 2 < 0.012] = (0.15, 0.45, 0.15)  # crown
    return img.clip(0, 1)


def read_image(path: str | Path, size: int) -> np.ndarray:
    """An image file resized (shorter side) and centre-cropped to ``size`` x ``size``, floats 0..1."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise SpmkitError(f"image {path} does not exist.")
    try:
        im = Image.open(path).convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise SpmkitError(f"image {path} cannot be read as an image ({e}).") from None
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float64) / 255.0


def normalise(rgb: np.ndarray, model: nn.Module) -> torch.Tensor:
    """``[N, H, W, 3]`` 0..1 -> ``[N, 3, H, W]`` float32 with the model's mean and std."""
    cfg = getattr(model, "pretrained_cfg", {})
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1)
    return (torch.from_numpy(np.ascontiguousarray(rgb)).float().permute(0, 3, 1, 2) - mean) / std
