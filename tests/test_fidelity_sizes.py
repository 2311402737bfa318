"""Reproductions follow their reference at sizes the windows / strides do not divide: swin_t shifts then
pads as timm does, GLNet-STL floors odd sizes as its release's plain convs do (spmkit's defaults pad)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import spmkit
from spmkit import load_blueprint
from spmkit.convert import load_weights
from spmkit.merging.bn_conv import BNConvMerging
from spmkit.stems.patch_embed import PatchEmbed


def _swin(order: str, size: int) -> torch.nn.Module:
    ov = [f"img_size={size}"] + [f"stages.{i}.{f}={v}" for i, (d, h) in enumerate(zip((16, 32, 64, 128), (1, 1, 2, 2)))
                                 for f, v in (("dim", d), ("heads", h), ("depth", 2))]
    mix = (f"mixer=[{{type: window, shift_order: {order}, allow_padding: true}}, "
           f"{{type: window, shift: true, shift_order: {order}, allow_padding: true}}]")
    return spmkit.create_model("swin_t", overrides=[*ov, mix]).eval()


def test_swin_t_shifts_then_pads_like_timm() -> None:
    assert all(m.get("shift_order") == "shift_pad" for m in load_blueprint("swin_t").model_dump()["mixer"])
    size = 200  # stage maps 50, 25, 13, 7: windows of 7 do not divide the first three
    ref = timm.create_model("swin_tiny_patch4_window7_224", embed_dim=16, depths=(2, 2, 2, 2),
                            num_heads=(1, 1, 2, 2), img_size=size).eval()
    with torch.no_grad():
        for k, v in ref.state_dict().items():
            if k.endswith("relative_position_bias_table"):
                v.normal_()
    x = torch.randn(1, 3, size, size)
    diffs = {}
    for order in ("shift_pad", "pad_shift"):
        model = _swin(order, size)
        load_weights(model, ref.state_dict())
        with torch.no_grad():
            diffs[order] = (model(x) - ref(x)).abs().max().item()
    assert diffs["shift_pad"] < 1e-5 and diffs["pad_shift"] > 1e-4, diffs


@pytest.mark.parametrize("odd_size", ["pad", "floor"])
def test_odd_sizes_pad_or_floor(odd_size: str) -> None:
    stem = PatchEmbed(3, 8, torch.nn.LayerNorm, patch_size=4, odd_size=odd_size, norm=False)
    merge = BNConvMerging(8, 16, order="norm_proj", kernel_size=2, odd_size=odd_size).eval()
    x = torch.randn(1, 3, 225, 199)
    with torch.no_grad():
        y = stem(x)
        z = merge(y)
        if odd_size == "floor":  # the plain convs of the release: the last rows/columns that do not fill a stride are dropped
            assert y.shape[1:3] == (56, 49) and z.shape[1:3] == (28, 24)
            torch.testing.assert_close(y, stem.proj(x).permute(0, 2, 3, 1))
            ref = merge.proj(merge.norm(y.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        else:
            assert y.shape[1:3] == (57, 50) and z.shape[1:3] == (29, 25)
            ref = merge.proj(F.pad(merge.norm(y.permute(0, 3, 1, 2)), (0, 0, 0, 1))).permute(0, 2, 3, 1)
        torch.testing.assert_close(z, ref)


def test_reproductions_floor_as_released() -> None:
    for name in ("glnet_stl", "pvt_tiny", "pvt_small"):
        bp = load_blueprint(name).model_dump()
        assert bp["stem"]["odd_size"] == "floor" and bp["merging"]["odd_size"] == "floor", name
    # the ablation's baseline is PVT v1 itself (and the shipped merging sweep's conv variant): it floors too
    assert load_blueprint("pvt_tiny_conv").model_dump()["merging"]["odd_size"] == "floor"
    assert load_blueprint("swin_t_spm").model_dump()["stem"].get("odd_size", "pad") == "pad"
    model = spmkit.create_model("pvt_tiny", overrides=["img_size=64"]).eval()
    with torch.no_grad():
        feats = model.forward_intermediates(torch.randn(1, 3, 75, 67), intermediates_only=True)
    assert [tuple(f.shape[-2:]) for f in feats] == [(18, 16), (9, 8), (4, 4), (2, 2)]  # floor, as the release


def test_glnet_release_init() -> None:
    """GLNet's release keeps PyTorch's default init on its 1x1-conv MLPs (non-zero biases) and Xavier on
    nn.MultiheadAttention's in-projection; the token-format last stage of STL keeps trunc-normal Linears."""
    ov = ["img_size=64", *[f"stages.{i}.{f}={v}" for i, (d, h) in enumerate(zip((32, 64, 96, 128), (1, 2, 3, 4)))
                           for f, v in (("dim", d), ("heads", h), ("depth", 1))]]
    stl = spmkit.create_model("glnet_stl", overrides=ov)
    plain = spmkit.create_model("glnet_stl", overrides=[*ov, "block.release_init=false"])
    conv_mlp, token_mlp = stl.stages[0].blocks[0].mlp.fc1, stl.stages[3].blocks[0].mlp.fc1
    bound = 1 / conv_mlp.in_features ** 0.5  # nn.Conv2d / nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert conv_mlp.bias.abs().max() > 0 and conv_mlp.bias.abs().max() <= bound
    assert conv_mlp.weight.std() > 0.05  # U(-1/sqrt(32), 1/sqrt(32)): std 0.10, not trunc-normal(0.02)
    assert torch.count_nonzero(token_mlp.bias) == 0 and token_mlp.weight.std() < 0.025
    qkv = stl.stages[3].blocks[0].mixer.qkv
    xavier = (6 / (qkv.in_features + qkv.out_features)) ** 0.5
    assert torch.count_nonzero(qkv.bias) == 0 and qkv.weight.abs().max() <= xavier and qkv.weight.std() > 0.04
    assert torch.count_nonzero(plain.stages[0].blocks[0].mlp.fc1.bias) == 0  # spmkit's own init without it
