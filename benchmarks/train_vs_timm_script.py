"""Whole training runs: timm's own ``train.py`` against ``spmkit train --blueprint timm:NAME``.

Both train the same timm model on the same ImageNet-layout folder with the same recipe; runs alternate
(timm, spmkit, spmkit, timm, ...: neither always runs first) so that machine noise hits both alike, and
the best of ``--rounds`` is reported (with more than two rounds also the median ratio): whole-run wall time (process start to exit, start-up included), CPU time of the process tree,
training epoch time and images/s, and the ratios spmkit / timm (time: < 1 = spmkit faster; img/s: > 1 =
spmkit faster), with both runs' final top-1.

timm's ``train.py`` is not in timm's wheel: pass its path (``--timm-train``, from a checkout of timm's
repository). It stops on today's Pillow with ``rand-m9-mstd0.5-inc1`` (posterize with 0 bits raises), so
it is run through ``benchmarks/timm_train_patched.py``, which gives it spmkit's posterize fix (a black
image, as older Pillow gave) and then runs the script unchanged; the report says so.

The recipe is given once and mapped to both (see :func:`timm_command` / :func:`spmkit_command`):

    recipe            timm train.py                     spmkit train
    model             --model NAME                      --blueprint timm:NAME
    img size          --img-size                        --set img_size=
    classes           --num-classes (class folders)     (class folders)
    epochs, batch     --epochs, -b                      --epochs, --batch-size
    workers           -j                                --workers
    optimizer         --opt adamw --weight-decay        --set opt= weight_decay=
    lr                --lr (absolute)                   --lr (absolute)
    schedule          --sched cosine --sched-on-updates --set sched= (stepped per update, as spmkit does)
                      --warmup-epochs --warmup-lr       --set warmup_epochs= warmup_lr= min_lr=
                      --min-lr
    label smoothing   --smoothing                       --set smoothing=
    mixup / CutMix    --mixup --cutmix                  --set mixup= cutmix=
    random erasing    --reprob --remode pixel           --set reprob= remode=pixel
    RandAugment       --aa                              --set auto_augment=   ('none' for none)
    colour jitter     --color-jitter                    --set color_jitter=
    train interp.     --train-interpolation             --set train_interpolation=
    crop_pct          --crop-pct (if given)             --set crop_pct= (if given)
    amp               --amp --amp-dtype (unless none)   --amp
    device            --device                          --device
    input pipeline    prefetcher (timm's default)       --set prefetch=on  (--prefetch off: --no-prefetcher
                                                        / prefetch=off)
    evaluation        every epoch                       eval_every_epochs=1
    logging           --log-interval 50                 --set log_every_steps=50
    checkpoints       checkpoint-N.pth + last + best    last.pt + best.pt (--checkpoint-hist 1 keeps timm
                                                        to one epoch file)
    seed              --seed                            --seed

Differences left: timm's train.py writes ``summary.csv`` and its checkpoints, spmkit its run folder
(metrics.jsonl/csv, steps.jsonl, TensorBoard events, train.log, checksummed last.pt / best.pt). timm's epoch
time is its mean update time x updates (from its last ``Train:`` line of each epoch); spmkit's is
``epoch_time_s`` of metrics.jsonl.

    python benchmarks/train_vs_timm_script.py --timm-train ~/timm/train.py --data /data/imgs32 \\
        --model pvt_v2_b0 --img-size 32 --epochs 10 --batch-size 64 --workers 1 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = ROOT / "benchmarks" / "timm_train_patched.py"
_TRAIN_LINE = re.compile(r"Train: (\d+) \[\s*(\d+)/(\d+).*?\((\d+\.\d+)s,\s+([\d.]+)/s\)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timm-train", required=True, type=Path, help="path to timm's train.py")
    p.add_argument("--data", required=True, type=Path, help="ImageNet-layout folder with train/ and val/")
    p.add_argument("--work", type=Path, default=Path("train_vs_timm_runs"), help="folder for the runs' outputs")
    p.add_argument("--model", default="pvt_v2_b0", help="timm model name")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2, help="timm / spmkit pairs; the best of each is reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--lr", type=float, default=None, help="absolute lr (default 5e-4 x batch / 512, spmkit's)")
    p.add_argument("--opt", default="adamw")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--sched", default="cosine")
    p.add_argument("--warmup-epochs", type=float, default=0)
    p.add_argument("--warmup-lr", type=float, default=1e-6)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--mixup", type=float, default=0.8)
    p.add_argument("--cutmix", type=float, default=1.0)
    p.add_argument("--reprob", type=float, default=0.25)
    p.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="RandAugment / AutoAugment policy; 'none'")
    p.add_argument("--color-jitter", type=float, default=0.4)
    p.add_argument("--train-interpolation", default="bicubic")
    p.add_argument("--crop-pct", type=float, default=None)
    p.add_argument("--prefetch", default="on", choices=["on", "off"],
                   help="device-side input pipeline in both (timm's prefetcher / spmkit's prefetch)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--python", default=sys.executable, help="interpreter for both runs")
    p.add_argument("--spmkit", default=None, help="spmkit command (default: PYTHON -m spmkit)")
    p.add_argument("--dry-run", action="store_true", help="print the two commands and exit")
    args = p.parse_args(argv)
    if args.lr is None:
        args.lr = 5e-4 * args.batch_size / 512
    return args


def num_classes(data: Path) -> int:
    train = data / "train"
    return sum(1 for d in train.iterdir() if d.is_dir()) if train.is_dir() else 0


def timm_command(args: argparse.Namespace, out: Path) -> list[str]:
    """timm's train.py (through the posterize wrapper) with the recipe's flags."""
    cmd = [args.python, str(WRAPPER), str(args.timm_train), str(args.data), "--train-split", "train",
           "--val-split", "val", "--model", args.model, "--img-size", str(args.img_size),
           "--num-classes", str(num_classes(args.data)), "--epochs", str(args.epochs), "-b", str(args.batch_size),
           "-j", str(args.workers), "--device", args.device, "--opt", args.opt, "--lr", repr(args.lr),
           "--weight-decay", repr(args.weight_decay), "--sched", args.sched, "--sched-on-updates",
           "--warmup-epochs", repr(args.warmup_epochs), "--warmup-lr", repr(args.warmup_lr),
           "--min-lr", repr(args.min_lr), "--smoothing", repr(args.smoothing), "--mixup", repr(args.mixup),
           "--cutmix", repr(args.cutmix), "--reprob", repr(args.reprob), "--remode", "pixel",
           "--color-jitter", repr(args.color_jitter), "--train-interpolation", args.train_interpolation,
           "--seed", str(args.seed), "--log-interval", "50", "--checkpoint-hist", "1",
           "--output", str(out), "--experiment", "run"]
    if args.aa and args.aa != "none":
        cmd += ["--aa", args.aa]
    if args.crop_pct is not None:
        cmd += ["--crop-pct", repr(args.crop_pct)]
    if args.amp != "none":
        cmd += ["--amp", "--amp-dtype", "bfloat16" if args.amp == "bf16" else "float16"]
    if args.prefetch == "off":
        cmd.append("--no-prefetcher")
    return cmd


def spmkit_command(args: argparse.Namespace, out: Path) -> list[str]:
    """``spmkit train --blueprint timm:NAME`` with the same recipe."""
    base = args.spmkit.split() if args.spmkit else [args.python, "-m", "spmkit"]
    sets = {"img_size": args.img_size, "opt": args.opt, "weight_decay": args.weight_decay, "sched": args.sched,
            "warmup_epochs": args.warmup_epochs, "warmup_lr": args.warmup_lr, "min_lr": args.min_lr,
            "smoothing": args.smoothing, "mixup": args.mixup, "cutmix": args.cutmix, "reprob": args.reprob,
            "remode": "pixel", "auto_augment": args.aa if args.aa and args.aa != "none" else "null",
            "color_jitter": args.color_jitter, "train_interpolation": args.train_interpolation,
            "prefetch": args.prefetch, "eval_every_epochs": 1, "log_every_steps": 50}
    if args.crop_pct is not None:
        sets["crop_pct"] = args.crop_pct
    cmd = [*base, "train", "--blueprint", f"timm:{args.model}", "--data", str(args.data), "--output", str(out),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--workers", str(args.workers),
           "--lr", repr(args.lr), "--seed", str(args.seed), "--amp", args.amp, "--device", args.device]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


@dataclass
class Result:
    wall_s: float
    cpu_s: float
    epoch_s: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    top1: float | None = None


def _run(cmd: list[str], log: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)
                             + os.pathsep + os.environ.get("PYTHONPATH", "")})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        sys.exit(f"{cmd[0]} ... exited {rc}; see {log}:\n" + log.read_text()[-3000:])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timm_result(out: Path, log: Path, wall: float, cpu: float, batch_size: int) -> Result:
    r = Result(wall, cpu)
    last: dict[int, tuple[int, float, float]] = {}
    for m in _TRAIN_LINE.finditer(log.read_text(errors="replace")):
        last[int(m.group(1))] = (int(m.group(3)), float(m.group(4)), float(m.group(5)))
    for _, (updates, avg_s, rate) in sorted(last.items()):
        r.epoch_s.append(updates * avg_s)
        r.images_per_s.append(rate)
    summary = out / "run" / "summary.csv"
    if summary.exists():
        rows = list(csv.DictReader(summary.open()))
        if rows:
            r.top1 = float(rows[-1]["eval_top1"])
    return r


def spmkit_result(out: Path, wall: float, cpu: float) -> Result:
    r = Result(wall, cpu)
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    r.epoch_s = [row["epoch_time_s"] for row in rows]
    r.images_per_s = [row["images_per_s"] for row in rows]
    r.top1 = rows[-1].get("top1") if rows else None
    return r


def _best(results: list[Result]) -> Result:
    return min(results, key=lambda r: r.wall_s)


def _fmt(r: Result) -> str:
    ep = min(r.epoch_s) if r.epoch_s else float("nan")
    ips = max(r.images_per_s) if r.images_per_s else float("nan")
    top1 = f"{r.top1:.2f}" if r.top1 is not None else "-"
    return f"whole run {r.wall_s:8.1f} s   cpu {r.cpu_s:8.1f} s   best epoch {ep:7.2f} s   {ips:8.1f} img/s   top-1 {top1}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = args.work
    if args.dry_run:
        print("timm:  ", " ".join(timm_command(args, work / "timm_0")))
        print("spmkit:", " ".join(spmkit_command(args, work / "spmkit_0")))
        return
    if not args.timm_train.is_file():
        sys.exit(f"--timm-train {args.timm_train}: no such file (timm's train.py from timm's repository)")
    work.mkdir(parents=True, exist_ok=True)
    print("timm's train.py runs through benchmarks/timm_train_patched.py: timm's posterize is replaced by "
          "spmkit's (0 bits kept -> a black image instead of Pillow's ValueError), as spmkit's pipeline does.")
    timm_runs: list[Result] = []
    sp_runs: list[Result] = []
    for i in range(args.rounds):
        for name in ("timm", "spmkit") if i % 2 == 0 else ("spmkit", "timm"):  # ABBA: neither always goes first
            out = work / f"{name}_{i}"
            shutil.rmtree(out, ignore_errors=True)
            log = work / f"{name}_{i}.log"
            cmd = timm_command(args, out) if name == "timm" else spmkit_command(args, out)
            wall, cpu = _run(cmd, log)
            if name == "timm":
                timm_runs.append(timm_result(out, log, wall, cpu, args.batch_size))
            else:
                sp_runs.append(spmkit_result(out, wall, cpu))
            print(f"round {i + 1} {name:6s} {_fmt((timm_runs if name == 'timm' else sp_runs)[-1])}", flush=True)
    a, b = _best(timm_runs), _best(sp_runs)
    print(f"\nbest of {args.rounds}: {args.model} at {args.img_size} px, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.workers} workers, device {args.device}")
    print(f"  timm   {_fmt(a)}")
    print(f"  spmkit {_fmt(b)}")
    ratio = lambda x, y: x / y if y else float("nan")  # noqa: E731
    print(f"  spmkit / timm: whole run {ratio(b.wall_s, a.wall_s):.3f}x (< 1: spmkit faster), "
          f"cpu {ratio(b.cpu_s, a.cpu_s):.3f}x, "
          f"epoch {ratio(min(b.epoch_s, default=0), min(a.epoch_s, default=0)):.3f}x, "
          f"img/s {ratio(max(b.images_per_s, default=0), max(a.images_per_s, default=0)):.3f}x (> 1: spmkit faster)")
    if args.rounds > 2:
        import statistics

        med = ratio(statistics.median(r.wall_s for r in sp_runs), statistics.median(r.wall_s for r in timm_runs))
        print(f"  median of {args.rounds}: whole run {med:.3f}x")


if __name__ == "__main__":
    main()
