"""What a reproduction blueprint reproduces: the official code, its checkpoint layout, and the published weights.

A blueprint's ``release:`` block is data, like torchvision's weight enums and timm's pretrained configs::

    release:
      code: {repo: whai362/PVT, file: classification/pvt.py, model: pvt_tiny}
      layout: pvt_v1                       # the spmkit.convert converter (``spmkit convert --from``)
      weights:
        - tag: in1k
          url: https://github.com/whai362/PVT/releases/download/v2/pvt_tiny.pth
          listed_at: https://github.com/whai362/PVT/blob/v2/classification/README.md
          metrics: {top1: 75.1}
          eval: {img_size: 224, crop_pct: 0.875, interpolation: bicubic}

Like ``reference``, a release belongs to the file that writes it: ``extends`` does not pass it on (a variant
with other merging layers is not the release). Weights that spmkit cannot fetch (OneDrive folders, Google
Drive) still name where the authors list them; ``sha256`` is given only where the publisher states it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spmkit.io.value_types import Float, Int

_NAME = r"^[A-Za-z0-9_.\-]+$"
_URL = r"^https://\S+$"


class ReleaseCode(BaseModel):
    """The official model definition: ``repo`` (GitHub owner/name), ``file`` in it, the ``model`` it builds
    (function or config name) and, where the model is built from a config file, that ``config``."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$", max_length=200)
    file: str = Field(max_length=300)
    model: str = Field(pattern=_NAME, max_length=200)
    config: str | None = Field(None, max_length=300, description="config file the model is built from")


class EvalSettings(BaseModel):
    """How the published metrics were measured (ImageNet: resize to size / crop_pct, center crop)."""

    model_config = ConfigDict(extra="forbid")

    img_size: Int(ge=1, le=4096) = 224
    crop_pct: Float(gt=0.0, le=1.0) = 0.875
    interpolation: Literal["bicubic", "bilinear", "nearest"] = "bicubic"


class Weights(BaseModel):
    """One published checkpoint of a release."""

    model_config = ConfigDict(extra="forbid")

    tag: str = Field(pattern=_NAME, max_length=100, description="name of the weights within the blueprint (in1k)")
    url: str = Field(pattern=_URL, max_length=1000, description="the file, or the page/folder that serves it")
    listed_at: str | None = Field(None, pattern=_URL, max_length=1000,
                                  description="the page where the authors list the weights (README)")
    file: str | None = Field(None, max_length=200, description="the checkpoint's file name in the release")
    hf_hub_id: str | None = Field(None, max_length=200, description="Hugging Face Hub id (timm's hub weights)")
    layout: str | None = Field(None, pattern=_NAME, max_length=100,
                               description="converter of this file when it differs from the release's layout")
    ema: bool = Field(False, description="the published metrics are of the file's EMA weights (convert --ema)")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="as stated by the publisher")
    dataset: str = Field("imagenet-1k", max_length=100, description="what the weights were trained on")
    metrics: dict[str, Float()] = Field(default_factory=dict, description="published figures, e.g. top1")
    eval: EvalSettings = EvalSettings()
    dense: list[str] = Field(default_factory=list, description="published downstream results of this backbone")


class Release(BaseModel):
    """The release a blueprint reproduces."""

    model_config = ConfigDict(extra="forbid")

    code: ReleaseCode
    layout: str = Field(pattern=_NAME, max_length=100, description="converter of the official state_dict")
    weights: list[Weights] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _unique_tags(self) -> "Release":
        tags = [w.tag for w in self.weights]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f"weights tags must be unique; repeated: {', '.join(dup)}")
        return self

    def layouts(self) -> list[str]:
        """Every layout the release's files come in, the release's own first."""
        return list(dict.fromkeys([self.layout, *(w.layout for w in self.weights if w.layout)]))

    def layout_of(self, weights: Weights) -> str:
        return weights.layout or self.layout
