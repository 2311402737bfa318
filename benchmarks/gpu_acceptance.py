"""GPU acceptance run: one command that checks a CUDA machine end to end and compares against timm.

    PYTHONPATH=. python benchmarks/gpu_acceptance.py                       # one CUDA GPU, < 8 minutes
    PYTHONPATH=. python benchmarks/gpu_acceptance.py --device cpu --smoke  # the same steps on CPU, ~1 minute

Steps, in this order (each one is recorded; a failing step does not stop the others):

1. ``sdpa``: every token mixer that calls ``scaled_dot_product_attention`` (captured from the blueprints of
   every family, forward and backward, float32 and bf16 autocast) runs a fused kernel: the kernel torch
   picks by default is not the math fallback (torch.profiler operator names), and the mixer also runs
   under ``torch.nn.attention.sdpa_kernel([FLASH_ATTENTION, EFFICIENT_ATTENTION])``, which raises when
   neither applies. Every registered mixer must be covered, or reported as not using SDPA.
2. ``collective``: a world-size-1 process group (NCCL on CUDA, gloo on CPU) initialises and all-reduces.
3. ``train`` / ``eval``: ``spmkit train --gpus 1`` (CPU: ``--devices cpu``) for one short epoch on a
   generated ImageNet-layout folder, then ``spmkit eval`` of its ``last.pt``.
4. ``profile``: swin_t, pvt_v2_b1 and pvt_tiny_spm against their references through ``spmkit.profile``
   (latency at batch 1, throughput, training step and peak memory at ``--batch-size``) in modes fp32,
   bf16 autocast, bf16 + channels-last and bf16 + torch.compile (inference only unless
   ``--compile-train``: compiling six backward graphs does not fit the time budget). The references:
   ``timm:swin_tiny_patch4_window7_224`` and ``timm:pvt_v2_b1`` (same architectures, equal parameter
   counts); pvt_tiny_spm has no timm twin (timm has no PVT v1), so it is compared with
   ``timm:pvt_v2_b1`` (the closest timm model, a context ratio) and with spmkit's ``pvt_tiny`` (the cost
   of SPM over PVT's conv merging).
5. ``loader``: can the input pipeline keep the device busy? ``spmkit train`` of pvt_tiny at 224 px, batch
   128, for a fixed number of steps (``--loader-steps`` timed after ``--loader-warmup``) on a generated
   folder of 224 px JPEGs, with the folder loader, the shard loader (the folder packed by ``spmkit data
   pack``'s packer) and the DALI loader (``loader=dali``; skipped with the reason when DALI is not
   installed), each with every ``--loader-workers`` count (DALI: CPU threads): img/s per GPU, beside the
   model-only ceiling (the same training step on a synthetic batch already on the device). Not limited by
   ``--budget-s``.

With ``--smoke`` the models are the tiny blueprints and small timm models of the same families at 64 px,
with few repeats; compiling is skipped (inductor on a CPU takes minutes), and what needs CUDA (allocator
peaks) is recorded as skipped with the reason. Writes ``gpu_acceptance.json`` and ``gpu_acceptance.md``
(ratios ours / reference: below 1 is better for times and memory, above 1 for throughput) into
``--out``; exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from spmkit.train.hooks import Hook  # noqa: E402

SWIN_REF = "timm:swin_tiny_patch4_window7_224"
PVT2_REF = "timm:pvt_v2_b1"
# (ours, reference) by entry key; full size on the GPU, tiny blueprints in the smoke run
PAIRS = [("swin_t", "swin_ref"), ("pvt_v2_b1", "pvt2_ref"), ("pvt_tiny_spm", "pvt2_ref"), ("pvt_tiny_spm", "pvt_tiny")]
FULL = {"swin_t": ("swin_t", None), "pvt_v2_b1": ("pvt_v2_b1", None), "pvt_tiny_spm": ("pvt_tiny_spm", None),
        "pvt_tiny": ("pvt_tiny", None), "swin_ref": (SWIN_REF, {}), "pvt2_ref": (PVT2_REF, {})}
SMOKE = {"swin_t": ("tiny_swin", None), "pvt_v2_b1": ("tiny_pvt_v2", None), "pvt_tiny_spm": ("tiny_pvt_spm", None),
         "pvt_tiny": ("tiny_pvt", None),
         "swin_ref": (SWIN_REF, dict(img_size=64, embed_dim=16, depths=(2, 2, 1, 1), num_heads=(1, 2, 4, 4),
                                     window_size=4, mlp_ratio=2, num_classes=10)),
         "pvt2_ref": (PVT2_REF, dict(embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                                     sr_ratios=(4, 2, 1, 1), mlp_ratios=(2, 2, 2, 2), num_classes=10))}
# one blueprint per family: together they use every registered mixer
SDPA_FULL = ["swin_t", "pvt_v2_b1", "pvt_tiny_spm", "lit_ti", "glnet_stl", "groupmixformer_t"]
SDPA_SMOKE = ["tiny_swin", "tiny_pvt_v2", "tiny_pvt_spm", "tiny_lit", "tiny_glnet", "tiny_groupmixformer"]
# compiled mode profiles pair by pair (pvt_tiny_spm / timm pvt_v2_b1 then compares entries of two runs)
COMPILE_GROUPS = [["swin_t", "swin_ref"], ["pvt_v2_b1", "pvt2_ref"], ["pvt_tiny_spm", "pvt_tiny"]]
MODES = {  # name -> (amp, channels_last, compile)
    "fp32": (None, False, False), "bf16": ("bf16", False, False),
    "bf16_channels_last": ("bf16", True, False), "bf16_compiled": ("bf16", False, True)}


class Run:
    """Collects results, skips and failures of the steps; keeps the time budget."""

    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget_s = time.perf_counter(), budget_s
        self.data: dict[str, Any] = {"skipped": [], "failures": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def skip(self, step: str, reason: str) -> None:
        self.data["skipped"].append({"step": step, "reason": reason})
        print(f"[acceptance] skip {step}: {reason}", file=sys.stderr)

    def fail(self, step: str, why: str) -> None:
        self.data["failures"].append({"step": step, "error": why})
        print(f"[acceptance] FAIL {step}: {why}", file=sys.stderr)

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"[acceptance] {name} (at {self.elapsed():.0f}s)", file=sys.stderr)
        t = time.perf_counter()
        try:
            out = fn()
        except Exception as exc:  # recorded; the other steps still run
            self.fail(name, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
            out = None
        self.data.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
        return out


# ---------------------------------------------------------------------------------------------- sdpa
def _sdpa_kernels(events) -> list[str]:
    """Attention kernels among profiler op names: flash, efficient, cudnn, flash_cpu, math."""
    found = set()
    for name in events:
        if "scaled_dot_product" not in name and "_attention" not in name:
            continue
        if "math" in name:
            found.add("math")
        elif "flash_attention_for_cpu" in name:
            found.add("flash_cpu")
        elif "flash" in name:
            found.add("flash")
        elif "efficient" in name:
            found.add("efficient")
        elif "cudnn" in name:
            found.add("cudnn")
    return sorted(found)


def _capture_mixer_calls(model: torch.nn.Module, x: torch.Tensor, per_kind: bool
                         ) -> list[tuple[str, str, torch.nn.Module, tuple, dict]]:
    """One call (module, args, kwargs) per distinct mixer module and input shape of ``model`` (``per_kind``:
    only the first module of each registered mixer kind), from a forward pass."""
    from spmkit.registry import MIXERS

    kinds = {cls: name for name, cls in MIXERS.items()}
    calls, seen, handles = [], set(), []
    for qual, mod in model.named_modules():
        name = kinds.get(type(mod))
        if name is None:
            continue

        def hook(m, args, kwargs, _out, qual=qual, name=name):
            key = name if per_kind else (name, repr(m), tuple(tuple(a.shape) if torch.is_tensor(a) else a for a in args))
            if key not in seen:
                seen.add(key)
                calls.append((name, qual, m, args, kwargs))

        handles.append(mod.register_forward_hook(hook, with_kwargs=True))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return calls


def sdpa_check(blueprints: list[str], device: torch.device, per_kind: bool = False) -> dict:
    """Kernels of every SDPA-using mixer call (see the module docstring). Enforced on CUDA only: on a CPU
    the fused kernel (``flash_attention_for_cpu``) has no attention-mask gradient, so mixers with a
    learned bias (window, global with ``rel_pos_bias``) train through the math kernel there; the rows
    are reported, and ``ok`` covers only that every registered mixer was seen."""
    import spmkit
    from spmkit.registry import MIXERS

    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # capability, not version: older torch has only torch.backends.cuda.sdp_kernel
        SDPBackend = sdpa_kernel = None
    from torch.profiler import ProfilerActivity, profile

    rows, uses = [], {}
    enforce = device.type == "cuda"
    for bp in blueprints:
        model = spmkit.create_model(bp).to(device).train()
        x = torch.randn(2, 3, *model.img_size, device=device)
        for mixer, qual, mod, args, kwargs in _capture_mixer_calls(model, x, per_kind):
            for precision in ("fp32", "bf16"):
                inputs = [a.detach().clone().requires_grad_(a.is_floating_point()) if torch.is_tensor(a) else a
                          for a in args]

                def call() -> None:
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                        out = mod(*inputs, **kwargs)
                    out.float().sum().backward()

                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    call()
                kernels = _sdpa_kernels(ev.name for ev in prof.events())
                row = {"blueprint": bp, "mixer": mixer, "module": qual, "precision": precision,
                       "default_kernels": kernels}
                if not kernels:
                    row.update(uses_sdpa=False, ok=True)
                    uses.setdefault(mixer, False)
                    rows.append(row)
                    continue
                uses[mixer] = True
                row["uses_sdpa"] = True
                problems = ["default dispatch ran the math fallback"] if "math" in kernels else []
                if sdpa_kernel is None:
                    row["fused_only"] = "not checked: torch.nn.attention.sdpa_kernel is missing in this torch"
                else:
                    try:
                        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
                            call()
                        row["fused_only"] = "ok"
                    except RuntimeError as exc:
                        row["fused_only"] = (str(exc).strip().splitlines() or ["RuntimeError"])[0][:300]
                        problems.append("no flash or memory-efficient kernel applies")
                row.update(ok=not problems if enforce else None, problems=problems)
                rows.append(row)
        del model
    uncovered = sorted(set(MIXERS.names()) - set(uses))
    return {"checks": rows, "mixers_using_sdpa": sorted(k for k, v in uses.items() if v),
            "mixers_without_sdpa": sorted(k for k, v in uses.items() if not v), "uncovered_mixers": uncovered,
            "enforced": enforce, "ok": all(r["ok"] is not False for r in rows) and not uncovered}


# ---------------------------------------------------------------------------------------- collective
def collective_check(device: torch.device) -> dict:
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_available() or (backend == "nccl" and not dist.is_nccl_available()):
        raise RuntimeError(f"torch.distributed with {backend} is not available in this torch build")
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(backend, init_method=f"file://{tmp}/store", rank=0, world_size=1)
        try:
            t = torch.arange(4, dtype=torch.float32, device=device)
            dist.all_reduce(t)
            ok = torch.equal(t.cpu(), torch.arange(4, dtype=torch.float32))
        finally:
            dist.destroy_process_group()
    out = {"backend": backend, "world_size": 1, "ok": bool(ok)}
    if backend == "nccl":
        out["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version())) \
            if isinstance(torch.cuda.nccl.version(), tuple) else str(torch.cuda.nccl.version())
    return out


# ----------------------------------------------------------------------------------------- train/eval
def make_imagenet_folder(root: Path, classes: int, train_per_class: int, val_per_class: int, size: int) -> Path:
    """ImageNet layout (train/<class>/*.jpg, val/<class>/*.jpg): noise with a class-specific bright band."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
                band = (c * size) // classes
                img[band: band + max(2, size // (2 * classes)), :, c % 3] = 250
                Image.fromarray(img).save(d / f"img_{i:04d}.jpg")
    return root


def _spmkit(args: list[str], env: dict, timeout: float, in_process: bool) -> tuple[int, str, str, float]:
    """``spmkit ARGS`` in a fresh process, or (``in_process``, the smoke run: no second torch import) through
    the same Typer app in this one."""
    t = time.perf_counter()
    if not in_process:
        proc = subprocess.run([sys.executable, "-m", "spmkit", *args], env=env, capture_output=True, text=True,
                              timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t
    import contextlib
    import io

    from spmkit.cli.app import app

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = app(args, standalone_mode=False, prog_name="spmkit")
            rc = rc if isinstance(rc, int) else 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t


def train_and_eval(run: Run, work: Path, smoke: bool, device: torch.device) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("LOCAL_RANK", None)
    if smoke:
        data = make_imagenet_folder(work / "data", classes=3, train_per_class=8, val_per_class=4, size=32)
        model, place = "tiny_pvt_spm", ["--devices", "cpu"]
        extra = ["--batch-size", "4", "--workers", "0", "--set", "img_size=32"]
        env.setdefault("OMP_NUM_THREADS", "1")
    else:
        data = make_imagenet_folder(work / "data", classes=10, train_per_class=64, val_per_class=16, size=160)
        model, place = "pvt_tiny_spm", ["--gpus", "1"]
        extra = ["--batch-size", "64", "--workers", "8"]
    out = work / "run"
    args = ["train", "--blueprint", model, "--data", str(data), "--output", str(out), "--epochs", "1", *place,
            *extra, "--set", "warmup_epochs=0", "--set", "log_every_steps=1"]
    rc, stdout, stderr, secs = _spmkit(args, env, timeout=300, in_process=smoke)
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    run.data["train"] = {"command": "spmkit " + " ".join(args), "in_process": smoke, "returncode": rc,
                         "seconds": round(secs, 1),
                         "metrics": rows[-1] if rows else None}
    if rc != 0 or not rows:
        raise RuntimeError(f"spmkit train exited {rc}: {(stderr or stdout).strip().splitlines()[-1:]}")
    eval_args = ["eval", "--checkpoint", str(out / "last.pt"), "--data", str(data), "--json",
                 "--devices", device.type, "--workers", "0" if smoke else "8"]
    rc, stdout, stderr, secs = _spmkit(eval_args, env, timeout=300, in_process=smoke)
    metrics = json.loads(stdout.strip().splitlines()[-1]) if rc == 0 and stdout.strip() else None
    run.data["eval"] = {"command": "spmkit " + " ".join(eval_args), "in_process": smoke, "returncode": rc,
                        "seconds": round(secs, 1),
                        "metrics": metrics}
    if rc != 0 or metrics is None:
        raise RuntimeError(f"spmkit eval exited {rc}: {(stderr or stdout).strip().splitlines()[-1:]}")
    # the checkpoint's own validation and a fresh `spmkit eval` see the same images with the same weights;
    # on a GPU, nondeterministic bf16 kernels may flip one near-tied image of an untrained model
    tol = 1e-6 if smoke else 100.0 / max(int(metrics.get("images") or 1), 1) + 1e-6
    if abs(metrics["top1"] - rows[-1]["top1"]) > tol:
        raise RuntimeError(f"eval top1 {metrics['top1']} differs from the run's {rows[-1]['top1']}")


# --------------------------------------------------------------------------------------------- loader
LOADERS = ("folder", "shards", "dali")


class StepClock(Hook):
    """A training hook: the time between the end of update ``warmup`` and of update ``warmup + steps``
    (CUDA synchronised at both ends, not in between)."""

    def __init__(self, warmup: int, steps: int, device: torch.device) -> None:
        self.warmup, self.steps, self.device = warmup, steps, device
        self.t0: float | None = None
        self.t1: float | None = None

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def after_update(self, loop, step_row: dict) -> None:
        if step_row["step"] == self.warmup:
            self.t0 = self._now()
        elif step_row["step"] == self.warmup + self.steps:
            self.t1 = self._now()


def _loader_settings(args: argparse.Namespace) -> dict:
    if args.smoke:
        return dict(model="tiny_pvt", img=32, batch=args.loader_batch or 4, warmup=args.loader_warmup or 1,
                    steps=args.loader_steps or 2, workers=args.loader_workers or [1], extra=["img_size=32"])
    return dict(model="pvt_tiny", img=224, batch=args.loader_batch or 128, warmup=args.loader_warmup or 10,
                steps=args.loader_steps or 30, workers=args.loader_workers or [4, 8], extra=[])


def _timed_run(data: Path, out: Path, s: dict, loader: str, workers: int, device: torch.device) -> float:
    """``spmkit train`` (in this process, through the library) for one epoch of warmup + steps batches;
    images per second over the timed steps."""
    from spmkit.tasks.base import ModelSpec
    from spmkit.train.reporter import NullReporter
    from spmkit.train.trainer import TrainConfig, train

    clock = StepClock(s["warmup"], s["steps"], device)
    overrides = ["epochs=1", f"batch_size={s['batch']}", f"workers={workers}", "warmup_epochs=0",
                 "log_every_steps=100000", f"loader={'dali' if loader == 'dali' else 'torch'}", *s["extra"]]
    cfg = TrainConfig(model=ModelSpec(s["model"]), data=data, output=out, overrides=overrides, device=device.type)
    train(cfg, reporter=NullReporter(), hooks=[clock])
    if clock.t0 is None or clock.t1 is None:
        raise RuntimeError(f"{loader}: the run ended before update {s['warmup'] + s['steps']}")
    return s["steps"] * s["batch"] / (clock.t1 - clock.t0)


def _model_only(s: dict, device: torch.device, classes: int) -> float:
    """The ceiling: the same training step (task loss with mixup / CutMix, AMP, AdamW, scheduler) and the
    device half of the input pipeline (uint8 -> normalised) on one synthetic uint8 batch kept on the device."""
    from spmkit.tasks.base import ModelSpec
    from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask
    from spmkit.tasks.classification.device_pipeline import normalize_uint8
    from spmkit.tasks.recipe import load_recipe
    from spmkit.train.distributed import DistContext
    from spmkit.train.optim import create_optimizer, create_scheduler
    from spmkit.train.step import TrainStep

    recipe = load_recipe(ClassificationRecipe, None, [f"batch_size={s['batch']}", "warmup_epochs=0", *s["extra"]])
    task = ClassificationTask(recipe)
    info = {"num_classes": classes, "classes": [str(i) for i in range(classes)]}
    model = task.build_model(ModelSpec(s["model"]), info).to(device)
    task.setup_training(model, info)
    optimizer = create_optimizer(model, recipe, recipe.resolved_lr(s["batch"]))
    scheduler = create_scheduler(optimizer, recipe, s["warmup"] + s["steps"])
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.amp == "fp16")
    step = TrainStep(task, model, model, optimizer, scheduler, scaler, None, recipe, DistContext(device=device))
    cfg = task.data_config(model)
    images = torch.randint(0, 256, (s["batch"], *cfg["input_size"]), dtype=torch.uint8, device=device)
    targets = torch.randint(0, classes, (s["batch"],), device=device)
    skipped = torch.zeros((), dtype=torch.int64, device=device)
    model.train()
    clock = StepClock(0, 0, device)
    for i in range(s["warmup"] + s["steps"]):
        if i == s["warmup"]:
            t0 = clock._now()
        step((normalize_uint8(images, cfg["mean"], cfg["std"], recipe.channels_last), targets, skipped), True)
    return s["steps"] * s["batch"] / (clock._now() - t0)


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def loader_section(run: Run, args: argparse.Namespace, device: torch.device, work: Path) -> None:
    """Images per second of ``spmkit train`` with the folder, shard and DALI loaders at each worker count,
    against the model-only ceiling; written to ``run.data["loader"]``."""
    import math

    s = _loader_settings(args)
    classes = 10
    n_train = (s["warmup"] + s["steps"]) * s["batch"]
    t = time.perf_counter()
    data = make_imagenet_folder(work / "data", classes=classes, train_per_class=math.ceil(n_train / classes),
                                val_per_class=1, size=s["img"])
    sources = {"folder": data, "dali": data}
    made = {"generate_s": round(time.perf_counter() - t, 1)}
    if not _importable("webdataset"):
        run.skip("loader shards", 'webdataset is not installed (pip install "spmkit[data]")')
    else:
        from spmkit.data.pack import pack

        t = time.perf_counter()
        sources["shards"] = pack(data, work / "shards", shard_size=max(64, n_train // 32)).output
        made["pack_s"] = round(time.perf_counter() - t, 1)
    if not _importable("nvidia.dali"):
        run.skip("loader dali", 'NVIDIA DALI is not installed (pip install "spmkit[dali]")')
        sources.pop("dali")
    ceiling = _model_only(s, device, classes)
    rows = []
    for workers in s["workers"]:
        for loader in LOADERS:
            if loader not in sources:
                continue
            label = f"loader {loader} x{workers}"
            rate = run.step(label, lambda loader=loader, workers=workers: _timed_run(
                sources[loader], work / f"run-{loader}-{workers}", s, loader, workers, device))
            if rate is not None:
                rows.append({"loader": loader, "workers": workers, "img_per_s": round(rate, 1),
                             "of_ceiling": round(rate / ceiling, 3)})
            if device.type == "cuda":
                torch.cuda.empty_cache()
    run.data["loader"] = {"model": s["model"], "img_size": s["img"], "batch_size": s["batch"],
                          "timed_steps": s["steps"], "warmup_steps": s["warmup"], "train_images": n_train,
                          "cpu_cores": os.cpu_count(), "model_only_img_per_s": round(ceiling, 1), "rows": rows,
                          **made}


# -------------------------------------------------------------------------------------------- profile
def build_entries(table: dict, drop_path: bool) -> dict:
    import spmkit
    from spmkit.profile import resolve_entry

    entries = {}
    for key, (spec, kwargs) in table.items():
        if kwargs is None:
            entries[key] = resolve_entry(spec, name=f"spmkit {spec}")
        else:
            kw = dict(kwargs)
            if drop_path:  # the training step compares like with like: timm gets the blueprint's drop-path rate
                ours = {"swin_ref": "swin_t", "pvt2_ref": "pvt_v2_b1"}[key]
                kw["drop_path_rate"] = float(spmkit.load_blueprint(table[ours][0]).drop_path_rate or 0.0)
            entries[key] = resolve_entry(spec, kwargs=kw, name=spec.replace("timm:", "timm "))
    return entries


def profile_modes(run: Run, args: argparse.Namespace, device: torch.device) -> None:
    from spmkit.profile import ProfileConfig, profile_entries

    entries = build_entries(SMOKE if args.smoke else FULL, drop_path=not args.smoke)
    keys = list(entries)
    size = (64, 64) if args.smoke else (224, 224)
    results: dict[str, dict] = {}
    run.data["profile"] = {"input_size": list(size), "batch_size": args.batch_size, "modes": results,
                           "entries": {k: e.name for k, e in entries.items()}}
    for mode in args.modes:
        amp, channels_last, compiled = MODES[mode]
        if compiled and args.smoke:
            run.skip(f"profile {mode}", "smoke run: inductor compiles for minutes on a CPU")
            continue
        train = not compiled or args.compile_train
        config = ProfileConfig(device=str(device), batch_size=args.batch_size, input_sizes=(size,), amp=amp,
                               channels_last=channels_last, compile=compiled, warmup=args.warmup,
                               repeats=args.repeats, max_seconds=args.max_seconds, train=train, memory=True,
                               memory_subprocess=False)
        # compiling is the slow part: one group at a time, each only while the budget lasts
        groups = COMPILE_GROUPS if compiled else [keys]
        for group in groups:
            label = f"profile {mode}" + (f" [{', '.join(group)}]" if len(groups) > 1 else "")
            left = run.budget_s - run.elapsed()
            if left < (90 if compiled else 20):
                run.skip(label, f"time budget: {left:.0f}s of {run.budget_s:.0f}s left")
                continue

            def measure(group=group, mode=mode, config=config) -> list:
                return profile_entries([entries[k] for k in group], config,
                                       progress=lambda m: print(f"[acceptance]   {mode}: {m}", file=sys.stderr))

            res = run.step(label, measure)
            if res is not None:
                results.setdefault(mode, {}).update({k: r.to_dict() for k, r in zip(group, res)})
        if not train and mode in results:
            run.skip(f"profile {mode} training step", "compiled training steps need --compile-train (time budget)")
    if device.type != "cuda":
        run.skip("profile allocator peaks", "max_memory_allocated / max_memory_reserved need CUDA; CPU rows give "
                                            "the in-process peak RSS growth instead")
    run.data["ratios"] = ratio_rows(results, entries)


RATIO_FIELDS = [("latency_ms", "latency"), ("throughput", "throughput"), ("train_step_ms", "train_step"),
                ("peak_memory_bytes", "peak_memory"), ("max_allocated_bytes", "max_allocated"),
                ("max_reserved_bytes", "max_reserved"), ("train_max_allocated_bytes", "train_max_allocated")]


def ratio_rows(results: dict, entries: dict) -> list[dict]:
    rows = []
    for mode, by_key in results.items():
        for ours, ref in PAIRS:
            if ours not in by_key or ref not in by_key:
                continue
            a, b = by_key[ours], by_key[ref]
            row = {"mode": mode, "ours": entries[ours].name, "reference": entries[ref].name}
            for field, label in RATIO_FIELDS:
                row[label] = (a[field] / b[field]) if (a.get(field) is not None and b.get(field)) else None
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------- reports
def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def markdown(data: dict) -> str:
    lines = [f"GPU acceptance run ({'smoke, ' if data['smoke'] else ''}device {data['device']}): {data['machine']}.",
             f"Command: `{data['command']}`; {data['elapsed_s']:.0f} s; "
             f"{'all checks passed' if data['ok'] else str(len(data['failures'])) + ' failed check(s)'}.", ""]
    prof = data.get("profile")
    if prof and data.get("ratios"):
        lines += [f"Ratios ours / reference at {prof['input_size'][0]}x{prof['input_size'][1]} (latency at batch 1; "
                  f"throughput, training step and memory at batch {prof['batch_size']}; below 1 is better except "
                  "throughput):", "",
                  "| mode | ours | reference | latency | throughput | train step | peak mem | max allocated | "
                  "max reserved |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in data["ratios"]:
            lines.append(f"| {r['mode']} | {r['ours']} | {r['reference']} | {_r(r['latency'])} | "
                         f"{_r(r['throughput'])} | {_r(r['train_step'])} | {_r(r['peak_memory'])} | "
                         f"{_r(r['max_allocated'])} | {_r(r['max_reserved'])} |")
        lines += ["", "| mode | entry | lat ms | img/s | train ms | peak MiB | max alloc MiB | max reserved MiB |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        mib = lambda v: "-" if v is None else f"{v / 2**20:.1f}"  # noqa: E731
        for mode, by_key in prof["modes"].items():
            for r in by_key.values():
                lines.append(f"| {mode} | {r['name']} | {r['latency_ms']:.2f} | {r['throughput']:.1f} | "
                             f"{'-' if r['train_step_ms'] is None else format(r['train_step_ms'], '.1f')} | "
                             f"{mib(r['peak_memory_bytes'])} | {mib(r['max_allocated_bytes'])} | "
                             f"{mib(r['max_reserved_bytes'])} |")
    sdpa = data.get("sdpa")
    if sdpa:
        lines += ["", f"SDPA kernels (mixers using SDPA: {', '.join(sdpa['mixers_using_sdpa']) or 'none'}; "
                      f"without: {', '.join(sdpa['mixers_without_sdpa']) or 'none'}; uncovered: "
                      f"{', '.join(sdpa['uncovered_mixers']) or 'none'}):", "",
                  "| blueprint | mixer | module | precision | default kernel | flash/efficient only | ok |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in sdpa["checks"]:
            if c["uses_sdpa"]:
                lines.append(f"| {c['blueprint']} | {c['mixer']} | {c['module']} | {c['precision']} | "
                             f"{', '.join(c['default_kernels'])} | {c.get('fused_only', '-')} | "
                             f"{ {True: 'yes', False: 'NO', None: 'not enforced'}[c['ok']]} |")
    loader = data.get("loader")
    if loader:
        lines += ["", f"Loaders: `spmkit train` of {loader['model']} at {loader['img_size']} px, batch "
                      f"{loader['batch_size']}, img/s over {loader['timed_steps']} steps after "
                      f"{loader['warmup_steps']} (generated noise JPEGs of {loader['img_size']} px, "
                      f"{loader['cpu_cores']} CPU cores); the ceiling is the model alone on a synthetic on-device "
                      f"batch: {loader['model_only_img_per_s']:.1f} img/s. A loader keeps the device busy when its "
                      "share of the ceiling is near 1.", "",
                  "| loader | workers | img/s | of ceiling |", "| --- | ---: | ---: | ---: |"]
        for r in loader["rows"]:
            lines.append(f"| {r['loader']} | {r['workers']} | {r['img_per_s']:.1f} | {r['of_ceiling']:.2f} |")
    for key in ("collective", "train", "eval"):
        if data.get(key):
            lines += ["", f"{key}: `{json.dumps(data[key])}`"]
    if data["skipped"]:
        lines += ["", "Skipped:", *[f"- {s['step']}: {s['reason']}" for s in data["skipped"]]]
    if data["failures"]:
        lines += ["", "Failed:", *[f"- {f['step']}: {f['error']}" for f in data["failures"]]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (cuda:N) or cpu")
    ap.add_argument("--smoke", action="store_true", help="tiny models and inputs, few repeats (CPU, ~1 minute)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out", help="folder for the JSON and markdown")
    ap.add_argument("--batch-size", type=int, default=None, help="default 64 (smoke: 1, no throughput run)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 20, smoke 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed calls (default 5, smoke 0)")
    ap.add_argument("--max-seconds", type=float, default=None, help="cap per measurement (default 10, smoke 2)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    ap.add_argument("--compile-train", action="store_true", help="also time compiled training steps")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip profile modes once this much time is spent")
    ap.add_argument("--skip", default="",
                    help="comma list of steps to leave out: sdpa, collective, train, profile, loader")
    ints = lambda text: [int(v) for v in text.split(",") if v.strip()]  # noqa: E731
    ap.add_argument("--loader-workers", type=ints, default=None,
                    help="loader section: comma list of CPU worker counts (DALI: threads) per run (default 4,8; "
                         "smoke 1)")
    ap.add_argument("--loader-steps", type=int, default=None, help="loader section: timed steps (default 30, smoke 2)")
    ap.add_argument("--loader-warmup", type=int, default=None,
                    help="loader section: untimed steps first (default 10, smoke 1)")
    ap.add_argument("--loader-batch", type=int, default=None, help="loader section: batch size (default 128, smoke 4)")
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose from {list(MODES)}")
    smoke = args.smoke
    args.batch_size = args.batch_size or (1 if smoke else 64)
    args.repeats = args.repeats or (1 if smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (0 if smoke else 5)
    args.max_seconds = args.max_seconds or (2.0 if smoke else 10.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from benchmarks.docsection import machine
    from spmkit.profile.steps import check_device

    from spmkit.profile.errors import ProfileError

    try:
        device = check_device(args.device)
    except ProfileError as exc:  # e.g. no CUDA GPU visible: one paragraph, exit 2
        print(f"gpu_acceptance: {exc} (--device cpu --smoke runs the steps on a CPU.)", file=sys.stderr)
        return 2
    if smoke:  # tiny models gain nothing from threads, and spinning threads on a busy machine cost a lot
        torch.set_num_threads(1)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run = Run(args.budget_s)
    run.data.update(device=str(device), smoke=smoke, machine=machine(), torch=torch.__version__,
                    command="python benchmarks/gpu_acceptance.py " + " ".join(sys.argv[1:] if argv is None else argv))
    if "sdpa" not in skip:
        res = run.step("sdpa", lambda: sdpa_check(SDPA_SMOKE if smoke else SDPA_FULL, device, per_kind=smoke))
        if res is not None:
            run.data["sdpa"] = res
            if not res["enforced"]:
                run.skip("sdpa fused-kernel requirement", "reported, not enforced, off CUDA (CPU's fused kernel "
                                                          "has no attention-mask gradient)")
            if not res["ok"]:
                bad_rows = [f"{c['blueprint']}:{c['module']}:{c['precision']}" for c in res["checks"]
                            if c["ok"] is False]
                run.fail("sdpa", f"not fused: {bad_rows[:6]}; uncovered mixers: {res['uncovered_mixers']}")
    if "collective" not in skip:
        res = run.step("collective", lambda: collective_check(device))
        if res is not None:
            run.data["collective"] = res
            if not res["ok"]:
                run.fail("collective", "all_reduce gave a wrong sum")
    if "train" not in skip:
        with tempfile.TemporaryDirectory(prefix="spmkit-acceptance-") as work:
            run.step("train + eval", lambda: train_and_eval(run, Path(work), smoke, device))
    if "profile" not in skip:
        # the profiler collects garbage around every memory measurement; with the objects of everything
        # imported and run so far frozen out of the collector's view, each collection takes milliseconds
        gc.collect()
        gc.freeze()
        profile_modes(run, args, device)
    if "loader" not in skip:
        with tempfile.TemporaryDirectory(prefix="spmkit-acceptance-loader-") as work:
            run.step("loader", lambda: loader_section(run, args, device, Path(work)))
    run.data["elapsed_s"] = round(run.elapsed(), 1)
    run.data["ok"] = not run.data["failures"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_acceptance.json").write_text(json.dumps(run.data, indent=2, default=str))
    md = markdown(run.data)
    (args.out / "gpu_acceptance.md").write_text(md)
    print(md)
    print(f"[acceptance] wrote {args.out / 'gpu_acceptance.json'} and gpu_acceptance.md", file=sys.stderr)
    return 0 if run.data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
