"""Do the dense tasks learn? A tiny detector and a tiny segmenter trained on generated shapes, on CPU.

Generates the shapes data sets in the exact COCO and ADE20K layouts (``spmkit.data.synthetic_dense``),
evaluates each freshly initialised model, trains it with ``spmkit.train.trainer.train`` (the code path of
``spmkit train``) and evaluates the last checkpoint with ``spmkit.infer.evaluate.evaluate`` (the code path of
``spmkit eval``). Prints one JSON object: box / mask AP and mIoU / pixel accuracy before and after, wall
times and every setting.

    PYTHONPATH=. python benchmarks/dense.py --out /tmp/dense_bench     # both: ~5 min idle, ~20 min busy
    PYTHONPATH=. python benchmarks/dense.py --only segmentation --seg-iters 100

The recipes are the tasks' defaults with what a from-scratch toy run needs changed (and printed): 96 px
images, a higher lr than the fine-tuning recipes' 1e-4 / 2e-4, smaller heads, fewer RPN proposals, and
segmentation crops that hold whole shapes (a shape's class is its outline).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run_task(task: str, blueprint: str, data: Path, out: Path, overrides: list[str]) -> dict:
    import torch

    from spmkit.infer.evaluate import evaluate
    from spmkit.train.trainer import TrainConfig, train
    from spmkit.tasks.base import ModelSpec

    torch.manual_seed(0)
    t0 = time.perf_counter()
    before = evaluate(data=data, model=ModelSpec(blueprint), task=task, overrides=overrides, device="cpu")
    t1 = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    rows = train(TrainConfig(model=ModelSpec(blueprint), data=data, output=out, task=task, overrides=overrides,
                             device="cpu"))
    t2 = time.perf_counter()
    after = evaluate(data=data, checkpoint=out / "last.pt", device="cpu")
    keys = (["bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50"] if task == "detection"
            else ["mIoU", "pixel_acc", "mAcc"])
    return {
        "blueprint": blueprint,
        "overrides": overrides,
        "before": {k: round(before[k], 2) for k in keys if k in before},
        "after": {k: round(after[k], 2) for k in keys if k in after},
        "steps": rows[-1]["step"],
        "first_epoch_loss": round(rows[0]["train_loss"], 4),
        "last_epoch_loss": round(rows[-1]["train_loss"], 4),
        "train_images_per_s": round(sum(r["images_per_s"] for r in rows) / len(rows), 2),
        "train_seconds": round(t2 - t1, 1),
        "eval_seconds_before": round(t1 - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/spmkit_dense_bench"))
    ap.add_argument("--only", choices=["detection", "segmentation"], default=None)
    ap.add_argument("--det-blueprint", default="tiny_pvt_v2")
    ap.add_argument("--seg-blueprint", default="tiny_swin")
    ap.add_argument("--size", type=int, default=96, help="generated image side (pixels)")
    ap.add_argument("--det-n-train", type=int, default=64, help="generated COCO-layout training images")
    ap.add_argument("--seg-n-train", type=int, default=256, help="generated ADE20K-layout training images")
    ap.add_argument("--n-val", type=int, default=16)
    ap.add_argument("--max-shapes", type=int, default=2)
    ap.add_argument("--radius", type=float, nargs=2, default=(0.18, 0.32), help="shape radii, fractions of --size")
    ap.add_argument("--det-epochs", type=int, default=24)
    ap.add_argument("--seg-iters", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy host)")
    args = ap.parse_args()

    import torch

    from spmkit.data.synthetic_dense import make_shapes_ade20k, make_shapes_coco

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": f"CPU, torch {torch.__version__}, {args.threads} threads (shared host)",
                    "data": {"size": args.size, "n_val": args.n_val,
                             "max_shapes": args.max_shapes, "radius": list(args.radius)}}
    shape_args = dict(n_val=args.n_val, size=args.size, seed=0, max_shapes=args.max_shapes,
                      radius=tuple(args.radius))
    s = args.size
    if args.only in (None, "detection"):
        coco = make_shapes_coco(args.out / "coco", n_train=args.det_n_train, **shape_args)
        det = ["batch_size=4", "workers=0", f"epochs={args.det_epochs}", "lr=1e-3", "warmup_iters=20",
               f"decay_milestones=[{args.det_epochs * 2 // 3},{args.det_epochs * 11 // 12}]",
               f"min_size={s}", f"max_size={s}", "fpn_channels=64", "box_head_dim=256", "mask_head_dim=64",
               "detector_kwargs={rpn_pre_nms_top_n_train: 300, rpn_post_nms_top_n_train: 150, "
               "box_batch_size_per_image: 128}"]
        result["detection"] = run_task("detection", args.det_blueprint, coco, args.out / "det_run", det)
        result["detection"]["n_train"] = args.det_n_train
        print(json.dumps({"detection": result["detection"]}), flush=True)
    if args.only in (None, "segmentation"):
        ade = make_shapes_ade20k(args.out / "ade", n_train=args.seg_n_train, **shape_args).parent
        seg = ["batch_size=8", "workers=0", f"iters={args.seg_iters}", "epochs=4", "lr=1e-3",
               f"scale=[{2 * s},{s}]", "ratio_range=[0.75,1.25]", f"crop_size=[{s},{s}]", "fpn_channels=64", "head_channels=64"]
        result["segmentation"] = run_task("segmentation", args.seg_blueprint, ade, args.out / "seg_run", seg)
        result["segmentation"]["n_train"] = args.seg_n_train
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
