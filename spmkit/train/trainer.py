"""The training loop, the same for every task and for one process or many (see ``spmkit.tasks.base``).

One call of :func:`train` per process; under ``torch.distributed.run`` each process trains its shard with
DistributedDataParallel and rank 0 writes the run folder. Resuming restores model, EMA, optimizer,
scheduler, scaler, RNG and the position inside the epoch, so the continued run's optimizer-step counter
and learning rate follow the uninterrupted run exactly (the data order too; random augmentations of the
resumed part are drawn afresh).
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from spmkit.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from spmkit.train.distributed import DistContext, cleanup_distributed, init_distributed, sync_batchnorm
from spmkit.train.finite import FiniteGuard
from spmkit.train.optim import create_optimizer, create_scheduler
from spmkit.tasks.recipe import load_recipe
from spmkit.train.reporter import FileLog, LogReporter, NullReporter, Reporter, TeeReporter
from spmkit.train.retention import checkpoint_listing, epoch_checkpoint, prune_epoch_checkpoints
from spmkit.train.run_summary import summary_lines
from spmkit.train.run_dir import LOG, RunDir, probe_lock, versions
from spmkit.data.sampling import loader_sampler, process_sampler
from spmkit.train.step import TrainStep
from spmkit.train.worker_errors import SafeLoader
from spmkit.errors import CheckpointError, DataError, SpmkitError
from spmkit.registry import TASKS
from spmkit.tasks.base import ModelSpec, Task, unwrap

#: fault injection for the resume tests: SIGKILL this process right after optimizer step N
FAULT_ENV = "SPMKIT_FAULT_KILL_AT_STEP"


@dataclass
class TrainConfig:
    """What ``spmkit train`` was asked for; the recipe is resolved from ``recipe_file`` + ``overrides``."""

    model: ModelSpec
    data: Path
    output: Path
    task: str = "classification"
    recipe_file: Path | str | None = None  # a YAML path or a builtin recipe name
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    resume: Literal["no", "yes", "auto"] = "no"


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _loader(dataset, sampler, batch_size: int, workers: int, collate, drop_last: bool, device) -> DataLoader:
    return SafeLoader(dataset, batch_size=batch_size, sampler=loader_sampler(sampler), num_workers=workers, collate_fn=collate,
                      drop_last=drop_last, pin_memory=device.type == "cuda", worker_init_fn=_worker_init,
                      persistent_workers=False)


def _resolved_blueprint(model: nn.Module) -> dict[str, Any] | None:
    bp = getattr(unwrap(model), "blueprint", None)
    return bp.model_dump(mode="json", exclude_unset=True) if bp is not None and hasattr(bp, "model_dump") else None


def _check_resume(cfg: TrainConfig, run: RunDir) -> Path | None:
    last = run.last
    if cfg.resume == "yes":
        if not last.exists():
            raise CheckpointError(f"--resume: {last} does not exist; start the run without --resume.")
        return last
    if cfg.resume == "auto":
        return last if last.exists() else None
    if last.exists():
        raise SpmkitError(f"{cfg.output} already holds a run ({last}). Continue it with --resume, "
                          f"or choose another --output.")
    return None


def preflight(cfg: TrainConfig) -> None:
    """The checks a launcher runs once before starting processes, so that bad input gives one message
    instead of one per process: task name, run folder / resume, recipe, data folder, blueprint and its size."""
    task_cls: type[Task] = TASKS.get(cfg.task)
    probe_lock(Path(cfg.output))  # the processes would fail one by one on a folder another run writes
    run = RunDir(cfg.output, enabled=False)
    resume_path = _check_resume(cfg, run)
    base = load_checkpoint(resume_path)["recipe"] if resume_path is not None else None
    recipe = load_recipe(task_cls.recipe_class, cfg.recipe_file, cfg.overrides, base=base)
    task_cls(recipe).data_info(Path(cfg.data))
    if resume_path is None and cfg.model.blueprint and not cfg.model.blueprint.startswith("timm:"):
        import spmkit
        from spmkit.sizing import check_fits

        check_fits(spmkit.load_blueprint(cfg.model.blueprint, overrides=list(cfg.model.overrides)))


def train(cfg: TrainConfig, reporter: Reporter | None = None) -> list[dict[str, Any]]:
    """Train (or continue) a run; returns the metrics rows written by this call (rank 0; others: [])."""
    ctx = init_distributed(cfg.device)
    run = RunDir(cfg.output, enabled=ctx.is_main)
    failed = True
    try:
        run.acquire()  # one writer per run folder (rank 0), before anything is read or written
        rows = _train(cfg, ctx, reporter, run)
        failed = False
        return rows
    finally:
        run.release(failed=failed)  # a run that failed before writing anything leaves no folder behind
        cleanup_distributed()


def _memory_mib(device: torch.device) -> float | None:
    """Peak memory of this process: CUDA allocated on a GPU, resident set (ru_maxrss) on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if os.uname().sysname == "Darwin" else rss / 1024


def _train(cfg: TrainConfig, ctx: DistContext, reporter: Reporter | None, run: RunDir) -> list[dict[str, Any]]:
    console: Reporter = (reporter or LogReporter()) if ctx.is_main else NullReporter()
    resume_path = _check_resume(cfg, run)
    if not ctx.is_main:
        return _run(cfg, ctx, console, run, resume_path)
    rep = TeeReporter(console, FileLog(run.path / LOG))  # everything shown also goes to train.log
    try:
        return _run(cfg, ctx, rep, run, resume_path)
    except SpmkitError as e:
        rep.error(str(e))
        raise
    finally:
        rep.close()


def _run(cfg: TrainConfig, ctx: DistContext, rep: Reporter, run: RunDir,
         resume_path: Path | None) -> list[dict[str, Any]]:
    task_cls: type[Task] = TASKS.get(cfg.task)
    data = Path(cfg.data)

    ckpt: dict[str, Any] | None = load_checkpoint(resume_path) if resume_path is not None else None
    if ckpt is not None and ckpt.get("task") != cfg.task:
        raise CheckpointError(f"{resume_path} is a {ckpt.get('task')!r} run, not {cfg.task!r}.")
    base = ckpt["recipe"] if ckpt is not None else None
    recipe = load_recipe(task_cls.recipe_class, cfg.recipe_file, cfg.overrides, base=base)
    task = task_cls(recipe)
    _seed_all(recipe.seed + ctx.rank)

    info = task.data_info(data)
    spec = cfg.model
    if ckpt is not None:
        spec = ModelSpec(ckpt["model_spec"]["blueprint"], tuple(ckpt["model_spec"]["overrides"]),
                         resolved=ckpt.get("blueprint"))
        if ckpt.get("data_info") and ckpt["data_info"] != info:
            raise DataError(f"{data} does not have the classes of the run being resumed ({resume_path}).")
    model = task.build_model(spec, info)
    if ckpt is None and recipe.init:
        report = task.load_init_weights(model, recipe.init)
        for k in ("missing", "unexpected", "skipped"):
            if report.get(k):
                rep.message(f"init from {recipe.init}: {len(report[k])} {k} keys "
                            f"(e.g. {', '.join(report[k][:3])}); these keep their fresh initialisation")
    if recipe.grad_checkpointing and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    model.to(ctx.device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)

    train_ds = task.build_dataset(data, "train", model, info)
    val_ds = task.build_dataset(data, "val", model, info)
    bs = recipe.batch_size
    train_sampler = process_sampler(train_ds, ctx.rank, ctx.world_size, shuffle=True, seed=recipe.seed, pad=True,
                                    batch_size=bs)  # folders: a ShardSampler; shards: the stream's own plan
    val_sampler = process_sampler(val_ds, ctx.rank, ctx.world_size, shuffle=False, pad=False)
    batches = len(train_sampler) // bs // recipe.accum_steps * recipe.accum_steps
    if batches == 0:
        raise DataError(f"{data}/train has {len(train_ds)} images: fewer than one step of "
                        f"{bs} x {recipe.accum_steps} (accumulation) x {ctx.world_size} processes.")
    updates_per_epoch = batches // recipe.accum_steps
    workers = recipe.resolved_workers()
    train_loader = _loader(train_ds, train_sampler, bs, workers, task.collate_fn("train"), True, ctx.device)
    val_loader = _loader(val_ds, val_sampler, bs, workers, task.collate_fn("val"), False, ctx.device)

    global_batch = bs * recipe.accum_steps * ctx.world_size
    lr = recipe.resolved_lr(global_batch)
    optimizer = create_optimizer(model, recipe, lr)
    scheduler = create_scheduler(optimizer, recipe, updates_per_epoch)
    use_fp16 = recipe.amp == "fp16"
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=use_fp16)
    ema = None
    if recipe.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema_decay)
    task.setup_training(model, info)

    start_epoch, batch_in_epoch, step = 0, 0, 0
    best: float | None = None
    best_epoch: int | None = None
    loss_sum, loss_count = 0.0, 0
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            changed = sorted(k for k, v in recipe.model_dump(mode="json").items() if ckpt["recipe"].get(k) != v)
            if changed:  # the schedule is rebuilt from the new recipe; the step counter carries over
                rep.message(f"recipe changed on resume: {', '.join(changed)}")
            else:
                scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            if ema is not None and ckpt.get("ema") is not None:
                ema.module.load_state_dict(ckpt["ema"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"{resume_path} does not match this run: {str(e).splitlines()[0]}") from None
        start_epoch, batch_in_epoch, step = ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]
        best, best_epoch = ckpt.get("best"), ckpt.get("best_epoch")
        loss_sum, loss_count = ckpt.get("epoch_loss_sum", 0.0), ckpt.get("epoch_loss_count", 0)
        if ctx.is_main and ckpt.get("rng") is not None:
            set_rng_state(ckpt["rng"])
        else:
            _seed_all(recipe.seed + ctx.rank + 7919 * (step + 1))
        run.truncate_after(start_epoch, step)
        rep.message(f"resumed {resume_path}: epoch {start_epoch + 1}, batch {batch_in_epoch}, step {step}")
    else:
        run.truncate_after(0, 0)  # rows of an earlier attempt that failed before its first checkpoint
    scheduler.step_update(num_updates=step)

    rep.summary(summary_lines(
        task=cfg.task, model_name=spec.blueprint or "(stored blueprint)", model=model, recipe=recipe,
        recipe_source=str(cfg.recipe_file or "defaults") + (f" with --set {' '.join(cfg.overrides)}"
                                                              if cfg.overrides else ""),
        info=info, n_train=len(train_ds), n_val=len(val_ds), device=str(ctx.device), world_size=ctx.world_size,
        global_batch=global_batch, lr=lr, steps_per_epoch=updates_per_epoch, run_folder=str(run.path.resolve()),
        resumed=f"{resume_path} at epoch {start_epoch + 1}, step {step}" if resume_path is not None else None))
    run.write_config(task=cfg.task, blueprint=_resolved_blueprint(model), recipe=recipe.model_dump(mode="json"),
                     info=info, data=str(data), model=spec.blueprint, world_size=ctx.world_size)

    note = sync_batchnorm(model, ctx, recipe.sync_bn)
    if note:
        rep.message(note)
    train_model: nn.Module = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if recipe.compile:
        train_model = torch.compile(train_model)

    def state(epoch: int, in_epoch: int, metrics: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "task": cfg.task, "model_spec": {"blueprint": spec.blueprint, "overrides": list(spec.overrides)},
            "blueprint": _resolved_blueprint(model), "recipe": recipe.model_dump(mode="json"), "data_info": info,
            "model": model.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if use_fp16 else None,
            "epoch": epoch, "batch_in_epoch": in_epoch, "step": step, "best": best, "best_epoch": best_epoch,
            "epoch_loss_sum": loss_sum, "epoch_loss_count": loss_count,
            "rng": rng_state(), "metrics": metrics or {}, "versions": versions(), "world_size": ctx.world_size,
        }

    if start_epoch >= recipe.epochs:
        rep.message(f"{resume_path} has finished all {recipe.epochs} epochs; give --epochs N to train longer.")
    stepper = TrainStep(task, model, train_model, optimizer, scheduler, scaler, ema, recipe, ctx, step=step)
    fault_step = int(os.environ.get(FAULT_ENV, "0") or 0)
    guard = FiniteGuard(ctx.device, run.last)
    rows: list[dict[str, Any]] = []
    total_steps = updates_per_epoch * recipe.epochs
    for epoch in range(start_epoch, recipe.epochs):
        train_model.train()
        train_sampler.set_epoch(epoch)
        train_sampler.set_start(batch_in_epoch * bs)
        torch.manual_seed(recipe.seed + ctx.rank + 1009 * epoch + 7919 * step)  # worker seeds of this pass
        rep.start_epoch(epoch + 1, recipe.epochs, batches, batch_in_epoch)
        t0, seen = time.perf_counter(), 0
        loss_acc = torch.tensor(loss_sum, dtype=torch.float64, device=ctx.device)
        scalar_sums: dict[str, float] = {}
        batches_run = 0
        shown_loss = float("nan")
        i = first = batch_in_epoch
        data_time, data_batches = 0.0, 0  # since the last log line
        it = iter(train_loader)
        while i < batches:
            t_data = time.perf_counter()
            batch = task.to_device(next(it), ctx.device)
            data_time += time.perf_counter() - t_data
            data_batches += 1
            at_update = (i + 1) % recipe.accum_steps == 0
            loss = stepper(batch, at_update)
            guard.observe(loss, stepper.step if at_update else stepper.step + 1)
            for k, v in stepper.scalars.items():
                scalar_sums[k] = scalar_sums.get(k, 0.0) + float(v)
            loss_acc += loss.double()
            loss_count += 1
            batches_run += 1
            seen += task.batch_size_of(batch) * ctx.world_size
            i += 1
            if not at_update:
                continue
            step = stepper.step
            step_row: dict[str, Any] = {"step": step, "epoch": epoch + 1, "lr": _lr(optimizer)}  # lr every step
            elapsed = max(time.perf_counter() - t0, 1e-9)
            if step % recipe.log_every_steps == 0 or i == batches or step == 1:
                guard.check(ctx, epoch + 1)
                shown_loss = float(loss)
                step_row["loss"] = shown_loss
                left = (batches - i) + batches * (recipe.epochs - epoch - 1)
                rep.log_step({**step_row, "total_steps": total_steps, "epochs": recipe.epochs, "batch": i,
                              "batches": batches, "images_per_s": seen / elapsed,
                              "data_time_s": data_time / max(data_batches, 1),
                              "memory_mib": _memory_mib(ctx.device), "eta_s": elapsed / (i - first) * left})
                data_time, data_batches = 0.0, 0
            run.log_step(step_row)
            rep.step(i, shown_loss, _lr(optimizer), seen / elapsed)
            if recipe.ckpt_every_steps and step % recipe.ckpt_every_steps == 0 and i < batches:
                loss_sum = float(loss_acc)
                guard.before_save(ctx, [model, ema.module if ema is not None else None], step, epoch + 1)
                if ctx.is_main:
                    save_checkpoint(state(epoch, i, None), run.last)
            if fault_step and step == fault_step and ctx.is_main:
                os.kill(os.getpid(), signal.SIGKILL)
        elapsed = time.perf_counter() - t0
        # before the evaluation and the end-of-epoch checkpoints
        guard.before_save(ctx, [model, ema.module if ema is not None else None], step, epoch + 1)
        scheduler.step(epoch + 1)
        batch_in_epoch = 0
        loss_sum = float(loss_acc)
        totals = torch.tensor([loss_sum, float(loss_count)], dtype=torch.float64, device=ctx.device)
        ctx.all_reduce_sum(totals)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step,
                               "train_loss": float(totals[0] / max(float(totals[1]), 1.0)),
                               "lr": _lr(optimizer), "images_per_s": seen / max(elapsed, 1e-9),
                               "epoch_time_s": elapsed}
        loss_sum, loss_count = 0.0, 0
        if scalar_sums:  # the task's extra scalars, averaged over this process's batches and the processes
            names = sorted(scalar_sums)
            t = torch.tensor([scalar_sums[k] / max(batches_run, 1) for k in names], dtype=torch.float64,
                             device=ctx.device)
            ctx.all_reduce_sum(t)
            row.update({f"train_{k}": float(v) / ctx.world_size for k, v in zip(names, t)})
        row.update(task.end_of_epoch(ctx))
        last_epoch = epoch + 1 == recipe.epochs
        if (epoch + 1) % recipe.eval_every_epochs == 0 or last_epoch:
            ctx.broadcast_buffers(model)  # every shard is evaluated with the weights rank 0 will save
            metrics = task.evaluate(model, val_loader, ctx)
            if ema is not None:
                ema_metrics = task.evaluate(ema.module, val_loader, ctx)
                metrics.update({f"ema_{k}": v for k, v in ema_metrics.items()})
            row.update(metrics)
            rep.evaluation(epoch + 1, metrics)
            value = metrics[task.best_metric]
            is_best = best is None or (value > best if task.best_mode == "max" else value < best)
            if is_best:
                best, best_epoch = value, epoch + 1
        else:
            is_best = False
        row["best_" + task.best_metric] = best
        if ctx.is_main:
            run.log_epoch(row)
            st = state(epoch + 1, 0, row)
            save_checkpoint(st, run.last)
            if is_best:
                save_checkpoint(st, run.best)
            if recipe.save_every_epochs or recipe.keep_last:
                if (epoch + 1) % (recipe.save_every_epochs or 1) == 0:
                    save_checkpoint(st, epoch_checkpoint(run.path, epoch + 1))
                for old in prune_epoch_checkpoints(run.path, recipe.keep_last):
                    rep.message(f"removed {old.name} (keep_last {recipe.keep_last})", level="info")
            rep.end_epoch(row)
        rows.append(row)
        ctx.barrier()
    if ctx.is_main:
        skipped = sum(r.get("train_skipped", 0) for r in rows)
        if skipped:
            rep.message(f"{int(skipped)} unreadable training images were skipped in this run (paths logged above).")
        if rows:
            best_note = (f"best {task.best_metric} {best:.4g} at epoch {best_epoch}" if best is not None and best_epoch
                         else None)
            for line in checkpoint_listing(run.path, best_note):
                rep.message(line, level="info")
    run.close()
    return rows if ctx.is_main else []


def _lr(optimizer: torch.optim.Optimizer) -> float:
    """The unscaled learning rate (the first group with lr_scale 1, else the first group)."""
    for g in optimizer.param_groups:
        if g.get("lr_scale", 1.0) == 1.0:
            return float(g["lr"])
    return float(optimizer.param_groups[0]["lr"])

