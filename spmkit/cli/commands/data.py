"""``spmkit data pack|check``: write webdataset shards from a folder; report what a data source holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import JsonOption, SeedOption

data_app = typer.Typer(help="Data sources: pack a folder into webdataset shards, check any source.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


PACK_HELP = ("Pack an ImageNet-layout FOLDER (train/<class>/<image>, val/<class>/<image>) into shuffled webdataset "
             "shards OUT/train-NNNNNN.tar and OUT/val-NNNNNN.tar with a manifest (classes, counts); spmkit train "
             "--data OUT then trains on them with the folder's classes. Files are copied, not re-encoded.")


@data_app.command("pack", help=PACK_HELP)
@user_errors
def pack(
    folder: Annotated[Path, typer.Argument(help="ImageNet-layout folder to pack")],
    output: Annotated[Path, typer.Option("--output", "-o", help="shard folder to write (new, or spmkit shards with --force)")],
    fmt: Annotated[str, typer.Option("--format", help="shard format: wds (webdataset tar shards)")] = "wds",
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, max=10**7, help="images per shard at most")] = 1000,
    shard_mb: Annotated[float, typer.Option("--shard-mb", min=0.001, max=10**6, help="MB per shard at most")] = 1000.0,
    seed: SeedOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing spmkit shard folder.")] = False,
    json_: JsonOption = False,
) -> None:
    from spmkit.data.pack import pack as run_pack
    from spmkit.errors import DataError

    if fmt != "wds":
        raise DataError(f"--format {fmt!r}: the only shard format is wds (webdataset tar shards).")
    res = run_pack(folder, output, shard_size=shard_size, shard_mb=shard_mb, seed=seed or 0, force=force)
    if json_:
        typer.echo(json.dumps({"output": str(res.output), "images": res.counts, "shards": res.shards,
                               "num_classes": res.classes}))
        return
    for split in res.counts:
        typer.echo(f"{split:5} {res.counts[split]:>9} images in {res.shards[split]} shards")
    typer.echo(f"wrote {res.output} ({res.classes} classes)")


CHECK_HELP = ("Decode every image of SOURCE (an ImageNet-layout folder, a webdataset shard folder, hf:NAME[:CONFIG], "
              "hf-stream:NAME[:CONFIG] or a Hugging Face save_to_disk / parquet folder) and report images per split and class and the "
              "unreadable ones.")


@data_app.command("check", help=CHECK_HELP)
@user_errors
def check(
    source: Annotated[str, typer.Argument(help="data source (as for spmkit train --data)")],
    json_: JsonOption = False,
) -> None:
    from spmkit.data.check import check as run_check

    rep = run_check(source)
    if json_:
        typer.echo(json.dumps(rep))
        return
    typer.echo(f"{rep['source']}: {rep['kind']}, {rep['num_classes']} classes "
               f"({', '.join(rep['classes'][:5])}{' ...' if rep['num_classes'] > 5 else ''})")
    for split, r in rep["splits"].items():
        if "error" in r:
            typer.echo(f"{split:5} error: {r['error']}")
            continue
        counts = list(r["per_class"].values())
        typer.echo(f"{split:5} {r['images']:>9} images, {r['unreadable']} unreadable; per class "
                   f"{min(counts) if counts else 0}..{max(counts) if counts else 0}")
        for line in r["unreadable_examples"]:
            typer.echo(f"      unreadable: {line}")
