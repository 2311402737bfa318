"""FLOP counts against hand-computed counts (a multiply-add is 2 FLOPs; bias, norms, softmax count 0)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spmkit.profile.flops import count_flops

from conftest import tiny_blueprint_files


class Attention(nn.Module):
    """Multi-head self-attention; ``fused`` uses scaled_dot_product_attention, else explicit matmuls."""

    def __init__(self, dim: int, heads: int, fused: bool, mask: bool = False) -> None:
        super().__init__()
        self.heads, self.fused, self.mask = heads, fused, mask
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = torch.zeros(n, n, device=x.device) if self.mask else None
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
            attn = (attn + bias if bias is not None else attn).softmax(-1)
            out = attn @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def attention_flops(b, n, c):
    return 2 * b * n * c * 3 * c + 2 * (2 * b * n * n * c) + 2 * b * n * c * c  # qkv, QK^T and AV, proj


def test_linear_matches_hand_count():
    r = count_flops(nn.Linear(32, 64), (2, 10, 32))
    assert r.total_flops == 2 * 2 * 10 * 32 * 64
    assert r.macs == 2 * 10 * 32 * 64


def test_conv_matches_hand_count():
    conv = nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1)
    r = count_flops(conv, (2, 3, 32, 32))
    assert r.total_flops == 2 * 2 * 16 * 16 * 16 * (3 * 3 * 3)  # B, H_out, W_out, C_out, C_in*k*k


def test_grouped_conv_forward_and_backward():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    fwd_dense, fwd_dw = 2 * 36 * 8 * 27, 2 * 36 * 8 * 9
    assert count_flops(net, (1, 3, 6, 6)).total_flops == fwd_dense + fwd_dw
    r = count_flops(net, (1, 3, 6, 6), backward=True)
    # backward: the dense conv needs only its weight gradient (the input needs none); the depthwise one
    # needs input and weight gradients, each as costly as its forward (torch alone counts 9x here)
    assert r.by_op["aten.convolution_backward"] == fwd_dense + 2 * fwd_dw


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("mask", [False, True])
def test_attention_block_fused_equals_explicit_and_hand_count(device, mask):
    b, n, c, h = 2, 49, 64, 4
    expected = attention_flops(b, n, c)
    for fused in (True, False):
        block = Attention(c, h, fused, mask).to(device)
        r = count_flops(block, (b, n, c))
        assert r.total_flops == expected, (fused, r.by_op)
        assert r.by_module["qkv"] == 2 * b * n * c * 3 * c
        assert r.by_module[""] == expected


def test_fused_cpu_kernel_is_counted_whichever_torch_dispatches():
    """Whatever fused kernel this torch picks on CPU, it is counted (torch 2.14's own table misses one)."""
    block = Attention(64, 4, fused=True)
    r = count_flops(block, (1, 16, 64))
    attn_ops = {k: v for k, v in r.by_op.items() if "attention" in k}
    assert sum(attn_ops.values()) == 4 * 16 * 16 * 64, r.by_op
    assert all("scaled_dot_product" in k or k.startswith("aten._") for k in attn_ops), attn_ops


@pytest.mark.parametrize("mask", [False, True])
def test_attention_backward_fused_equals_explicit(mask):
    """A training step's count does not depend on the kernel: fused backward = the explicit matmuls' backward."""
    counts = [count_flops(Attention(32, 2, fused, mask), (2, 9, 32), backward=True).total_flops
              for fused in (True, False)]
    b, n, c = 2, 9, 32
    qkv, proj = 2 * b * n * c * 3 * c, 2 * b * n * c * c
    attn = attention_flops(b, n, c) - qkv - proj
    # backward: qkv needs only its weight gradient (the input needs none), proj both, attention 2x forward
    assert counts[0] == counts[1] == attention_flops(b, n, c) + qkv + 2 * proj + 2 * attn


def test_every_registered_attention_kernel_has_a_formula():
    """Kernels are found among the registered ops, so a torch that adds or renames one is still counted."""
    from spmkit.profile.flops import CUSTOM_FLOP_FORMULAS

    names = {str(op) for op in CUSTOM_FLOP_FORMULAS}
    registered = {n.split("::")[1].split(".")[0] for n in torch._C._dispatch_get_all_op_names()
                  if n.startswith("aten::_scaled_dot_product_") and "attention" in n and "_math" not in n}
    assert registered and {f"aten.{n}" for n in registered} <= names


@pytest.mark.parametrize("path", tiny_blueprint_files(), ids=lambda p: p.stem)
def test_cpu_count_equals_meta_count_for_every_tiny_blueprint(path):
    """`spmkit profile` counts on the real device and `spmkit build` on meta: the two must agree, forward
    and backward, whichever attention kernel the CPU dispatches."""
    from spmkit import create_model

    torch.manual_seed(0)
    model = create_model(str(path))
    meta = create_model(str(path), device="meta")
    size = (1, 3, 64, 64)
    for backward in (False, True):
        cpu_r, meta_r = count_flops(model, size, backward=backward), count_flops(meta, size, backward=backward)
        assert cpu_r.total_flops == meta_r.total_flops, (backward, cpu_r.by_op, meta_r.by_op)
        assert cpu_r.by_module == meta_r.by_module


def test_spatial_reduction_attention_counts_kv_length():
    q = torch.randn(1, 2, 64, 16)
    kv = torch.randn(1, 2, 4, 16)

    class SRA(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, kv, kv)

    assert count_flops(SRA(), inputs=q).total_flops == 2 * (2 * 1 * 2 * 64 * 4 * 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_attention_on_cuda_counts_fused_kernel():
    b, n, c = 2, 49, 64
    for dtype in (torch.float32, torch.float16):
        block = Attention(c, 4, fused=True).cuda().to(dtype)
        r = count_flops(block, inputs=torch.randn(b, n, c, device="cuda", dtype=dtype))
        assert r.total_flops == attention_flops(b, n, c), r.by_op
