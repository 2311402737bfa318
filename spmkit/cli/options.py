"""Options shared by several commands, defined once so that they mean the same thing everywhere.

Vocabulary: ``--set/-s`` changes the *recipe* (train, eval, predict), ``--model-set/-m`` the *blueprint*
(every command that builds a model), ``--device`` picks the device. build / profile / convert have no
recipe and still accept ``--set`` for the blueprint (hidden, the spelling of earlier versions); so does
``--devices`` for ``--device``. ``tests/test_cli_vocabulary.py`` checks every command's help against these.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

RecipeSetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="Override a recipe field, e.g. --set lr=1e-3 (repeatable)."),
]
ModelSetOption = Annotated[
    Optional[list[str]],
    typer.Option("--model-set", "-m", metavar="KEY=VALUE",
                 help="Override a blueprint field, e.g. --model-set merging.type=spm (repeatable)."),
]
#: the earlier spelling of --model-set in commands that have only a blueprint (build, profile, convert)
BlueprintSetAlias = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", hidden=True, metavar="KEY=VALUE", help="Same as --model-set here."),
]
DeviceOption = Annotated[
    Optional[str],
    typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or cuda:N (auto: cuda when available)."),
]
#: the earlier spelling of --device
DevicesAlias = Annotated[Optional[str], typer.Option("--devices", hidden=True, help="Same as --device.")]
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON instead of a table.")]
AmpOption = Annotated[
    Optional[str], typer.Option("--amp", metavar="bf16|fp16|none", help="Autocast dtype: bf16, fp16 or none (fp32).")]
SeedOption = Annotated[Optional[int], typer.Option("--seed", min=0, max=2**32 - 1, help="Random seed (data order, augmentation, init).")]
BlueprintArg = Annotated[str, typer.Argument(help="Blueprint YAML path or builtin name (e.g. swin_t).")]

#: kept for code written against the old name (a blueprint override)
SetOption = ModelSetOption


def model_overrides(model_set: Optional[list[str]], legacy_set: Optional[list[str]] = None) -> list[str]:
    """Blueprint overrides from --model-set and, where the command has no recipe, the old --set."""
    return [*(legacy_set or []), *(model_set or [])]


def pick_device(device: Optional[str], devices: Optional[str], default: str = "auto") -> str:
    """``--device`` or its hidden alias ``--devices``; both with different values is an error."""
    if device is not None and devices is not None and device != devices:
        raise typer.BadParameter(f"--device {device} and --devices {devices} disagree; give --device only.")
    return device or devices or default
