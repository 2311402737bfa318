"""``spmkit plot RUN_DIR``: PNG curves of a training run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors


def register(app: typer.Typer) -> None:
    app.command("plot", help="Write loss, metric (top-1, AP or mIoU) and per-step lr curves of a run folder as PNG files.")(plot)


@user_errors
def plot(
    run_dir: Annotated[Path, typer.Argument(help="run folder written by spmkit train")],
    out: Annotated[Optional[Path], typer.Option("--out", help="folder for the PNGs (default: the run folder)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace PNGs of the same names that spmkit plot did "
                                                     "not write.")] = False,
) -> None:
    from spmkit.train.curves import plot_run

    for path in plot_run(run_dir, out, force=force):
        typer.echo(str(path))
