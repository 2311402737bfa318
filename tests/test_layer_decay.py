"""Issue 19: the ``layer_decay`` recipe field (timm's layer-wise lr decay over the Backbone's group_matcher)."""

from __future__ import annotations

import re

import pytest
from timm.optim import param_groups_layer_decay

import spmkit
from spmkit.train.layer_decay import layer_decay_scales
from spmkit.train.optim import create_optimizer
from spmkit.tasks.recipe import RecipeError, TrainRecipe


def _depth(name: str) -> tuple[int, int]:
    """(stage, block) order of a parameter: stem first, the final norm and head last."""
    if name.startswith("stem."):
        return (-1, 0)
    m = re.match(r"stages\.(\d+)\.(?:blocks\.(\d+)|downsample)", name)
    if m:
        return (int(m.group(1)), int(m.group(2)) + 1 if m.group(2) is not None else 0)
    return (99, 0)


def test_layer_decay_groups_are_monotone_with_depth() -> None:
    model = spmkit.create_model("tiny_swin")
    ld = layer_decay_scales(model, 0.75)
    # tiny_swin (blocks 2+2+1+1), as timm groups it: the stem, 6 blocks (a stage's downsample shares its
    # first block's group, the final norm the last block's), the head
    assert ld.num_groups == 1 + 6 + 1
    names = sorted(ld.scales, key=_depth)
    scales = [ld.scales[n] for n in names]
    assert scales == sorted(scales), "lr scales must not decrease with depth"
    assert ld.scales["head.fc.weight"] == 1.0 and ld.scales["norm.weight"] == 0.75
    stem = ld.scales["stem.proj.weight"]
    assert stem == min(scales) and stem == pytest.approx(0.75 ** (ld.num_groups - 1))
    assert ld.scales["stages.0.blocks.0.attn.qkv.weight"] == pytest.approx(0.75 ** (ld.num_groups - 2))


def test_layer_decay_matches_timm_param_groups() -> None:
    model = spmkit.create_model("tiny_pvt")
    ld = layer_decay_scales(model, 0.6)
    ref = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.6)
    timm_scale = {}
    for g in ref:
        for p in g["params"]:
            timm_scale[id(p)] = g["lr_scale"]
    for name, p in model.named_parameters():
        assert ld.scales[name] == pytest.approx(timm_scale[id(p)]), name


def test_optimizer_groups_carry_the_layer_scales() -> None:
    model = spmkit.create_model("tiny_pvt")
    opt = create_optimizer(model, TrainRecipe(layer_decay=0.5), lr=1e-3)
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    ld = layer_decay_scales(model, 0.5)
    assert scales == sorted(set(ld.scales.values())) and scales[-1] == 1.0 and len(scales) == ld.num_groups
    assert {g["lr_scale"] for g in create_optimizer(model, TrainRecipe(), lr=1e-3).param_groups} == {1.0}


def test_layer_decay_range_and_model_without_groups() -> None:
    with pytest.raises(Exception):
        TrainRecipe(layer_decay=1.5)
    from torch import nn

    with pytest.raises(RecipeError, match="group_matcher"):
        layer_decay_scales(nn.Linear(2, 2), 0.75)
