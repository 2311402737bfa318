"""A tiny generated ImageNet-layout folder for the training / evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_imagefolder(root: Path, classes: int = 3, train_per_class: int = 8, val_per_class: int = 4,
                     size: int = 32, seed: int = 0) -> Path:
    """Class ``c`` images are noisy with a bright horizontal band at a class-specific height (learnable)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"class_{c:02d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
                band = (c * size) // classes
                img[band : band + max(2, size // (2 * classes)), :, c % 3] = 250
                ext = ".png" if i % 2 else ".jpg"
                Image.fromarray(img).save(d / f"img_{i:03d}{ext}")
    return root


#: model and recipe settings that keep a training test at a few seconds on one CPU core
TEST_MODEL = "tiny_pvt"
FAST = ["--workers", "0", "--set", "img_size=32", "--set", "warmup_epochs=1", "--set", "log_every_steps=1"]


def train_args(data: Path, out: Path, epochs: int = 2, batch_size: int = 4, *extra: str) -> list[str]:
    return ["train", "--blueprint", TEST_MODEL, "--data", str(data), "--output", str(out), "--epochs", str(epochs),
            "--batch-size", str(batch_size), *FAST, *extra]


