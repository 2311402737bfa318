"""``spmkit sweep``: a grid of blueprint / recipe overrides, costed, profiled, trained and tabulated."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import (DeviceOption, DevicesAlias, JsonOption, ModelSetOption, RecipeSetOption,
                                pick_device)

HELP = """Run an ablation: BASE (a blueprint, or a sweep file such as pvt_tiny_merging) with every combination
of --vary values, each variant validated, costed (parameters, MACs), optionally profiled, trained and
evaluated in its own run folder under --output; results.csv / results.md / plots land there.

Examples:
  spmkit sweep tiny_pvt --vary merging.type=conv,spm --vary stages.1.depth=1,2 --dry-run
  spmkit sweep pvt_tiny_merging --data DIR --output S --jobs 2

A re-run skips finished runs and resumes killed ones from their last.pt.
"""

VaryOption = Annotated[Optional[list[str]], typer.Option(
    "--vary", help="Blueprint axis KEY=V1,V2,... (repeatable; commas inside [..] or {..} do not split).")]


def _merge_axes(into: dict[str, list[Any]], items: list[str] | None, option: str) -> None:
    from spmkit.sweep import SweepError, parse_vary

    for text in items or []:
        key, values = parse_vary(text, option)
        if key in into:
            raise SweepError(f"{option} {key}: this axis is given twice.")
        into[key] = values


def _spec(base: str, new_base, vary, vary_recipe, set_, zip_, seeds, task, recipe, recipe_set, epochs, batch_size):
    from spmkit.io.overrides import split_override
    from spmkit.sweep import SweepError, SweepSpec, find_sweep_file, load_sweep_file

    path = find_sweep_file(base)
    spec = load_sweep_file(path) if path is not None else SweepSpec(base=base)
    data = spec.model_dump()
    if new_base is not None:
        data["base"] = new_base
    _merge_axes(data["axes"], vary, "--vary")
    _merge_axes(data["recipe_axes"], vary_recipe, "--vary-recipe")
    for option, items, target in (("--set", set_, "overrides"), ("--recipe-set", recipe_set, "recipe_overrides")):
        for text in items or []:
            try:
                key, value = split_override(text)
            except ValueError:
                raise SweepError(f"{option} {text!r}: expected KEY=VALUE.") from None
            data[target][key] = value
    for key, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value is not None:
            data["recipe_overrides"][key] = value
    if zip_:
        data["zip"] = True
    if seeds is not None:
        data["seeds"] = seeds
    if task is not None:
        from spmkit.io.user_code import absolute_task

        data["task"] = absolute_task(task)  # SOURCE.py:NAME: the jobs import the same file from any folder
    if recipe is not None:
        data["recipe"] = recipe
    return SweepSpec.model_validate(data)


def _render(outcome, mode: str, json_: bool) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from spmkit.sweep.results import fmt_cell

    t = outcome.table
    if json_:
        typer.echo(json.dumps({"rows": t.rows, "invalid": [{"variant": v.label, "reason": r} for v, r in t.invalid],
                               "failed": [n for n, _ in outcome.failed]}, indent=2, default=str))
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    # the terminal gets the main columns; results.md and results.csv have them all
    hidden = {"train_s", "variant", "input_size", "throughput", "train_step_ms", "peak_memory_mib",
              "train_peak_memory_mib", "val_loss"}
    shown = [c for c in t.columns if not c.endswith("_std") and c not in hidden and c.removeprefix("delta_")
             not in hidden | {"latency_ms"}]
    table = Table(title=f"{len(t.rows)} variant(s); Δ against {t.baseline}", title_justify="left")
    for c in shown:
        table.add_column(("Δ " + c[6:]) if c.startswith("delta_") else c,
                         justify="left" if c in t.axes or c == "status" else "right")
    for row in t.rows:
        cells = []
        for c in shown:
            text = fmt_cell(c, row.get(c))
            std = row.get(c + "_std")
            cells.append(text + (f" ± {std:.2f}" if c in t.metrics and std is not None else ""))
        table.add_row(*cells)
    console.print(table)
    if mode != "dry-run":
        console.print("all columns: results.md / results.csv", highlight=False)
        console.print(f"trained {len(outcome.trained)} run(s), skipped {len(outcome.skipped)} finished; wrote "
                      + ", ".join(str(p) for p in outcome.files), highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("sweep", help=HELP)
    @user_errors
    def sweep(
        base: Annotated[str, typer.Argument(help="Blueprint name/path, or a sweep file (blueprints/sweeps/*.yaml).")],
        vary: VaryOption = None,
        new_base: Annotated[Optional[str], typer.Option(
            "--base", help="Replace a sweep file's base blueprint (e.g. run a paper's sweep on tiny_pvt).")] = None,
        vary_recipe: Annotated[Optional[list[str]], typer.Option(
            "--vary-recipe", help="Recipe axis KEY=V1,V2,... e.g. lr=1e-3,2e-3 (repeatable).")] = None,
        zip_: Annotated[bool, typer.Option("--zip", help="Pair the i-th values of all axes instead of the grid.")] = False,
        set_: ModelSetOption = None,
        seeds: Annotated[Optional[int], typer.Option(min=1, max=1000, help="Train every variant with seeds 0..N-1.")] = None,
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Sweep folder (runs, results).")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="List the grid with parameters and MACs "
                                              "(meta device); nothing is written or trained.")] = False,
        profile_only: Annotated[bool, typer.Option("--profile-only", help="Cost every variant (parameters, "
                                                   "MACs, latency, throughput, memory); no training.")] = False,
        profile: Annotated[bool, typer.Option("--profile", help="Also profile the variants when training.")] = False,
        data: Annotated[Optional[Path], typer.Option(help="Data folder (ImageNet layout) to train on.")] = None,
        task: Annotated[Optional[str], typer.Option(help="classification (default), detection, segmentation.")] = None,
        recipe: Annotated[Optional[str], typer.Option(help="Recipe YAML or builtin name (e.g. cpu_small).")] = None,
        recipe_set: RecipeSetOption = None,
        recipe_set_alias: Annotated[Optional[list[str]], typer.Option(
            "--recipe-set", hidden=True, metavar="KEY=VALUE", help="Same as --set.")] = None,
        epochs: Annotated[Optional[int], typer.Option(min=1, max=100000, help="Shortcut for --set epochs=N.")] = None,
        batch_size: Annotated[Optional[int], typer.Option(min=1, max=65536, help="Shortcut for --set batch_size=N.")] = None,
        device: DeviceOption = None,
        devices: DevicesAlias = None,
        jobs: Annotated[int, typer.Option(min=1, max=1024, help="Runs trained at once on this machine, each on its own devices.")] = 1,
        gpus_per_run: Annotated[int, typer.Option(min=1, max=1024, help="GPUs (DDP processes) per run.")] = 1,
        executor: Annotated[str, typer.Option(help="local (this machine, --jobs), slurm (one submitit job per "
                                              "run) or submitit-local (the slurm path on this machine).")] = "local",
        partition: Annotated[Optional[str], typer.Option(help="SLURM partition.")] = None,
        time: Annotated[int, typer.Option("--time", min=1, max=525600, help="SLURM time limit per run, minutes.")] = 24 * 60,
        cpus_per_run: Annotated[Optional[int], typer.Option(min=1, max=4096, help="SLURM CPUs per run.")] = None,
        profile_batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Profiler batch for throughput and memory.")] = 8,
        repeats: Annotated[int, typer.Option(min=1, max=100000, help="Profiler timed calls per variant.")] = 10,
        warmup: Annotated[int, typer.Option(min=0, max=10000, help="Profiler untimed calls per variant.")] = 2,
        memory: Annotated[bool, typer.Option(help="Profile peak memory (CPU: in a fresh subprocess).")] = True,
        json_: JsonOption = False,
        force: Annotated[bool, typer.Option("--force", help="Replace files in --output (results.csv, results.md, "
                                                         "sweep.yaml, ...) that spmkit sweep did not write.")] = False,
    ) -> None:
        from spmkit.cli.errors import err_console
        from spmkit.sweep import ProfileSettings, SweepError, SweepOptions, run_sweep

        device = pick_device(device, devices)  # where runs train and variants are profiled
        recipe_set = [*(recipe_set_alias or []), *(recipe_set or [])]
        if dry_run and profile_only:
            raise SweepError("--dry-run and --profile-only exclude each other.")
        if executor not in ("local", "slurm", "submitit-local"):
            raise SweepError(f"--executor {executor!r}: choose local, slurm or submitit-local.")
        spec = _spec(base, new_base, vary, vary_recipe, set_, zip_, seeds, task, recipe, recipe_set, epochs, batch_size)
        if profile_only and data is not None:  # a data folder means training; keep the profile columns too
            err_console.print("note: --data given, so the variants are trained as well as profiled "
                              "(--profile-only with --data acts as --profile).", markup=False)
            profile_only, profile = False, True
        mode = "dry-run" if dry_run else ("profile-only" if profile_only else "train")
        prof_device = device
        if device == "auto":
            import torch

            prof_device = "cuda" if torch.cuda.is_available() else "cpu"
        opts = SweepOptions(
            mode=mode, output=output, data=data, device=device, profile=profile,  # type: ignore[arg-type]
            profile_settings=ProfileSettings(prof_device, profile_batch_size, warmup, repeats, memory=memory),
            jobs=jobs, gpus_per_run=gpus_per_run, executor=executor, partition=partition,  # type: ignore[arg-type]
            time_min=time, cpus_per_run=cpus_per_run, force=force,
            command=("spmkit sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:])
                     if sys.argv[1:2] == ["sweep"] else None))  # the command line, when run as `spmkit sweep`

        def on_grid(grid) -> None:
            n_runs = len(spec.seed_list())
            err_console.print(f"{len(grid.valid) + len(grid.invalid)} variant(s): {len(grid.valid)} valid"
                              + (f" x {n_runs} seeds" if n_runs > 1 else ""), markup=False)
            for v, reason in grid.invalid:
                err_console.print(f"skipped, invalid: {v.label}: {reason}", markup=False)

        def progress(msg: str) -> None:
            if not json_:
                err_console.print(msg, style="dim", markup=False, highlight=False)

        outcome = run_sweep(spec, opts, progress, on_grid)
        _render(outcome, mode, json_)
        if outcome.failed:
            raise SweepError(f"{len(outcome.failed)} run(s) failed: "
                             + "; ".join(f"{name} (see {log})" for name, log in outcome.failed)
                             + ". Re-run the same command to resume them.")
