"""Training, the same for every task and for one process or many (see ``spmkit.tasks.base``).

:func:`build_training` (``spmkit.train.setup``) builds the run's parts and :class:`TrainLoop`
(``spmkit.train.loop``) runs them with the hooks of ``spmkit.train.hooks``. One call of :func:`train` per process; under ``torch.distributed.run`` each process trains its shard with
DistributedDataParallel and rank 0 writes the run folder. Resuming restores model, EMA, optimizer,
scheduler, scaler, RNG and the position inside the epoch, so the continued run's optimizer-step counter
and learning rate follow the uninterrupted run exactly (the data order too; random augmentations of the
resumed part are drawn afresh).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from spmkit.io.checkpoint import load_checkpoint
from spmkit.train.distributed import DistContext, cleanup_distributed, init_distributed
from spmkit.train.hooks import FAULT_ENV, Hook, default_hooks
from spmkit.train.loop import TrainLoop
from spmkit.tasks.recipe import load_recipe
from spmkit.train.reporter import FileLog, LogReporter, NullReporter, Reporter, TeeReporter
from spmkit.train.run_dir import LOG, RunDir, probe_lock
from spmkit.train.setup import build_training
from spmkit.errors import CheckpointError, SpmkitError
from spmkit.tasks.base import ModelSpec, Task
from spmkit.io.user_code import task_class

__all__ = ["FAULT_ENV", "TrainConfig", "preflight", "train"]


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
    instead of one per process: task name, run folder / resume, recipe, data folder, blueprint and its size,
    and a distillation teacher (readable, for the data's classes)."""
    task_cls: type[Task] = task_class(cfg.task)
    probe_lock(Path(cfg.output))  # the processes would fail one by one on a folder another run writes
    run = RunDir(cfg.output, enabled=False)
    resume_path = _check_resume(cfg, run)
    ckpt = load_checkpoint(resume_path) if resume_path is not None else None
    recipe = load_recipe(task_cls.recipe_class, cfg.recipe_file, cfg.overrides,
                         base=ckpt["recipe"] if ckpt is not None else None)
    info = task_cls(recipe).data_info(Path(cfg.data))
    if resume_path is None and (cfg.model.blueprint or "").startswith("timm:"):  # issue 22: one paragraph
        from spmkit.timm_models import timm_name

        timm_name(cfg.model.blueprint)
    if resume_path is None and cfg.model.blueprint and not cfg.model.blueprint.startswith("timm:"):
        import spmkit
        from spmkit.builder import check_fits

        check_fits(spmkit.load_blueprint(cfg.model.blueprint, overrides=list(cfg.model.overrides)))
    if getattr(recipe, "teacher", None):  # a teacher for other classes: one message, not one per process
        from spmkit.train.distill import teacher_for

        teacher_for(recipe, ckpt["data_info"] if ckpt is not None else info)


def train(cfg: TrainConfig, reporter: Reporter | None = None, hooks: Sequence[Hook] = ()) -> list[dict[str, Any]]:
    """Train (or continue) a run; returns the metrics rows written by this call (rank 0; others: []).

    ``hooks`` run after the standard ones (:func:`spmkit.train.hooks.default_hooks`) at every point."""
    ctx = init_distributed(cfg.device)
    run = RunDir(cfg.output, enabled=ctx.is_main)
    failed = True
    try:
        run.acquire()  # one writer per run folder (rank 0), before anything is read or written
        rows = _train(cfg, ctx, reporter, run, hooks)
        failed = False
        return rows
    finally:
        run.release(failed=failed)  # a run that failed before writing anything leaves no folder behind
        cleanup_distributed()


def _train(cfg: TrainConfig, ctx: DistContext, reporter: Reporter | None, run: RunDir,
           hooks: Sequence[Hook]) -> list[dict[str, Any]]:
    console: Reporter = (reporter or LogReporter()) if ctx.is_main else NullReporter()
    resume_path = _check_resume(cfg, run)
    if not ctx.is_main:
        return _run(cfg, ctx, console, run, resume_path, hooks)
    rep = TeeReporter(console, FileLog(run.path / LOG))  # everything shown also goes to train.log
    try:
        return _run(cfg, ctx, rep, run, resume_path, hooks)
    except SpmkitError as e:
        rep.error(str(e))
        raise
    finally:
        rep.close()


def _run(cfg: TrainConfig, ctx: DistContext, rep: Reporter, run: RunDir, resume_path: Path | None,
         extra: Sequence[Hook]) -> list[dict[str, Any]]:
    from spmkit.train.distill import distill_hooks

    t = build_training(cfg, ctx, rep, run, resume_path)
    hooks = default_hooks(ctx.is_main, ema=t.ema is not None, fault_step=int(os.environ.get(FAULT_ENV, "0") or 0))
    try:
        return TrainLoop(t, [*distill_hooks(t), *hooks, *extra]).run()  # distillation first: adds to steps.jsonl
    finally:  # loader workers end with the run, also a failed one (they would outlive it otherwise)
        for loader in (t.train_loader, t.val_loader):
            close = getattr(loader, "close", None)
            if callable(close):
                close()
