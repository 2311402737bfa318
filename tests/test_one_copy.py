"""Pieces that exist once: the device check, the SPM layers' defaults, converter rule tables, the skip counter."""

from __future__ import annotations

import inspect

import pytest
import torch
from typer.testing import CliRunner

from spmkit.cli.app import app

runner = CliRunner()


def test_profile_and_build_use_the_training_device_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from spmkit.profile.errors import ProfileError
    from spmkit.profile.steps import check_device

    res = runner.invoke(app, ["profile", "tiny_pvt", "--device", "tpu", "--json"])
    assert res.exit_code == 2 and "choose auto, cpu, cuda or cuda:N" in res.output
    assert check_device("cpu") == torch.device("cpu") and check_device("auto").type in ("cpu", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ProfileError, match=r"2 visible GPUs \(cuda:0 to cuda:1\)"):
        check_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    res = runner.invoke(app, ["build", "tiny_pvt", "--device", "cuda", "--json"])
    assert res.exit_code == 2 and "no CUDA GPU is visible" in res.output and "CUDA_VISIBLE_DEVICES" in res.output


def test_spm_layers_take_their_defaults_from_one_place() -> None:
    from spmkit.layers import gle, msa
    from spmkit.merging.gle_only import GLEOnlyMerging
    from spmkit.merging.msa_only import MSAOnlyMerging
    from spmkit.merging.spm import StepwisePatchMerging

    expected = {"kernel_sizes": msa.MSA_KERNEL_SIZES, "expand_ratio": msa.MSA_EXPAND_RATIO,
                "gle_heads": gle.GLE_HEADS, "num_heads": gle.GLE_HEADS, "guide_kernel": gle.GLE_GUIDE_KERNEL,
                "window": gle.GLE_WINDOW}
    assert (msa.MSA_KERNEL_SIZES, msa.MSA_EXPAND_RATIO) == ((3, 5, 7, 9), 2)  # the paper's
    assert (gle.GLE_HEADS, gle.GLE_GUIDE_KERNEL, gle.GLE_WINDOW) == (8, 7, 2)
    for cls in (msa.MultiScaleAggregation, gle.GuidedLocalEnhancement, gle.GuideAttention, StepwisePatchMerging,
                GLEOnlyMerging, MSAOnlyMerging):
        params = inspect.signature(cls).parameters
        shared = {k: params[k].default for k in expected if k in params}
        assert shared and shared == {k: expected[k] for k in shared}, cls.__name__


def test_single_table_converters_declare_their_table() -> None:
    from spmkit.convert.layouts.groupmixformer import RULES as GMF
    from spmkit.convert.layouts.pvt_v1 import PVT_V1_RULES
    from spmkit.convert.layouts.pvt_v2 import RULES as PVT2
    from spmkit.convert.layouts.swin import SWIN_RULES
    from spmkit.registry import CONVERTERS

    for name, table in (("pvt_v1", PVT_V1_RULES), ("pvt_v2", PVT2), ("groupmixformer", GMF), ("swin", SWIN_RULES)):
        conv = CONVERTERS.get(name)()
        assert conv.rules({}) is table and "rules" not in type(conv).__dict__
    out = CONVERTERS.get("pvt_v1")().convert({"patch_embed1.proj.weight": torch.zeros(1), "block2.0.x": torch.ones(1)})
    assert sorted(out) == ["stages.1.blocks.0.x", "stem.proj.weight"]


class _Ctx:
    device = torch.device("cpu")

    def __init__(self, world: int) -> None:
        self.world = world

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        t.mul_(self.world)  # every process skipped as many
        return t


def test_every_task_counts_skipped_items_the_same_way() -> None:
    from spmkit.tasks.dense.common import leave_out_collate
    from spmkit.tasks.skip_count import SkipCount

    count = SkipCount()
    count.add((torch.zeros(2), torch.zeros(2), torch.tensor(3)))  # classification's tensor
    count.add(([], [], 2))  # a dense batch with no readable item
    count.add(([1], [2]))  # no count
    assert count.end_of_epoch(_Ctx(2)) == {"train_skipped": 10.0}
    assert count.end_of_epoch(_Ctx(2)) == {"train_skipped": 0.0}  # reset
    collate = leave_out_collate(lambda items: tuple(zip(*items)))
    images, targets, skipped = collate([(None, None, 1), ("a", "b", 0)])
    assert (images, targets, int(skipped)) == (("a",), ("b",), 1)
    assert collate([(None, None, 1)])[:2] == ([], [])
