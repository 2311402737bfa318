"""``spmkit convert``: timm weights -> an spmkit state_dict for a blueprint."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import BlueprintSetAlias, ModelSetOption, model_overrides


@user_errors
def convert(
    checkpoint: Annotated[str, typer.Argument(help="timm checkpoint (.pth/.pt/.safetensors) of swin_* or pvt_v2_*.")],
    blueprint: Annotated[str, typer.Option("--blueprint", "-b", help="Target blueprint (path or builtin name).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the spmkit state_dict (.pt).")],
    family: Annotated[Optional[str], typer.Option(help="swin or pvt_v2 (detected when omitted).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail unless every parameter is loaded.")] = False,
    model_set: ModelSetOption = None,
    set_: BlueprintSetAlias = None,
) -> None:
    """Convert timm weights for BLUEPRINT; parts the source lacks (e.g. SPM layers) keep a fresh init."""
    from spmkit.convert import load_timm_weights
    from spmkit.engine_io import save_atomic
    from spmkit.factory import create_model

    model = create_model(blueprint, overrides=model_overrides(model_set, set_))
    report = load_timm_weights(model, checkpoint, family=family, strict=strict)
    save_atomic(model.state_dict(), output)
    typer.echo(f"wrote {output}: {len(model.state_dict()) - len(report.missing)} tensors loaded, "
               f"{len(report.missing)} freshly initialised, {len(report.unexpected)} unused, "
               f"{len(report.skipped_shape)} skipped (shape)")
    for key in report.missing[:20]:
        typer.echo(f"  initialised: {key}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
