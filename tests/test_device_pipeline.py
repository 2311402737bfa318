"""The device-side input pipeline (``prefetch``): uint8 batches normalised, erased and mixed on the device."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from spmkit.tasks.base import ModelSpec
from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask
from spmkit.tasks.classification.device_pipeline import DeviceErasing, normalize_uint8, use_device_pipeline


def _folder(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def _task(**kw) -> tuple[ClassificationTask, torch.nn.Module, dict]:
    task = ClassificationTask(ClassificationRecipe(img_size=32, **kw))
    info = {"num_classes": 2, "classes": ["a", "b"]}
    return task, task.build_model(ModelSpec("timm:resnet10t"), info), info


def test_auto_is_on_for_cuda_only() -> None:
    assert use_device_pipeline("auto", torch.device("cuda", 0))
    assert not use_device_pipeline("auto", torch.device("cpu"))
    assert use_device_pipeline("on", torch.device("cpu")) and not use_device_pipeline("off", torch.device("cuda"))


def test_device_batch_equals_host_batch(tmp_path: Path) -> None:
    """Same decoded images (the evaluation transform, no random ops): the uint8 batch normalised on the
    device equals the host pipeline's float batch."""
    data = _folder(tmp_path)
    host, model, info = _task(prefetch="off")
    dev, _, _ = _task(prefetch="on")
    hb = host.to_device(default_collate([host.build_dataset(data, "val", model, info)[i] for i in range(4)]),
                        torch.device("cpu"))
    raw = default_collate([dev.build_dataset(data, "val", model, info)[i] for i in range(4)])
    assert raw[0].dtype == torch.uint8 and raw[0].shape == hb[0].shape  # the host stops at uint8
    db = dev.to_device(raw, torch.device("cpu"))
    assert db[0].dtype == torch.float32
    torch.testing.assert_close(db[0], hb[0], atol=1e-5, rtol=0)
    assert torch.equal(db[1], hb[1]) and torch.equal(db[2], hb[2])
    assert db[0].abs().max() > 0.5  # not a trivially small / zero batch


def test_normalize_uint8_channels_last() -> None:
    x = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    y = normalize_uint8(x, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), channels_last=True)
    assert y.is_contiguous(memory_format=torch.channels_last)
    ref = (x.float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)


def test_device_erasing_statistics() -> None:
    """Probability 0.25: about a quarter of the images get one erased rectangle of normal noise; the rest
    are untouched."""
    random.seed(0)
    torch.manual_seed(0)
    x = torch.zeros(400, 3, 16, 16)
    y = DeviceErasing(0.25, "pixel", 1, x.device)(x.clone())
    changed = (y != 0).flatten(1).any(1)
    assert 0.17 < changed.float().mean() < 0.33
    erased = y[changed]
    frac = (erased != 0).flatten(1).float().mean(1)
    assert (frac >= 0.02 - 1e-6).all() and (frac <= 0.4).all()  # timm: 2%-33% of the area (rounded to whole rows / columns)
    assert abs(float(erased[erased != 0].std()) - 1.0) < 0.1  # pixel mode: standard normal noise


def test_training_batch_erased_and_mixed_on_device(tmp_path: Path) -> None:
    """The training path: uint8 from the workers' transform, then erasing and mixup in training_loss."""
    data = _folder(tmp_path)
    task, model, info = _task(prefetch="on", reprob=1.0, mixup=0.8, cutmix=0.0, auto_augment=None)
    ds = task.build_dataset(data, "train", model, info)
    task.setup_training(model, info)
    assert task._erasing is not None
    batch = task.to_device(default_collate([ds[i] for i in range(6)]), torch.device("cpu"))
    before = batch[0].clone()
    seen: dict = {}
    model.forward = lambda x: _record(seen, x)
    loss, _ = task.training_loss(model, batch)
    assert torch.isfinite(loss)
    x = seen["x"]
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert not torch.allclose(x, before)  # erased (probability 1) and mixed
    erased_noise = (x - before).abs().flatten(1).amax(1)
    assert (erased_noise > 0).all()


def _record(seen: dict, x: torch.Tensor) -> torch.Tensor:
    seen["x"] = x.clone()
    return x.flatten(1)[:, :2] * 0 + x.mean()


def test_prefetch_words_survive_yaml() -> None:
    """``--set prefetch=on`` reaches the recipe as YAML's boolean ``True``."""
    assert ClassificationRecipe(prefetch=True).prefetch == "on"
    assert ClassificationRecipe(prefetch=False).prefetch == "off"
    assert ClassificationRecipe().prefetch == "auto"
    with pytest.raises(ValueError):
        ClassificationRecipe(prefetch="sometimes")
