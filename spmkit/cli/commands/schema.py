"""``spmkit schema``: the blueprint JSON Schema, with every registered component and its parameters."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors


@user_errors
def schema(
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT even if spmkit schema did not write it.")] = False,
) -> None:
    """Print the JSON Schema of blueprints (point your editor's YAML plugin at it for autocompletion)."""
    from spmkit.blueprint.jsonschema import blueprint_json_schema

    from spmkit.io.output_paths import Outputs

    outs = Outputs("schema", force=force)
    if output:
        outs.claim(output)
    text = json.dumps(blueprint_json_schema(), indent=2)
    if output:
        with outs:
            outs.write_text(output, text + "\n")
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
