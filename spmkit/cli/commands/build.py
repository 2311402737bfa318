"""``spmkit build BLUEPRINT``: validate a blueprint and show what it builds (shapes, params, MACs)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.blueprint.schema import MAX_IMG_SIZE
from spmkit.cli.options import (BlueprintArg, BlueprintSetAlias, DeviceOption, DevicesAlias, JsonOption,
                                ModelSetOption, model_overrides, pick_device)


def _fmt(n: int, unit: float = 1e6, digits: int = 2) -> str:
    return f"{n / unit:.{digits}f}"


def _forward_check(bp, device: str, size: tuple[int, int]) -> dict:
    """Build ``bp`` with real weights on ``device`` and time one forward pass of one image."""
    import time

    import torch

    from spmkit.factory import create_model
    from spmkit.profile.steps import check_device

    dev = check_device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model = create_model(bp, device=dev).eval()
    x = torch.randn(1, bp.in_chans, *size, device=dev)
    with torch.no_grad():
        t0 = time.perf_counter()
        y = model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        ms = (time.perf_counter() - t0) * 1e3
    return {"device": str(dev), "output_shape": list(y.shape), "forward_ms": round(ms, 2)}


@user_errors
def build(
    blueprint: BlueprintArg,
    model_set: ModelSetOption = None,
    set_: BlueprintSetAlias = None,
    input_size: Annotated[
        Optional[int], typer.Option("--input-size", min=1, max=MAX_IMG_SIZE,
                                    help="Square input size for MACs (default: the blueprint's).")
    ] = None,
    json_: JsonOption = False,
    device: DeviceOption = None,
    devices: DevicesAlias = None,
) -> None:
    """Validate BLUEPRINT, build it on the meta device and show stages, parameters and MACs.

    With --device (e.g. cpu or cuda), also build it there with real weights and run one image through it.
    """
    from rich.console import Console
    from rich.table import Table

    from spmkit.blueprint import load_blueprint
    from spmkit.blueprint.reference import compare_with_reference, describe
    from spmkit.profile.summary import summarize

    bp = load_blueprint(blueprint, model_overrides(model_set, set_))
    s = summarize(bp, (input_size, input_size) if input_size else None)
    dev = pick_device(device, devices, default="")
    forward = _forward_check(bp, dev, tuple(s.input_size)) if dev else None
    if json_:
        typer.echo(json.dumps({**s.to_dict(), **({"forward": forward} if forward else {})}, indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 150)  # logs and pipes: no 80-column wrap
    title = f"{s.name}  ({s.source})" if s.source else s.name
    table = Table(title=title, title_justify="left")
    for col in ("stage", "HxW", "channels", "depth", "heads", "mixer", "merging", "merge M", "merge GMACs",
                "params M", "GMACs"):
        table.add_column(col, justify="right" if col not in ("mixer", "merging", "channels", "HxW") else "left")
    for r in s.stages:
        table.add_row(
            str(r.index + 1), f"{r.resolution[0]}x{r.resolution[1]}",
            f"{r.in_dim}->{r.dim}" if r.index else f"{bp.in_chans}->{r.dim}",
            str(r.depth), str(r.heads or "-"), r.mixer, r.merging,
            _fmt(r.merging_params), _fmt(r.merging_macs, 1e9, 3),
            _fmt(r.params + (s.stem_params if r.index == 0 else 0)),
            _fmt(r.macs + (s.stem_macs if r.index == 0 else 0), 1e9, 3),
        )
    console.print(table)
    console.print(
        f"total: [bold]{s.params:,}[/] parameters ({_fmt(s.params)} M), [bold]{_fmt(s.macs, 1e9, 3)}[/] GMACs "
        f"at {s.input_size[0]}x{s.input_size[1]}; head + final norm {s.head_params:,} parameters."
    )
    console.print("features: " + ", ".join(
        f"{f['module']} ({f['num_chs']} ch, stride {f['reduction']})" for f in s.feature_info))
    if forward:
        console.print(f"forward on {forward['device']}: output {tuple(forward['output_shape'])} "
                      f"in {forward['forward_ms']:.1f} ms (one image, first call)")
    cmp = compare_with_reference(bp, s.params)
    if cmp is not None:
        console.print(describe(cmp), markup=False)


def register(app: typer.Typer) -> None:
    app.command("build")(build)
