"""One sweep from start to end: expand and validate the grid, cost every variant, train what is not finished,
tabulate and plot. The CLI (``spmkit sweep``) only parses options into these objects and renders.

Folder layout::

    SWEEP/.lock             held while a sweep writes here (spmkit.sweep.lock)
    SWEEP/sweep.yaml        the sweep as run (base, axes, recipe, seeds)
    SWEEP/profile.json      profiler results by settings and variant (re-used by the next run)
    SWEEP/runs/NAME/        one spmkit run folder per variant and seed (+ result.json)
    SWEEP/runs/NAME.console.log  the training process's console
    SWEEP/results.csv  results.md  METRIC_vs_{gmacs,latency,params}.png
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from spmkit.io.atomic import write_text_atomic
from spmkit.io.output_paths import Outputs
from spmkit.sweep.cost import MetaCost, ProfileSettings, profile_variants, validate
from spmkit.sweep.errors import SweepError
from spmkit.sweep.grid import Grid, Run, expand, runs_of
from spmkit.sweep.lock import SweepLock
from spmkit.sweep.results import Table, build_table, csv_text, markdown
from spmkit.sweep.spec import SweepSpec
from spmkit.sweep.run_job import RunJob, TrainSettings, finished_metrics, read_result

Mode = Literal["dry-run", "profile-only", "train"]


@dataclass
class SweepOptions:
    """How to run a sweep (not what it varies: that is the ``SweepSpec``)."""

    mode: Mode = "train"
    output: Path | None = None
    data: Path | None = None
    device: str = "auto"
    profile: bool = False  # also profile when training (always with profile-only)
    profile_settings: ProfileSettings = field(default_factory=ProfileSettings)
    jobs: int = 1
    gpus_per_run: int = 1
    executor: Literal["local", "slurm", "submitit-local"] = "local"
    partition: str | None = None
    time_min: int = 24 * 60
    cpus_per_run: int | None = None
    command: str | None = None  # shown in results.md
    force: bool = False  # replace files in ``output`` that spmkit sweep did not write (spmkit.io.output_paths)


@dataclass
class SweepOutcome:
    grid: Grid
    costs: dict[str, MetaCost]
    table: Table
    skipped: list[str] = field(default_factory=list)  # run folders already finished
    trained: list[str] = field(default_factory=list)  # run folders trained (or resumed) by this call
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run folder, log)
    files: list[Path] = field(default_factory=list)


def _primary_metric(task: str) -> tuple[str, bool]:
    import spmkit.tasks  # noqa: F401  (registers the tasks)
    from spmkit.io.user_code import task_class

    cls = task_class(task)
    return cls.best_metric, cls.best_mode == "max"


def _check(spec: SweepSpec, opts: SweepOptions) -> None:
    if opts.mode != "dry-run" and opts.output is None:
        raise SweepError("give --output SWEEP: the folder for the run folders and results.")
    if opts.mode == "train":
        if opts.data is None:
            raise SweepError("training needs --data DIR (ImageNet layout); or cost the variants with "
                             "--profile-only or --dry-run.")
        if not Path(opts.data).is_dir():
            raise SweepError(f"--data {opts.data}: no such folder.")
        import spmkit.tasks  # noqa: F401  (registers the tasks)
        from spmkit.io.user_code import task_class

        task_class(spec.task)  # an unknown task: the registry's error, before anything runs
    if opts.executor != "local" and opts.mode != "train":
        raise SweepError(f"--executor {opts.executor} submits training runs; {opts.mode} runs on this machine.")


def _check_recipes(spec: SweepSpec, grid: Grid) -> None:
    """Move variants whose recipe overrides do not validate to ``grid.invalid``."""
    import spmkit.tasks  # noqa: F401
    from spmkit.tasks.recipe import load_recipe
    from spmkit.errors import SpmkitError
    from spmkit.io.user_code import task_class

    cls = task_class(spec.task).recipe_class
    for v in list(grid.valid):
        try:
            load_recipe(cls, spec.recipe, list(v.recipe_overrides))
        except SpmkitError as err:
            grid.valid.remove(v)
            grid.invalid.append((v, " ".join(str(err).split())))
    grid.invalid.sort(key=lambda item: item[0].index)


def _fit_batch_to_data(spec: SweepSpec, opts: SweepOptions, say: Callable[[str], None]) -> SweepSpec:
    """Classification on a folder smaller than one batch of the recipe (a first try on a few images): lower
    ``batch_size`` to what the folder holds, and say so. A ``batch_size`` the sweep sets is kept as given."""
    if spec.task != "classification" or "batch_size" in spec.recipe_overrides or "batch_size" in spec.recipe_axes:
        return spec
    from spmkit.data.imagenet import find_classes, scan_split
    from spmkit.tasks.recipe import load_recipe
    from spmkit.sweep.spec import value_text
    from spmkit.tasks.classification import ClassificationRecipe

    overrides = [f"{k}={value_text(v)}" for k, v in spec.recipe_overrides.items()]
    recipe = load_recipe(ClassificationRecipe, spec.recipe, overrides)
    split = Path(opts.data) / "train"  # type: ignore[arg-type]
    images = len(scan_split(split, find_classes(split)))
    per_step = recipe.accum_steps * opts.gpus_per_run
    if images >= recipe.batch_size * per_step:
        return spec
    batch = max(1, images // per_step)
    batch -= batch % 2 if batch > 1 else 0  # mixup / CutMix pair images within a batch: keep it even
    say(f"note: {split} has {images} images, fewer than one batch of {recipe.batch_size}: training with "
        f"batch_size={batch} (give --batch-size to choose)")
    return spec.model_copy(update={"recipe_overrides": {**spec.recipe_overrides, "batch_size": batch}})


def _profiles(folder: Path, variants: list, settings: ProfileSettings,
              say: Callable[[str], None], outs: Outputs) -> dict[str, dict[str, Any]]:
    """Profile the variants not profiled before with the same settings (``SWEEP/profile.json``)."""
    path = folder / "profile.json"
    try:
        cache: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        cache = {}  # damaged (e.g. a kill before atomic writes): measure again
    if not isinstance(cache, dict):
        cache = {}
    known = cache.setdefault(settings.key(), {})
    todo = list({v.blueprint_key: v for v in variants if v.blueprint_key not in known}.values())  # one per model
    if todo:
        say(f"profiling {len(todo)} variant(s) on {settings.device}")
        known.update(profile_variants(todo, settings, say))
        with outs:
            outs.write_text(path, json.dumps(cache, indent=2))
    return {v.blueprint_key: known[v.blueprint_key] for v in variants}


def run_sweep(spec: SweepSpec, opts: SweepOptions, progress: Callable[[str], None] | None = None,
              on_grid: Callable[[Grid], None] | None = None) -> SweepOutcome:
    """Run ``spec``; see the module docstring for what lands where. ``on_grid`` sees the validated grid
    before anything runs (to list invalid variants up front). Raises ``SweepError`` on bad input."""
    say = progress or (lambda _m: None)
    _check(spec, opts)
    files = {f: str(Path(getattr(spec, f)).resolve()) for f in ("base", "recipe")
             if getattr(spec, f) and Path(getattr(spec, f)).is_file()}
    spec = spec.model_copy(update=files)  # paths that mean the same to every process and SLURM node
    if opts.mode == "train":
        spec = _fit_batch_to_data(spec, opts, say)
    variants = expand(spec)
    grid, costs = validate(variants, say)
    if opts.mode == "train":
        _check_recipes(spec, grid)
    if on_grid is not None:
        on_grid(grid)
    if not grid.valid:
        reasons = "\n".join(f"  - {v.label}: {why}" for v, why in grid.invalid)
        raise SweepError(f"no variant of the sweep is valid:\n{reasons}")
    if opts.mode == "dry-run":
        return SweepOutcome(grid, costs, build_table(grid.valid, grid.invalid, costs, {}, {}, {}))

    out = Path(opts.output)  # type: ignore[arg-type]
    outs = _claim_outputs(spec, opts, out)  # before the folder is created or anything is written
    lock = SweepLock(out).acquire()
    try:
        return _run_locked(spec, opts, grid, costs, out, lock, say, outs)
    finally:
        lock.release()


def _claim_outputs(spec: SweepSpec, opts: SweepOptions, out: Path) -> Outputs:
    """Check every file this sweep writes in ``out``: none may be an input, and one that exists must have been
    written by spmkit sweep (unless ``opts.force``); see ``spmkit.io.output_paths``."""
    inputs = [p for p in (spec.base, spec.recipe, opts.data) if p and Path(p).exists()]
    outs = Outputs("sweep", inputs=inputs, force=opts.force)
    names = ["sweep.yaml", "results.csv", "results.md"]
    if opts.mode == "profile-only" or opts.profile:
        names.append("profile.json")
    if opts.mode == "train":
        from spmkit.sweep.charts import plot_names

        names += plot_names(_primary_metric(spec.task)[0])
    for name in names:
        outs.claim(out / name, "--output")
    return outs


def _run_locked(spec: SweepSpec, opts: SweepOptions, grid: Grid, costs: dict[str, MetaCost], out: Path,
                lock: SweepLock, say: Callable[[str], None], outs: Outputs) -> SweepOutcome:
    with outs:
        outs.write_text(out / "sweep.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    profiles: dict[str, dict[str, Any]] = {}
    if opts.mode == "profile-only" or opts.profile:
        settings = opts.profile_settings
        if opts.mode == "train" and settings.device != opts.device and opts.device != "auto":
            settings = ProfileSettings(**{**settings.__dict__, "device": opts.device})
        profiles = _profiles(out, grid.valid, settings, say, outs)

    outcome = SweepOutcome(grid, costs, Table([], [], [], [], ""))
    run_results: dict[int, list[dict[str, Any]]] = {}
    planned: dict[int, int] = {}
    if opts.mode == "train":
        data = str(Path(opts.data).resolve())  # type: ignore[arg-type]
        settings_t = TrainSettings(data=data, task=spec.task, recipe=spec.recipe, device=opts.device,
                                   gpus=opts.gpus_per_run)
        pending: list[RunJob] = []
        index_of: dict[str, int] = {}
        for v in grid.valid:
            runs: list[Run] = runs_of(v, spec, data)
            planned[v.index] = len(runs)
            for run in runs:
                folder = out / "runs" / run.folder_name
                index_of[str(folder.resolve())] = v.index
                result = read_result(folder)
                if result is None and finished_metrics(folder) is not None:
                    result = {"status": "ok", **finished_metrics(folder)}  # type: ignore[dict-item]
                    write_text_atomic(folder / "result.json", json.dumps(result, indent=2))  # spmkit's run folder
                if result is not None:
                    run_results.setdefault(v.index, []).append(result)
                    outcome.skipped.append(run.folder_name)
                    continue
                pending.append(RunJob(str(folder.resolve()), v.base, v.blueprint_overrides, run.recipe_overrides, settings_t))
        say(f"{len(pending)} run(s) to train, {len(outcome.skipped)} finished before (skipped)")

        def done(job: RunJob, result: dict[str, Any]) -> None:
            name = Path(job.folder).name
            run_results.setdefault(index_of[job.folder], []).append(result)
            if result.get("status") == "ok":
                outcome.trained.append(name)
                say(f"finished {name}")
            else:
                outcome.failed.append((name, str(result.get("log"))))
                say(f"FAILED {name} (exit code {result.get('returncode')}); see {result.get('log')}")

        if opts.executor == "local":
            from spmkit.sweep.executors import run_local

            run_local(pending, opts.jobs, opts.gpus_per_run, done, pass_fds=(lock.fd,) if lock.fd else ())
        else:
            from spmkit.sweep.executors import run_submitit

            run_submitit(pending, out / "submitit", done, cluster="slurm" if opts.executor == "slurm" else "local",
                         partition=opts.partition, time_min=opts.time_min, gpus_per_run=opts.gpus_per_run,
                         cpus_per_run=opts.cpus_per_run)

    table = build_table(grid.valid, grid.invalid, costs, profiles, run_results, planned, outcome.failed)
    outcome.table = table
    title = f"sweep {spec.name or Path(spec.base).stem}"
    with outs:
        outcome.files.append(outs.write_text(out / "results.csv", csv_text(table)))
        outcome.files.append(outs.write_text(out / "results.md", markdown(table, title, opts.command)))
    if opts.mode == "train":
        from spmkit.sweep.charts import plot_sweep

        metric, maximize = _primary_metric(spec.task)
        outcome.files += plot_sweep(table.rows, table.axes, metric, out, title, maximize, outs)
    return outcome
