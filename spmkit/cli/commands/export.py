"""``spmkit export``: write ONNX or an ExportedProgram, re-run the file and compare it with eager PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import SetOption


def register(app: typer.Typer) -> None:
    app.command("export", help="Export a blueprint or run checkpoint to ONNX or a torch.export ExportedProgram, "
                               "then check the file against eager PyTorch.")(export)


@user_errors
def export(
    source: Annotated[str, typer.Argument(help="Builtin blueprint name, blueprint YAML, or run checkpoint (.pt).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (.onnx or .pt2).")],
    format_: Annotated[str, typer.Option("--format", "-f", help="onnx or exported-program.")] = "onnx",
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="Any batch size (checked at another one).")] = False,
    input_size: Annotated[
        Optional[tuple[int, int]], typer.Option("--input-size", min=1, max=4096, help="H W (default: the blueprint's img_size).")
    ] = None,
    opset: Annotated[Optional[int], typer.Option("--opset", min=7, max=100, help="ONNX opset (default: the exporter's).")] = None,
    dynamo: Annotated[bool, typer.Option(
        "--dynamo/--no-dynamo", help="ONNX exporter: torch.export-based (default) or TorchScript (faster, fewer ops).")
    ] = True,
    atol: Annotated[float, typer.Option("--atol", min=0.0, help="Largest allowed absolute difference from eager.")] = 1e-4,
    set_: SetOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT even if spmkit export did not write it "
                                                     "(never the source).")] = False,
) -> None:
    """Export SOURCE to OUTPUT, run the file on a random input and print its largest difference from eager."""
    from spmkit.export import export_model

    r = export_model(source, output, fmt=format_, dynamic_batch=dynamic_batch,  # type: ignore[arg-type]
                     input_size=input_size, opset=opset, dynamo=dynamo, atol=atol, overrides=set_ or [],
                     force=force)
    b, c, h, w = r.input_shape
    batch = "dynamic batch" if r.dynamic_batch else f"batch {b}"
    typer.echo(f"exported {r.name} ({c}x{h}x{w}, {batch}) with {r.exporter} to {r.path} in {r.export_seconds:.1f} s")
    if r.max_abs_diff is None:
        typer.echo("not checked: onnxruntime is not installed (pip install 'spmkit[onnx]')")
        return
    typer.echo(f"max abs difference vs eager PyTorch: {r.max_abs_diff:.3g} "
               f"({r.checked_with}, batch {r.check_batch}, tolerance {r.atol:g})")
