"""``spmkit visualize KIND``: a PNG of what a model's stages, mixers or merging layers do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import err_console, user_errors
from spmkit.cli.options import DeviceOption, DevicesAlias, JsonOption, ModelSetOption, SeedOption, pick_device

KIND_HELP = "erf, features, attention, slots or offsets"


def register(app: typer.Typer) -> None:
    app.command("visualize", help="Draw a model's receptive fields, features, attention, GLMix slots or DTM "
                                  "offsets as a PNG (from a checkpoint or a fresh blueprint).")(visualize)


@user_errors
def visualize(
    kind: Annotated[str, typer.Argument(help=KIND_HELP)],
    images: Annotated[Optional[list[Path]], typer.Argument(help="images (default: random inputs for erf, a "
                                                                 "built-in synthetic image otherwise)")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG to write")] = Path("visualize.png"),
    blueprint: Annotated[Optional[str], typer.Option("--blueprint", "-b", help="builtin name or YAML path "
                                                                              "(a fresh, seeded model)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="spmkit run checkpoint")] = None,
    compare: Annotated[Optional[list[str]], typer.Option("--compare", help="another blueprint drawn as a row "
                                                                          "below (repeatable)")] = None,
    set_: ModelSetOption = None,
    device: DeviceOption = None,
    devices: DevicesAlias = None,
    size: Annotated[Optional[int], typer.Option("--size", min=8, max=4096, help="input size (default: the model's img_size)")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, max=1000, help="erf: random inputs averaged without IMAGE")] = 2,
    stage: Annotated[Optional[int], typer.Option("--stage", min=1, max=16, help="attention/slots/offsets: stage, 1-based")] = None,
    block: Annotated[Optional[str], typer.Option("--block", help="attention/slots: block of the stage, 1-based, "
                                                                "or 'merging' (GLE)")] = None,
    query: Annotated[tuple[float, float], typer.Option("--query", min=0.0, max=1.0, help="attention/offsets: query point Y X as "
                                                                      "fractions of the image (0..1)")] = (0.5, 0.5),
    seed: SeedOption = None,
    json_: JsonOption = False,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT even if spmkit visualize did not write it "
                                                     "(never an input).")] = False,
) -> None:
    """Draw KIND for --blueprint or --checkpoint into -o OUT.png; --json prints the numbers behind it."""
    from spmkit.visualize import Options, visualize as run

    opts = Options(size=size, samples=samples, stage=stage, block=block, query=tuple(query),
                   seed=0 if seed is None else seed)
    result = run(kind, output, blueprint=blueprint, checkpoint=checkpoint, images=list(images or []),
                 compare=list(compare or []), overrides=list(set_ or []), device=pick_device(device, devices), options=opts,
                 force=force)
    for note in result.notes:
        err_console.print(note, markup=False)
    if json_:
        typer.echo(json.dumps(result.data))
        return
    typer.echo(f"{kind}: wrote {result.output}")
    for m in result.data["models"]:
        for s in m.get("stages", []):
            if s.get("r50") is not None:
                typer.echo(f"  {m['label']:>20} stage {s['stage']}: r50 {s['r50']:6.1f} px  r90 {s['r90']:6.1f} px")
