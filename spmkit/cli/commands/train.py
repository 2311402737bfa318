"""``spmkit train``: train a blueprint on a data folder, on one process or many (torchrun + DDP)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import (AmpOption, DeviceOption, DevicesAlias, ModelSetOption, RecipeSetOption, SeedOption,
                                pick_device)


def register(app: typer.Typer) -> None:
    app.command("train", help="Train a model (ImageNet recipe by default); --gpus N / --nproc N launch DDP.")(train)


@user_errors
def train(
    data: Annotated[Path, typer.Option("--data", help="data folder (ImageNet layout: train/<class>/..., val/<class>/...)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="run folder (metrics, checkpoints)")],
    blueprint: Annotated[Optional[str], typer.Option("--blueprint", "-b", help="blueprint name or YAML path; timm:<name> for a timm model")] = None,
    task: Annotated[str, typer.Option("--task", help="classification, detection, segmentation, or SOURCE:NAME: a task NAME that your file (my_tasks.py:NAME) or module (my_pkg.tasks:NAME) registers")] = "classification",
    recipe: Annotated[Optional[Path], typer.Option("--recipe", help="recipe YAML (fields of the task's recipe)")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="shortcut for --set epochs=N")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="images per process per step")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=0.0, max=1e3, help="absolute lr (default: 5e-4 x global batch / 512)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0, help="data-loader workers per process")] = None,
    init: Annotated[Optional[str], typer.Option("--init", help="start from these weights (spmkit, timm or an official release's checkpoint; converted)")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", help="distil from this teacher: RUN/best.pt, a blueprint (with --teacher-weights) or timm:NAME (with --teacher-weights); shortcut for --set teacher=...")] = None,
    teacher_weights: Annotated[Optional[str], typer.Option("--teacher-weights", help="weights of a blueprint or timm: teacher (shortcut for --set teacher_weights=...)")] = None,
    detector: Annotated[Optional[str], typer.Option("--detector", help="--task detection: mask_rcnn or retinanet (shortcut for --set detector=...)")] = None,
    seed: SeedOption = None,
    amp: AmpOption = None,
    set_: RecipeSetOption = None,
    model_set: ModelSetOption = None,
    device: DeviceOption = None,
    devices: DevicesAlias = None,
    gpus: Annotated[Optional[int], typer.Option("--gpus", min=1, help="GPU processes on this node (DDP)")] = None,
    nproc: Annotated[Optional[int], typer.Option("--nproc", min=1, help="processes on this node (with --device cpu: gloo)")] = None,
    nodes: Annotated[Optional[int], typer.Option("--nodes", min=1, help="number of machines (default: SLURM_NNODES or 1)")] = None,
    node_rank: Annotated[Optional[int], typer.Option("--node-rank", min=0, help="this machine's rank (static rendezvous)")] = None,
    rdzv_endpoint: Annotated[Optional[str], typer.Option("--rdzv-endpoint", help="HOST:PORT of the rendezvous (multi-node)")] = None,
    resume: Annotated[bool, typer.Option("--resume", metavar="", help="continue the run in --output from its last.pt")] = False,
    auto_resume: Annotated[bool, typer.Option("--auto-resume", metavar="", help="continue if --output has last.pt, else start")] = False,
    requeue_signal: Annotated[Optional[str], typer.Option("--requeue-signal", metavar="SIG", help="on this signal (e.g. USR1, with #SBATCH --signal=USR1@90) write last.pt at the next step and requeue the SLURM job; SIGTERM always writes last.pt and stops (exit 75)")] = None,
) -> None:
    from spmkit.train import preemption
    from spmkit.io.devices import check_devices
    from spmkit.train.launch import in_launched_process, launch, plan_launch

    # first, so that a preemption during start-up is not a traceback (docs/slurm.md)
    requeue_signum = preemption.parse_signal(requeue_signal) if requeue_signal else None
    previous = preemption.install(requeue_signum)
    stopped = False
    try:
        if gpus is not None and nproc is not None and gpus != nproc:
            raise typer.BadParameter("give --gpus or --nproc, not both with different counts.")
        devices = pick_device(device, devices)
        if gpus is not None and devices == "cpu":
            raise typer.BadParameter("--gpus conflicts with --device cpu; use --nproc for CPU processes.")
        if blueprint is None and not (resume or auto_resume):
            raise typer.BadParameter("--blueprint is required (except with --resume).")
        device = "cuda" if gpus is not None and devices == "auto" else devices
        # one clear message before anything is built or launched (not one traceback per process)
        check_devices(device, 1 if in_launched_process() else (gpus or nproc or 1),
                      option="--gpus" if gpus is not None else "--device")
        from spmkit.io.user_code import absolute_task

        task = absolute_task(task)  # a task file by absolute path: workers, checkpoints and eval import the same file
        overrides = list(set_ or [])
        for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("workers", workers),
                           ("detector", detector), ("seed", seed), ("amp", amp), ("init", init), ("teacher", teacher),
                           ("teacher_weights", teacher_weights)):
            if value is not None:
                overrides.append(f"{key}={value}")

        import spmkit.tasks  # noqa: F401  (registers the tasks)
        from spmkit.train.trainer import TrainConfig, preflight, train as run_training
        from spmkit.tasks.base import ModelSpec

        cfg = TrainConfig(
            model=ModelSpec(blueprint or "", tuple(model_set or ())), data=data, output=output, task=task,
            recipe_file=recipe, overrides=overrides, device=device,
            resume="yes" if resume else ("auto" if auto_resume else "no"),
        )
        if not in_launched_process():
            plan = plan_launch(gpus or nproc or 1, nodes, node_rank, rdzv_endpoint)
            if plan is not None:
                preflight(cfg)  # one clear message instead of one per process
                args = ["train", "--data", str(data), "--output", str(output), "--task", task, "--device", device]
                if blueprint is not None:
                    args += ["--blueprint", blueprint]
                if recipe is not None:
                    args += ["--recipe", str(recipe)]
                for o in overrides:
                    args += ["--set", o]
                for o in model_set or []:
                    args += ["--model-set", o]
                if resume:
                    args.append("--resume")
                if auto_resume:
                    args.append("--auto-resume")
                if requeue_signal:
                    args += ["--requeue-signal", requeue_signal]
                code = launch(plan, args)  # passes on the signals installed above
                if code == preemption.STOP_EXIT_CODE:  # the processes stopped on a signal; rank 0 said where
                    stopped = True
                    raise typer.Exit(code)
                if code:
                    typer.echo(f"training processes failed (exit code {code}); see their messages above.", err=True)
                    raise typer.Exit(code)
                return

        reporter = None
        if os.environ.get("RANK", "0") == "0":
            if sys.stdout.isatty():  # a terminal: the live display
                from spmkit.cli.training_progress import RichReporter

                reporter = RichReporter()
            else:  # a file, a pipe, a batch job: plain lines every log_every_steps steps
                from spmkit.train.reporter import TextReporter, stdout_writer

                reporter = TextReporter(stdout_writer)
        try:
            run_training(cfg, reporter=reporter)
        except preemption.TrainingStopped as stop:  # last.pt was written at the step it names; not an error
            stopped = True
            raise typer.Exit(stop.exit_code) from None
        finally:
            if reporter is not None:
                reporter.close()  # stop the live display before an error message is printed
    finally:
        preemption.uninstall(previous)
        if stopped:
            preemption.ignore_signals()
