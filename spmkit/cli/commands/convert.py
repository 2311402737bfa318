"""``spmkit convert``: an official release's, timm's or spmkit's checkpoint -> an spmkit state_dict."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import BlueprintSetAlias, ModelSetOption, model_overrides


@user_errors
def convert(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint file (.pth/.pt/.bin/.safetensors) or save_pretrained folder.")],
    blueprint: Annotated[str, typer.Option("--blueprint", "-b", help="Target blueprint (path or builtin name).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the spmkit state_dict (.pt).")],
    from_: Annotated[Optional[str], typer.Option("--from", help="Layout of CHECKPOINT (detected when omitted); "
                                                 "see `spmkit list`.")] = None,
    ema: Annotated[bool, typer.Option("--ema", help="Take the checkpoint's EMA weights.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail unless every tensor of both sides is matched; --no-strict "
                                         "keeps a fresh init for parts the file lacks (e.g. SPM layers).")] = True,
    part: Annotated[Optional[str], typer.Option("--part", help="Take one part of a detection/segmentation "
                                                "checkpoint (mmdetection / mmsegmentation 'backbone.*' keys): "
                                                "'backbone'. Neck and head tensors are dropped and counted; the "
                                                "blueprint's classifier keeps its initialisation.")] = None,
    model_set: ModelSetOption = None,
    set_: BlueprintSetAlias = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT even if spmkit convert did not write it (never an input).")] = False,
) -> None:
    """Convert CHECKPOINT for BLUEPRINT; any tensor left unmatched fails the command (unless --no-strict)."""
    from pathlib import Path

    import torch

    from spmkit.blueprint.zoo import layout_hint
    from spmkit.convert import load_weights
    from spmkit.errors import CheckpointError
    from spmkit.factory import create_model
    from spmkit.io.output_paths import Outputs

    outs = Outputs("convert", inputs=[checkpoint, blueprint if Path(blueprint).is_file() else None], force=force)
    outs.claim(output)
    model = create_model(blueprint, overrides=model_overrides(model_set, set_))
    release = model.blueprint.release  # data: which layout this blueprint's release writes
    dropped: dict[str, int] = {}
    try:
        if part is None:
            report = load_weights(model, checkpoint, from_=from_, strict=strict, ema=ema)
        else:
            from spmkit.convert.parts import load_backbone_part, split_part

            if part != "backbone":
                split_part({}, part)  # raises, naming the known parts
            report, dropped = load_backbone_part(model, checkpoint, from_=from_, strict=strict, ema=ema)
    except CheckpointError as err:
        if from_ is not None or release is None:
            raise
        raise CheckpointError(f"{err}{layout_hint(model.blueprint.name, release)}") from None
    if release is not None and report.layout not in (*release.layouts(), "spmkit"):
        typer.echo(f"note: read as layout {report.layout}; {model.blueprint.name}'s release data names "
                   f"{', '.join(release.layouts())}.")
    state = model.state_dict()
    with outs:
        outs.write(output, lambda f: torch.save(state, f))
    if part is not None:
        names = ", ".join(f"{k} {n}" for k, n in sorted(dropped.items())) or "none"
        typer.echo(f"{part} part of {checkpoint}: {sum(dropped.values())} other tensors dropped ({names}); "
                   f"the classifier head keeps its initialisation")
    if report.resized:
        typer.echo(f"resized {len(report.resized)} size-dependent tables to the blueprint's size "
                   f"(e.g. {', '.join(report.resized[:3])})")
    typer.echo(f"wrote {output}: layout {report.layout}, {len(report.loaded)} tensors loaded, "
               f"{len(report.missing)} freshly initialised, {len(report.unexpected)} unused, "
               f"{len(report.skipped_shape)} skipped (shape)")
    for key in (report.missing + report.unexpected + report.skipped_shape)[:20]:
        typer.echo(f"  not loaded: {key}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
