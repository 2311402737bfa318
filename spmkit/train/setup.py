"""Everything a training run is made of, built once before the loop: task, recipe, model, data, optimizer,
scheduler, scaler, EMA, and the counters restored from a checkpoint when the run resumes.

:func:`build_training` does the setup that :class:`spmkit.train.loop.TrainLoop` then runs; the order of
its steps (seeding, model construction, data, optimizer, resume) is what makes a resumed run continue the
uninterrupted one exactly, so keep it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from spmkit.train import preemption
from spmkit.io.checkpoint import load_checkpoint, set_rng_state
from spmkit.train.distributed import DistContext, sync_batchnorm
from spmkit.train.optim import create_optimizer, create_scheduler, optimizer_impl
from spmkit.tasks.recipe import TrainRecipe, load_recipe
from spmkit.train.reporter import Reporter
from spmkit.train.run_dir import RunDir
from spmkit.train.run_summary import summary_lines
from spmkit.data.sampling import loader_sampler, process_sampler
from spmkit.train.worker_errors import SafeLoader
from spmkit.train.worker_seed import PassSeededDataset, PassSeedSampler
from spmkit.errors import CheckpointError, DataError
from spmkit.tasks.base import Loaders, ModelSpec, Task, unwrap
from spmkit.io.user_code import task_class

if TYPE_CHECKING:
    from spmkit.train.trainer import TrainConfig


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    preemption.worker_init()  # SIGTERM is the main process's to act on (SLURM signals every process)


def _loader(dataset, sampler, batch_size: int, workers: int, collate, drop_last: bool, device) -> DataLoader:
    """Workers stay alive across epochs (no start-up per epoch, for train and val) and are re-seeded per
    pass as fresh ones would be (see :mod:`spmkit.train.worker_seed`); the sampler is iterated in the main
    process, so ``set_epoch`` / ``set_start`` act on the next pass as before. A stream (shards: no sampler)
    plans each pass in its dataset object, so its workers start afresh every pass."""
    persistent = workers > 0 and loader_sampler(sampler) is not None
    if persistent:
        dataset, sampler = PassSeededDataset(dataset), PassSeedSampler(sampler)
    return SafeLoader(dataset, batch_size=batch_size, sampler=loader_sampler(sampler), num_workers=workers,
                      collate_fn=collate,
                      drop_last=drop_last, pin_memory=device.type == "cuda", worker_init_fn=_worker_init,
                      persistent_workers=persistent, generator=torch.Generator() if persistent else None)


def resolved_blueprint(model: nn.Module) -> dict[str, Any] | None:
    """The model's blueprint as stored in run folders and checkpoints (``None`` for ``timm:`` models)."""
    bp = getattr(unwrap(model), "blueprint", None)
    return bp.model_dump(mode="json", exclude_unset=True) if bp is not None and hasattr(bp, "model_dump") else None


@dataclass
class Progress:
    """Where the run stands: the counters a checkpoint stores and a resume restores."""

    epoch: int = 0  # the epoch to run next (0-based)
    batch_in_epoch: int = 0  # batches of ``epoch`` already trained (a mid-epoch checkpoint)
    step: int = 0  # optimizer updates so far
    best: float | None = None
    best_epoch: int | None = None
    loss_sum: float = 0.0  # the current epoch's loss so far (kept over a mid-epoch resume)
    loss_count: int = 0


@dataclass
class Training:
    """The parts of one run, as built by :func:`build_training` (one per process)."""

    cfg: "TrainConfig"
    ctx: DistContext
    rep: Reporter
    run: RunDir
    task: Task
    recipe: TrainRecipe
    info: dict[str, Any]
    spec: ModelSpec
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: Any
    train_loader: DataLoader
    val_loader: DataLoader
    train_sampler: Any  # a ShardSampler for folders, the stream's own plan for shards
    batches: int  # batches per epoch on each process (a multiple of accum_steps)
    updates_per_epoch: int
    global_batch: int
    lr: float
    n_train: int
    n_val: int
    resume_path: Path | None = None
    progress: Progress = field(default_factory=Progress)
    train_model: nn.Module | None = None  # the DDP- / compile-wrapped model that is called

    @property
    def use_fp16(self) -> bool:
        return self.recipe.amp == "fp16"

    def checkpoint_state(self, epoch: int, in_epoch: int, metrics: dict[str, Any] | None) -> dict[str, Any]:
        """What ``last.pt`` / ``best.pt`` hold: enough to resume exactly and to rebuild the model alone."""
        from spmkit.io.checkpoint import rng_state
        from spmkit.train.run_dir import versions

        p, ema = self.progress, self.ema
        return {
            "task": self.cfg.task,
            "model_spec": {"blueprint": self.spec.blueprint, "overrides": list(self.spec.overrides)},
            "blueprint": resolved_blueprint(self.model), "recipe": self.recipe.model_dump(mode="json"),
            "data_info": self.info,
            "model": self.model.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_fp16 else None,
            "epoch": epoch, "batch_in_epoch": in_epoch, "step": p.step, "best": p.best, "best_epoch": p.best_epoch,
            "epoch_loss_sum": p.loss_sum, "epoch_loss_count": p.loss_count,
            "rng": rng_state(), "metrics": metrics or {}, "versions": versions(), "world_size": self.ctx.world_size,
        }


def _model(cfg: "TrainConfig", task: Task, ckpt: dict[str, Any] | None, info: dict[str, Any],
           rep: Reporter, ctx: DistContext, resume_path: Path | None) -> tuple[ModelSpec, nn.Module]:
    spec = cfg.model
    if ckpt is not None:
        spec = ModelSpec(ckpt["model_spec"]["blueprint"], tuple(ckpt["model_spec"]["overrides"]),
                         resolved=ckpt.get("blueprint"))
        if ckpt.get("data_info") and ckpt["data_info"] != info:
            raise DataError(f"{Path(cfg.data)} does not have the classes of the run being resumed ({resume_path}).")
    model = task.build_model(spec, info)
    recipe = task.recipe
    if ckpt is None and recipe.init:
        report = task.load_init_weights(model, recipe.init)
        for k in ("missing", "unexpected", "skipped"):
            if report.get(k):
                rep.message(f"init from {recipe.init}: {len(report[k])} {k} keys "
                            f"(e.g. {', '.join(report[k][:3])}); these keep their fresh initialisation")
        if report.get("resized"):  # issue 19: position / relative-position tables moved to this model's size
            rep.message(f"init from {recipe.init}: {len(report['resized'])} size-dependent tables resized to "
                        f"the model (e.g. {', '.join(report['resized'][:2])})", "info")
    if recipe.grad_checkpointing and hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(True)
    model.to(ctx.device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    return spec, model


def _torch_loaders(task: Task, data: Path, model: nn.Module, info: dict[str, Any], ctx: DistContext) -> Loaders:
    recipe = task.recipe
    train_ds = task.build_dataset(data, "train", model, info)
    val_ds = task.build_dataset(data, "val", model, info)
    bs = recipe.batch_size
    train_sampler = process_sampler(train_ds, ctx.rank, ctx.world_size, shuffle=True, seed=recipe.seed, pad=True,
                                    batch_size=bs)  # folders: a ShardSampler; shards: the stream's own plan
    val_sampler = process_sampler(val_ds, ctx.rank, ctx.world_size, shuffle=False, pad=False)
    workers = recipe.resolved_workers()
    return Loaders(_loader(train_ds, train_sampler, bs, workers, task.collate_fn("train"), True, ctx.device),
                   _loader(val_ds, val_sampler, bs, workers, task.collate_fn("val"), False, ctx.device),
                   train_sampler, len(train_ds), len(val_ds))


def _data(task: Task, data: Path, model: nn.Module, info: dict[str, Any], ctx: DistContext) -> dict[str, Any]:
    recipe = task.recipe
    loaders = task.build_loaders(data, model, info, ctx.rank, ctx.world_size)  # e.g. DALI (loader: dali)
    if loaders is None:
        loaders = _torch_loaders(task, data, model, info, ctx)
    bs = recipe.batch_size
    batches = len(loaders.train_sampler) // bs // recipe.accum_steps * recipe.accum_steps
    if batches == 0:
        raise DataError(f"{data}/train has {loaders.n_train} images: fewer than one step of "
                        f"{bs} x {recipe.accum_steps} (accumulation) x {ctx.world_size} processes.")
    return dict(loaders._asdict(), batches=batches, updates_per_epoch=batches // recipe.accum_steps)


def _restore(t: Training, ckpt: dict[str, Any]) -> None:
    """Load a run checkpoint into the built parts and set the counters (a resumed run)."""
    recipe, p = t.recipe, t.progress
    try:
        t.model.load_state_dict(ckpt["model"])
        t.optimizer.load_state_dict(ckpt["optimizer"])
        changed = sorted(k for k, v in recipe.model_dump(mode="json").items() if ckpt["recipe"].get(k) != v)
        if changed:  # the schedule is rebuilt from the new recipe; the step counter carries over
            t.rep.message(f"recipe changed on resume: {', '.join(changed)}")
        else:
            t.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            t.scaler.load_state_dict(ckpt["scaler"])
        if t.ema is not None and ckpt.get("ema") is not None:
            t.ema.module.load_state_dict(ckpt["ema"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{t.resume_path} does not match this run: {str(e).splitlines()[0]}") from None
    p.epoch, p.batch_in_epoch, p.step = ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]
    p.best, p.best_epoch = ckpt.get("best"), ckpt.get("best_epoch")
    p.loss_sum, p.loss_count = ckpt.get("epoch_loss_sum", 0.0), ckpt.get("epoch_loss_count", 0)
    if t.ctx.is_main and ckpt.get("rng") is not None:
        set_rng_state(ckpt["rng"])
    else:
        seed_all(recipe.seed + t.ctx.rank + 7919 * (p.step + 1))
    t.run.truncate_after(p.epoch, p.step)
    t.rep.message(f"resumed {t.resume_path}: epoch {p.epoch + 1}, batch {p.batch_in_epoch}, step {p.step}")


def _announce(t: Training) -> None:
    """The summary block and the run folder's config files."""
    cfg, p = t.cfg, t.progress
    t.rep.summary(summary_lines(
        task=cfg.task, model_name=t.spec.blueprint or "(stored blueprint)", model=t.model, recipe=t.recipe,
        recipe_source=str(cfg.recipe_file or "defaults") + (f" with --set {' '.join(cfg.overrides)}"
                                                              if cfg.overrides else ""),
        info=t.info, n_train=t.n_train, n_val=t.n_val, device=str(t.ctx.device), world_size=t.ctx.world_size,
        global_batch=t.global_batch, lr=t.lr, steps_per_epoch=t.updates_per_epoch,
        run_folder=str(t.run.path.resolve()),
        resumed=f"{t.resume_path} at epoch {p.epoch + 1}, step {p.step}" if t.resume_path is not None else None,
        signals=preemption.describe(t.recipe.ckpt_every_steps, t.ctx.world_size),
        optimizer_impl=optimizer_impl(t.optimizer)))
    t.run.write_config(task=cfg.task, blueprint=resolved_blueprint(t.model), recipe=t.recipe.model_dump(mode="json"),
                       info=t.info, data=str(cfg.data), model=t.spec.blueprint, world_size=t.ctx.world_size)


def _wrap(t: Training) -> nn.Module:
    """SyncBatchNorm, DistributedDataParallel and ``torch.compile`` around the model, as the recipe asks."""
    note = sync_batchnorm(t.model, t.ctx, t.recipe.sync_bn)
    if note:
        t.rep.message(note)
    train_model: nn.Module = t.model
    if t.ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            t.model, device_ids=[t.ctx.device.index] if t.ctx.device.type == "cuda" else None)
    if t.recipe.compile:
        train_model = torch.compile(train_model)
    return train_model


def build_training(cfg: "TrainConfig", ctx: DistContext, rep: Reporter, run: RunDir,
                   resume_path: Path | None) -> Training:
    """Build every part of the run (and restore them from ``resume_path``), in the order resume relies on."""
    task_cls: type[Task] = task_class(cfg.task)
    ckpt: dict[str, Any] | None = load_checkpoint(resume_path) if resume_path is not None else None
    if ckpt is not None and ckpt.get("task") != cfg.task:
        raise CheckpointError(f"{resume_path} is a {ckpt.get('task')!r} run, not {cfg.task!r}.")
    recipe = load_recipe(task_cls.recipe_class, cfg.recipe_file, cfg.overrides,
                         base=ckpt["recipe"] if ckpt is not None else None)
    task = task_cls(recipe)
    seed_all(recipe.seed + ctx.rank)
    info = task.data_info(Path(cfg.data))
    spec, model = _model(cfg, task, ckpt, info, rep, ctx, resume_path)
    parts = _data(task, Path(cfg.data), model, info, ctx)

    global_batch = recipe.batch_size * recipe.accum_steps * ctx.world_size
    lr = recipe.resolved_lr(global_batch)
    optimizer = create_optimizer(model, recipe, lr)
    scheduler = create_scheduler(optimizer, recipe, parts["updates_per_epoch"])
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=recipe.amp == "fp16")
    ema = None
    if recipe.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema_decay)
    task.setup_training(model, info)
    t = Training(cfg=cfg, ctx=ctx, rep=rep, run=run, task=task, recipe=recipe, info=info, spec=spec, model=model,
                 optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema, global_batch=global_batch, lr=lr,
                 resume_path=resume_path, **parts)
    if ckpt is not None:
        _restore(t, ckpt)
    else:
        run.truncate_after(0, 0)  # rows of an earlier attempt that failed before its first checkpoint
    scheduler.step_update(num_updates=t.progress.step)
    _announce(t)
    t.train_model = _wrap(t)
    return t
