"""Real-data check of the training engine: Fashion-MNIST (Debian's ``dataset-fashion-mnist``) on CPU.

Exports the package's IDX files to the ImageNet folder layout (PNG files, decoded by PIL like any
ImageNet image), trains a tiny blueprint with ``spmkit.train.trainer.train`` and evaluates the best
checkpoint with ``spmkit.infer.evaluate.evaluate``. Prints one JSON object: top-1, top-5, training
images/s, evaluation images/s, wall time and the exact settings.

    apt-get install -y dataset-fashion-mnist
    PYTHONPATH=. python benchmarks/fashion_mnist.py --epochs 3 --out /tmp/fmnist

The recipe is the builtin ``cpu_small`` (no mixup / CutMix / RandAugment / erasing, short warm-up: a
28x28 grey dataset and a few epochs), with ``--lr`` absolute.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def export(out: Path, per_class: int | None) -> Path:
    """Write ``out/{train,val}/<class>/<n>.png`` (val = the 10k test set); skipped when already there."""
    from PIL import Image

    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} is missing: apt-get install -y dataset-fashion-mnist")
    for split, prefix in (("train", "train"), ("val", "t10k")):
        done = out / split / ".complete"
        if done.exists() and done.read_text() == str(per_class):
            continue
        images = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz")
        counts = [0] * len(CLASSES)
        for c in CLASSES:
            (out / split / c).mkdir(parents=True, exist_ok=True)
        for i, (img, lab) in enumerate(zip(images, labels)):
            if split == "train" and per_class is not None and counts[lab] >= per_class:
                continue
            counts[lab] += 1
            Image.fromarray(img, mode="L").save(out / split / CLASSES[lab] / f"{i:05d}.png", compress_level=1)
        done.write_text(str(per_class))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("/tmp/spmkit-fashion-mnist"))
    p.add_argument("--blueprint", default="tiny_pvt")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--train-per-class", type=int, default=None, help="limit the export (6000 = all)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe KEY=VALUE")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import spmkit.tasks  # noqa: F401
    from spmkit.infer.evaluate import evaluate
    from spmkit.train.trainer import TrainConfig, train
    from spmkit.tasks.base import ModelSpec

    t0 = time.perf_counter()
    data = export(args.out / f"data-{args.train_per_class or 'all'}", args.train_per_class)
    t_export = time.perf_counter() - t0
    run = args.out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [
        f"epochs={args.epochs}", f"batch_size={args.batch_size}", f"lr={args.lr}", f"img_size={args.img_size}",
        f"workers={args.workers}", "log_every_steps=50", *args.overrides,
    ]
    t1 = time.perf_counter()
    rows = train(TrainConfig(model=ModelSpec(args.blueprint), data=data, output=run, recipe_file="cpu_small",
                             overrides=overrides, device="cpu"))
    t_train = time.perf_counter() - t1
    ev = evaluate(data=data, checkpoint=run / "best.pt", device="cpu", workers=args.workers)
    result = {
        "blueprint": args.blueprint, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "img_size": args.img_size, "train_images": sum(1 for _ in (data / "train").rglob("*.png")),
        "val_images": ev["images"], "top1": ev["top1"], "top5": ev["top5"],
        "train_images_per_s": sum(r["images_per_s"] * r["epoch_time_s"] for r in rows) / sum(r["epoch_time_s"] for r in rows),
        "eval_images_per_s": ev["images_per_s"], "train_wall_s": t_train, "export_s": t_export,
        "per_epoch_top1": [r.get("top1") for r in rows], "torch_threads": torch.get_num_threads(),
        "recipe": "cpu_small", "overrides": overrides, "run": str(run),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
