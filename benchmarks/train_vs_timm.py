"""Training-step throughput: spmkit's engine step against timm's own training step, in one run.

Three contenders train on the same random batch with the same recipe parts (AdamW, weight decay 0.05,
mixup + CutMix, soft-target cross-entropy, warm-up cosine schedule stepped per update):

- ``timm``:        timm's model and timm's ``train.py`` step (its ``create_optimizer_v2`` groups, a plain
                   forward / loss / backward / ``optimizer.step`` / ``step_update``);
- ``engine+timm``: the same timm model through spmkit's ``TrainStep`` (what ``spmkit train`` runs), so the
                   ratio isolates the engine's overhead;
- ``spmkit``:      the spmkit blueprint of the same architecture through ``TrainStep``.

Rounds interleave the contenders (A B C A B C ...) so that machine noise hits them alike; the report gives
the median seconds per step and images/s, and ratios against ``timm`` (> 1 = faster than timm).

    PYTHONPATH=. python benchmarks/train_vs_timm.py --blueprint pvt_v2_b0 --timm pvt_v2_b0 --img-size 112
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blueprint", default="pvt_v2_b0")
    p.add_argument("--timm", default="pvt_v2_b0")
    p.add_argument("--img-size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-classes", type=int, default=100)
    p.add_argument("--steps", type=int, default=3, help="steps per contender per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "none"])
    args = p.parse_args()

    import timm
    import torch
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2

    import spmkit
    from spmkit.train.distributed import DistContext
    from spmkit.train.optim import create_optimizer, create_scheduler
    from spmkit.train.step import TrainStep
    from spmkit.tasks.base import autocast_for
    from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask

    dev = torch.device(args.device)
    torch.manual_seed(0)
    recipe = ClassificationRecipe(epochs=10, batch_size=args.batch_size, amp=args.amp, img_size=args.img_size,
                                  lr=1e-3, warmup_epochs=1)
    info = {"num_classes": args.num_classes, "classes": [str(i) for i in range(args.num_classes)]}
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=dev)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=dev)
    skipped = torch.zeros(args.batch_size, dtype=torch.long, device=dev)
    ctx = DistContext(device=dev)

    def timm_model():
        try:
            return timm.create_model(args.timm, num_classes=args.num_classes, img_size=args.img_size)
        except TypeError:  # models without a fixed input size (pvt_v2) take no img_size
            return timm.create_model(args.timm, num_classes=args.num_classes)

    def timm_contender():
        model = timm_model().to(dev).train()
        opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
        sched, _ = create_scheduler_v2(opt, "cosine", num_epochs=10, warmup_epochs=1, step_on_epochs=False,
                                       updates_per_epoch=100)
        mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=args.num_classes)
        loss_fn = SoftTargetCrossEntropy()
        n = [0]

        def step() -> None:
            xi, yi = mixup(x, y)
            with autocast_for(args.amp, dev):
                loss = loss_fn(model(xi).float(), yi)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n[0] += 1
            sched.step_update(num_updates=n[0])

        return step, model

    def engine_contender(model):
        model = model.to(dev).train()
        task = ClassificationTask(recipe)
        task.setup_training(model, info)
        opt = create_optimizer(model, recipe, 1e-3)
        sched = create_scheduler(opt, recipe, updates_per_epoch=100)
        scaler = torch.amp.GradScaler(dev.type, enabled=False)
        ts = TrainStep(task, model, model, opt, sched, scaler, None, recipe, ctx)
        return (lambda: ts((x, y, skipped), at_update=True)), model

    timm_step, _ = timm_contender()
    engine_timm_step, _ = engine_contender(timm_model())
    spm_model = spmkit.create_model(args.blueprint, num_classes=args.num_classes, img_size=args.img_size)
    spmkit_step, _ = engine_contender(spm_model)
    contenders = {"timm": timm_step, "engine+timm": engine_timm_step, "spmkit": spmkit_step}

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for fn in contenders.values():  # warm-up
        fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            sync()
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, torch threads "
                   f"{torch.get_num_threads()}, device {dev}",
        "blueprint": args.blueprint, "timm_model": args.timm, "img_size": args.img_size,
        "batch_size": args.batch_size, "amp": args.amp, "rounds": args.rounds, "steps_per_round": args.steps,
        "seconds_per_step": med,
        "images_per_s": {k: args.batch_size / v for k, v in med.items()},
        "speed_vs_timm": {k: med["timm"] / v for k, v in med.items()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
