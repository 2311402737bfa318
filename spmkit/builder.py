"""The only code that reads a blueprint and calls the registries.

Components get the context arguments their constructors declare (docs/extending.md) plus the blueprint's
parameters. A constructor's ``ValueError`` becomes a ``BlueprintError`` entry at the component's dotted
path, so size-dependent constraints (heads, windows, merging channels) read like schema errors.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from spmkit.backbone import Backbone, Stage
from spmkit.blueprint.params import CONTEXT_ARGS, constructor_parameters
from spmkit.blueprint.schema import Blueprint, ComponentSpec, MixerSpec
from spmkit.errors import BlueprintError, FieldIssue
from spmkit.layers.drop import drop_path_rates
from spmkit.io.user_code import import_all
from spmkit.registry import ACTS, COMPONENT_REGISTRIES, load_components
from spmkit.sizing import SizeEstimate, check_estimate, estimate_model


class _Build:
    def __init__(self, bp: Blueprint, device: Any, dtype: Any) -> None:
        self.bp = bp
        self.factory = {"device": device, "dtype": dtype}
        self.issues: list[FieldIssue] = []

    def make(self, kind: str, spec: ComponentSpec | str, path: str, context: dict[str, Any],
             extras: dict[str, Any] | None = None) -> nn.Module | None:
        name = spec if isinstance(spec, str) else spec.type
        params = {} if isinstance(spec, str) else spec.params
        cls = COMPONENT_REGISTRIES[kind].get(name)
        sig = constructor_parameters(cls)
        kwargs = {k: v for k, v in {**context, **self.factory}.items() if k in sig}
        for k in [k for k, v in kwargs.items() if v is None and sig[k].default is not sig[k].empty]:
            if not _takes_none(cls, k):
                del kwargs[k]  # an unset context value (e.g. heads): the constructor's default applies
        for k, v in (extras or {}).items():
            if k in sig and k not in CONTEXT_ARGS[kind]:
                kwargs[k] = v
        kwargs.update(params)
        missing = [n for n, p in sig.items()
                   if p.default is p.empty and (n not in kwargs or (kwargs[n] is None and not _takes_none(cls, n)))]
        if missing:
            what = ", ".join(missing)
            hint = " (set `heads` on the stage or at the top level)" if "num_heads" in missing else ""
            self.issues.append(FieldIssue(path, f"{kind} {name!r} needs {what}{hint}"))
            return None
        try:
            return cls(**kwargs)
        except ValueError as err:  # the contract: constructors raise ValueError for user-facing constraints
            self.issues.append(FieldIssue(path, str(err)))
            return None

    def fail_if_issues(self) -> None:
        if self.issues:
            raise BlueprintError(self.bp.source or self.bp.name, self.issues)


@functools.cache
def _takes_none(cls: Any, name: str) -> bool:
    """Whether constructor argument ``name`` of ``cls`` is annotated to accept None (e.g. a block's mixer)."""
    import typing

    fn = cls.__init__ if isinstance(cls, type) else cls
    try:
        hint = typing.get_type_hints(fn).get(name)
    except Exception:  # unresolvable hints: let the constructor decide
        return True
    return hint is None or hint is type(None) or type(None) in typing.get_args(hint)


def _mixers(value: Any) -> list[MixerSpec]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def build_model(bp: Blueprint, *, device: Any = None, dtype: torch.dtype | None = None) -> Backbone:
    """Assemble a validated blueprint into a ``Backbone``; ``device="meta"`` allocates nothing. On any
    other device the model is first counted on ``meta`` and refused (``ResourceError``, with the estimate)
    when it would not fit in the device's memory."""
    load_components()
    import_all(bp.imports)  # a Blueprint made without load_blueprint (pickled, built in code): its components
    if torch.device(device if device is not None else "cpu").type != "meta":
        check_fits(bp, device, dtype)
    b = _Build(bp, device, dtype)
    norm_spec = bp.norm
    norm_layer = functools.partial(COMPONENT_REGISTRIES["norm"].get(norm_spec.type), **norm_spec.params)
    act_layer = ACTS.get(bp.act)
    img_size = bp.image_size
    dims = [s.dim for s in bp.stages]

    stem = b.make("stem", bp.stem, "stem", dict(
        in_chans=bp.in_chans, out_dim=dims[0], img_size=img_size, norm_layer=norm_layer, act_layer=act_layer))
    b.fail_if_issues()
    reduction = int(getattr(stem, "reduction"))
    feat = (math.ceil(img_size[0] / reduction), math.ceil(img_size[1] / reduction))

    dprs = drop_path_rates(bp.drop_path_rate, [s.depth for s in bp.stages])
    stages: list[Stage] = []
    feature_info: list[dict[str, Any]] = []
    for i, stage in enumerate(bp.stages):
        p = f"stages.{i}"
        downsample = None
        if i > 0:
            merging = bp.stage_value(i, "merging")
            mpath = f"{p}.merging" if "merging" in stage.model_fields_set else f"merging (in {p})"
            if merging is None:
                if stage.dim != dims[i - 1]:
                    b.issues.append(FieldIssue(f"{p}.dim", f"dim {stage.dim} differs from the previous stage's "
                                               f"{dims[i - 1]} but the stage has no merging layer"))
            else:
                downsample = b.make("merging", merging, mpath, dict(
                    in_dim=dims[i - 1], out_dim=stage.dim, feat_size=feat, norm_layer=norm_layer,
                    act_layer=act_layer))
                if downsample is None:
                    break
                s = int(getattr(downsample, "stride", 2))
                feat = (math.ceil(feat[0] / s), math.ceil(feat[1] / s))
                reduction *= s
        heads = bp.stage_value(i, "heads")
        mlp_ratio = bp.stage_value(i, "mlp_ratio")
        extras = bp.stage_extras(i)
        prefix = 1 if stage.cls_token else 0
        mixer_specs = _mixers(bp.stage_value(i, "mixer"))
        mixer_path = f"{p}.mixer" if "mixer" in stage.model_fields_set else f"mixer (in {p})"
        block_spec = bp.stage_value(i, "block")
        block_path = f"{p}.block" if "block" in stage.model_fields_set else f"block (in {p})"
        blocks: list[nn.Module] = []
        for j in range(stage.depth):
            mixer = None
            mspec = None
            if mixer_specs:
                k = j % len(mixer_specs)
                mspec = mixer_specs[k]
                mp = mixer_path
                if isinstance(bp.stage_value(i, "mixer"), list):
                    mp = mixer_path.replace("mixer", f"mixer.{k}", 1)
                cls = COMPONENT_REGISTRIES["mixer"].get(mspec.type)
                if prefix and not getattr(cls, "supports_prefix_tokens", False):
                    b.issues.append(FieldIssue(f"{p}.cls_token", f"mixer {mspec.type!r} does not support class tokens"))
                    continue
                mixer = b.make("mixer", mspec, mp, dict(
                    dim=stage.dim, num_heads=heads, feat_size=feat, num_prefix_tokens=prefix,
                    norm_layer=norm_layer, act_layer=act_layer), extras)
                if mixer is None:
                    break  # one report per stage is enough
            bspec: ComponentSpec | str = block_spec
            if mspec is not None and mspec.block and mspec.block != block_spec.type:
                bspec = mspec.block
            block = b.make("block", bspec, block_path, dict(
                dim=stage.dim, num_heads=heads, mlp_ratio=mlp_ratio, drop_path=dprs[i][j], mixer=mixer,
                feat_size=feat, norm_layer=norm_layer, act_layer=act_layer), extras)
            if block is None:
                break
            blocks.append(block)
        pos_spec = bp.stage_value(i, "pos_embed")
        pos = None
        if pos_spec is not None:
            ppath = f"{p}.pos_embed" if "pos_embed" in stage.model_fields_set else f"pos_embed (in {p})"
            pos = b.make("pos_embed", pos_spec, ppath, dict(dim=stage.dim, feat_size=feat, num_prefix_tokens=prefix))
        norm = norm_layer(stage.dim, **b.factory) if bp.stage_norm else None
        stages.append(Stage(downsample, pos, blocks, norm, dim=stage.dim, cls_token=bool(prefix), **b.factory))
        feature_info.append(dict(num_chs=stage.dim, reduction=reduction, module=f"stages.{i}"))
    b.fail_if_issues()

    final_norm = norm_layer(dims[-1], **b.factory) if bp.final_norm else None
    head = b.make("head", bp.head, "head", dict(in_dim=dims[-1]))
    b.fail_if_issues()
    return Backbone(bp, stem, stages, final_norm, head, feature_info)


def estimate(bp: Blueprint, dtype: torch.dtype | None = None) -> SizeEstimate:
    """Parameters and buffers of ``bp`` (exact, from a ``meta`` build) and one image's activations
    (estimated): see ``spmkit.sizing``."""
    return estimate_model(build_model(bp, device="meta", dtype=dtype), bp, dtype)


def check_fits(bp: Blueprint, device: Any = None, dtype: torch.dtype | None = None, *, batch: int = 1,
               input_size: tuple[int, int] | None = None) -> SizeEstimate | None:
    """Raise ``spmkit.sizing.ResourceError`` (with the estimate) when ``bp`` cannot be built and run on
    ``device`` for ``batch`` images of ``input_size`` (default: one image at the blueprint's ``img_size``)."""
    return check_estimate(bp, lambda: estimate(bp, dtype), device, batch=batch, input_size=input_size)
