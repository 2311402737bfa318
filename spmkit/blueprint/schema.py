"""The blueprint schema (pydantic v2). Structure and types only; component parameters are checked against
the registered components' constructors by ``spmkit.blueprint.params`` and constraints by the builder.

Rules (docs/blueprints.md): per-stage settings *replace* the top-level defaults wholesale; only extras
(keys that are not fields, e.g. ``sr_ratio``) merge key by key and go to the mixers/blocks that take them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, SerializerFunctionWrapHandler, field_validator,
                      model_serializer, model_validator)

from spmkit.blueprint.release import Release
from spmkit.io.value_types import Float, Int

#: size bounds of a blueprint: far above any published backbone, low enough that building one on the meta
#: device (to count its parameters before allocating them) stays fast
MAX_STAGES = 16
MAX_STAGE_DEPTH = 128
MAX_BLOCKS = 256
MAX_DIM = 65536
MAX_HEADS = 4096
MAX_MLP_RATIO = 64
MAX_IMG_SIZE = 4096
MAX_IN_CHANS = 1024


class ComponentSpec(BaseModel):
    """``{type: NAME, **params}``: a registered component and its parameters."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="registered component name")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StemSpec(ComponentSpec):
    pass


class MergingSpec(ComponentSpec):
    pass


class BlockSpec(ComponentSpec):
    pass


class MixerSpec(ComponentSpec):
    block: str | None = Field(None, description="block type for blocks using this mixer (default: the stage's)")


class PosEmbedSpec(ComponentSpec):
    pass


class HeadSpec(ComponentSpec):
    type: str = "classifier"


class NormSpec(ComponentSpec):
    type: str = "layernorm"


MixerField = MixerSpec | list[MixerSpec] | None


class StageSpec(BaseModel):
    """One stage. Unset fields take the blueprint's top-level default; extra keys are mixer/block args."""

    model_config = ConfigDict(extra="allow")

    depth: Int(le=MAX_STAGE_DEPTH) = Field(ge=1, description="number of blocks")
    dim: Int(le=MAX_DIM) = Field(ge=1, description="channels of the stage")
    heads: Int(le=MAX_HEADS) | None = Field(None, ge=1, description="attention heads (default: top-level heads)")
    mlp_ratio: Float(le=MAX_MLP_RATIO) | None = Field(None, gt=0)
    mixer: MixerField = Field(None, description="mixer spec, or a list cycling over the blocks; null: MLP-only")
    block: BlockSpec | None = None
    merging: MergingSpec | None = Field(None, description="layer entering this stage; null: none")
    pos_embed: PosEmbedSpec | None = None
    cls_token: bool = Field(False, description="prepend a class token in this stage")

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_serializer(mode="wrap")
    def _omit_inherited(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Unset fields inherit the top-level default, an explicit null means "none": dump only what the
        stage set, so ``load_blueprint(bp.model_dump())`` gives the same model."""
        data = handler(self)
        for name in INHERITED_STAGE_FIELDS:
            if name not in self.model_fields_set:
                data.pop(name, None)
        return data


INHERITED_STAGE_FIELDS = ("heads", "mlp_ratio", "mixer", "block", "merging", "pos_embed")
#: fields that describe a blueprint and do not change the model it builds
METADATA_FIELDS = ("name", "description", "reference", "release")
#: metadata that belongs to the file writing it: ``extends`` does not pass it on to a child
OWN_FIELDS = ("reference", "release")


class Blueprint(BaseModel):
    """A whole backbone. Top-level ``mixer``/``block``/``merging``/``pos_embed``/``heads``/``mlp_ratio`` and
    extras are defaults for every stage."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=200)
    imports: list[str] = Field(default_factory=list, max_length=64, description=(
        "the user's .py files (relative to the blueprint file) or module names, imported before validation "
        "so that the components they register can be named"))
    description: str = ""
    img_size: Int(ge=1, le=MAX_IMG_SIZE) | tuple[Int(ge=1, le=MAX_IMG_SIZE), Int(ge=1, le=MAX_IMG_SIZE)] = Field(
        224, description="declared input size; constraints are checked at it")
    in_chans: Int(le=MAX_IN_CHANS) = Field(3, ge=1)
    stem: StemSpec
    stages: list[StageSpec] = Field(min_length=1, max_length=MAX_STAGES)
    mixer: MixerField = Field(description="default mixer of every stage (null: MLP-only blocks)")
    block: BlockSpec = BlockSpec(type="transformer")
    merging: MergingSpec | None = Field(None, description="default merging entering stages 2..n")
    pos_embed: PosEmbedSpec | None = None
    heads: Int(le=MAX_HEADS) | None = Field(None, ge=1)
    mlp_ratio: Float(le=MAX_MLP_RATIO) = Field(4.0, gt=0)
    norm: NormSpec = NormSpec(type="layernorm")
    act: str = "gelu"
    conv_init: Literal["default", "fan_out"] = Field(
        "default", description="fan_out: N(0, sqrt(2/fan_out)) for every conv (PVT v2)"
    )
    drop_path_rate: Float() = Field(0.0, ge=0.0, lt=1.0, description="linear over all blocks, 0 at the first")
    final_norm: bool = Field(True, description="norm after the last stage")
    stage_norm: bool = Field(False, description="norm at the end of every stage (PVT v2)")
    head: HeadSpec = HeadSpec()
    out_indices: list[Int(ge=-MAX_STAGES, le=MAX_STAGES)] | None = Field(
        None, description="stages returned as features (default: all)")
    reference: dict[str, Any] = Field(default_factory=dict, description="metadata: official params, timm name, ...; "
                                      "the file's own figures (not passed on by extends)")
    release: Release | None = Field(None, description="the official code, checkpoint layout and published weights "
                                                      "this blueprint reproduces (not passed on by extends)")

    _source: str | None = PrivateAttr(None)

    @field_validator("img_size")
    @classmethod
    def _positive_size(cls, v: int | tuple[int, int]) -> int | tuple[int, int]:
        sizes = (v, v) if isinstance(v, int) else v
        if min(sizes) < 1:
            raise ValueError("img_size must be positive")
        return v

    @model_validator(mode="after")
    def _bounded_blocks(self) -> "Blueprint":
        total = sum(s.depth for s in self.stages)
        if total > MAX_BLOCKS:
            raise ValueError(f"the stages have {total} blocks in all; at most {MAX_BLOCKS} are supported")
        return self

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.img_size, self.img_size) if isinstance(self.img_size, int) else tuple(self.img_size)

    @property
    def source(self) -> str | None:
        return self._source

    def stage_value(self, i: int, field: str) -> Any:
        """A stage's setting: its own if it set the field (even to null), else the top-level default."""
        stage = self.stages[i]
        if field in stage.model_fields_set:
            return getattr(stage, field)
        return getattr(self, field)

    def stage_extras(self, i: int) -> dict[str, Any]:
        return {**self.extras, **self.stages[i].extras}
