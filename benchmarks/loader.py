"""Input pipeline per CPU core: images per second per data-loader worker, spmkit's loader beside timm's.

    PYTHONPATH=. python benchmarks/loader.py --folder /data/imagenet --workers 1 --batches 50 --write

Three pipelines on the ``train`` split: ``decode`` (read + decode to RGB, nothing else), ``crop_flip``
(decode + RandomResizedCrop + horizontal flip, uint8 tensors) and ``imagenet`` (the full recipe of
``spmkit train``: RandAugment rand-m9-mstd0.5-inc1, colour jitter, random erasing 0.25, normalisation;
mixup/CutMix run on the batch, not in the workers). Sources: the folder itself (spmkit's
``ImageFolderDataset`` and timm's ``create_dataset`` + ``create_loader``) and webdataset shards of it
(spmkit's streamed ``ShardDataset``; ``--shards DIR``, or packed into a temporary folder when not given).
Without ``--folder`` a folder of ``--images`` random JPEGs of ``--size`` px is generated (a smoke run; real
photos decode slower). Each cell: images / seconds / workers after ``--warmup`` batches. Every cell is
measured ``--repeats`` times round-robin and the best is kept. On a shared or loaded machine these
numbers are noise; the machine line of the output says what it was.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.docsection import machine, write_section  # noqa: E402

PIPELINES = ("decode", "crop_flip", "imagenet")


def _fake_folder(root: Path, images: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(images):
        d = root / "train" / f"c{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        # smooth noise compresses like a photo more than white noise does
        small = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(d / f"{i:05d}.jpg", quality=90)
    for c in range(10):
        (root / "val" / f"c{c}").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size)).save(root / "val" / "c0" / "x.jpg")
    return root


class _DecodeOnly:
    """Decoded image -> a 1-element tensor (its pixel count): decoding is all the work."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return torch.tensor([img.size[0] * img.size[1]])


def _transform(name: str, size: int):
    from timm.data import create_transform
    from torchvision import transforms as T

    if name == "decode":
        return _DecodeOnly()
    if name == "crop_flip":
        return T.Compose([T.RandomResizedCrop(size, antialias=True), T.RandomHorizontalFlip(), T.PILToTensor()])
    from spmkit.data.posterize import patch_posterize

    return patch_posterize(create_transform(size, is_training=True, auto_augment="rand-m9-mstd0.5-inc1",
                                            color_jitter=0.4, re_prob=0.25, re_mode="pixel",
                                            interpolation="bicubic"))


def _spmkit_loader(source: str, pipeline: str, size: int, batch: int, workers: int):
    from spmkit.data.sampling import loader_sampler, process_sampler
    from spmkit.data.sources import open_source
    from spmkit.train.worker_errors import SafeLoader

    src = open_source(source)
    ds = src.dataset("train", src.classes("train"), _transform(pipeline, size), "substitute")
    sampler = process_sampler(ds, shuffle=True, seed=0, pad=True, batch_size=batch)
    return SafeLoader(ds, batch_size=batch, sampler=loader_sampler(sampler), num_workers=workers,
                      collate_fn=lambda items: (torch.stack([i[0] for i in items]), len(items)), drop_last=True,
                      persistent_workers=False)


def _timm_loader(folder: str, pipeline: str, size: int, batch: int, workers: int):
    from timm.data import create_dataset, create_loader

    ds = create_dataset("", root=str(Path(folder) / "train"), split="train", is_training=True)
    loader = create_loader(ds, input_size=(3, size, size), batch_size=batch, is_training=True,
                           use_prefetcher=False, num_workers=workers, auto_augment="rand-m9-mstd0.5-inc1",
                           color_jitter=0.4, re_prob=0.25, re_mode="pixel", interpolation="bicubic",
                           persistent_workers=False)
    if pipeline != "imagenet":  # the same transform as spmkit's cell
        loader.dataset.transform = _transform(pipeline, size)
    else:  # timm's own transform, with the posterize fix spmkit's has (0 bits raises on today's Pillow)
        from spmkit.data.posterize import patch_posterize

        loader.dataset.transform = patch_posterize(loader.dataset.transform)
    return loader


def _measure(loader, batches: int, warmup: int, workers: int) -> float:
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            break
        n += b[0].shape[0]
    dt = time.perf_counter() - t0
    del it
    return n / dt / max(workers, 1)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", help="ImageNet-layout folder (default: generated JPEGs)")
    p.add_argument("--shards", help="webdataset shards of the folder (default: packed into a temporary folder)")
    p.add_argument("--images", type=int, default=400)
    p.add_argument("--size", type=int, default=320, help="generated image side (px)")
    p.add_argument("--img-size", type=int, default=224, help="crop size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="loader workers (0: in the main process)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--pipelines", default=",".join(PIPELINES))
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory(prefix="spmkit-loader-")
    folder = args.folder or str(_fake_folder(Path(tmp.name) / "folder", args.images, args.size))
    shards = args.shards
    if shards is None:
        from spmkit.data.pack import pack

        shards = str(pack(folder, Path(tmp.name) / "shards", shard_size=max(args.images // 8, 1)).output)
    cells = []
    for pipeline in args.pipelines.split(","):
        cells += [("spmkit folder", pipeline, lambda pl=pipeline: _spmkit_loader(folder, pl, args.img_size,
                                                                                 args.batch_size, args.workers)),
                  ("spmkit shards", pipeline, lambda pl=pipeline: _spmkit_loader(shards, pl, args.img_size,
                                                                                 args.batch_size, args.workers)),
                  ("timm folder", pipeline, lambda pl=pipeline: _timm_loader(folder, pl, args.img_size,
                                                                             args.batch_size, args.workers))]
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.repeats):
        for loader_name, pipeline, make in cells:
            rate = _measure(make(), args.batches, args.warmup, args.workers)
            best[(loader_name, pipeline)] = max(best.get((loader_name, pipeline), 0.0), rate)
    command = "PYTHONPATH=. python benchmarks/loader.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    result = {"machine": machine(), "command": command, "workers": args.workers,
              "img_per_s_per_worker": {f"{k[0]} / {k[1]}": round(v, 1) for k, v in best.items()}}
    loaders = ["spmkit folder", "spmkit shards", "timm folder"]
    pipelines = args.pipelines.split(",")
    lines = ["| loader | " + " | ".join(pipelines) + " |", "|---|" + "---:|" * len(pipelines)]
    for name in loaders:
        lines.append(f"| {name} | " + " | ".join(f"{best[(name, pl)]:.0f}" for pl in pipelines) + " |")
    table = "\n".join(lines)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"img/s per worker ({args.workers} worker(s), crop {args.img_size}); {result['machine']}")
        print(table)
    if args.write:
        body = (f"Images per second per data-loader worker, train split, crop {args.img_size} px, "
                f"{args.workers} worker(s), batch {args.batch_size}. `decode`: read + decode only; "
                f"`crop_flip`: + RandomResizedCrop + flip; `imagenet`: the full `spmkit train` recipe "
                f"(RandAugment, colour jitter, random erasing, normalisation).\n\n{table}\n\n"
                f"Machine: {result['machine']}.\n\n```\n{command}\n```\n")
        write_section("loader", "Input pipeline per core (benchmarks/loader.py)", body)
    tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
