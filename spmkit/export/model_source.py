"""The model to export: a blueprint (builtin name or YAML, fresh weights) or an spmkit run checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import nn

from spmkit.errors import SpmkitError

CHECKPOINT_SUFFIXES = (".pt", ".pth")


@dataclass
class ExportSource:
    """A model in eval mode (CPU, float32), the input it takes and where it came from."""

    model: nn.Module
    name: str
    in_chans: int
    img_size: tuple[int, int]
    path: Path | None  # the file it was read from (a YAML or a checkpoint), None for a builtin name


def load_source(source: str | Path, overrides: Sequence[str] = ()) -> ExportSource:
    """``source``: a run checkpoint (``.pt``/``.pth``, its EMA-free ``model`` weights) or a blueprint.

    A checkpoint rebuilds the run's model (blueprint, overrides and classes stored in it), as
    ``spmkit eval --checkpoint`` does; only classification runs are exported (a detector or segmentor is
    more than a backbone). A blueprint builds fresh, randomly initialised weights.
    """
    import spmkit

    text = str(source)
    if text.endswith(CHECKPOINT_SUFFIXES):
        model, name = _from_checkpoint(Path(text), overrides)
        path: Path | None = Path(text)
    else:
        model = spmkit.create_model(text, overrides=list(overrides))
        bp = getattr(model, "blueprint", None)
        name = bp.name if bp is not None else Path(text).stem
        path = Path(text) if Path(text).is_file() else None
    model.eval()
    img = getattr(model, "img_size", None) or getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224))[1:]
    return ExportSource(model, name, int(getattr(model, "in_chans", 3)), (int(img[0]), int(img[1])), path)


def _from_checkpoint(path: Path, overrides: Sequence[str]) -> tuple[nn.Module, str]:
    from spmkit.infer.run_model import load_run_model

    if overrides:
        raise SpmkitError("--model-set applies to blueprints; a checkpoint's model is fixed by its run.")

    def classification_only(task_name: str, _spec: object) -> None:
        if task_name != "classification":
            raise SpmkitError(f"{path} is a {task_name!r} run; spmkit export writes classification models and "
                              f"backbones. Export the backbone's blueprint instead.")

    model = load_run_model(path, check=classification_only).model
    name = getattr(getattr(model, "blueprint", None), "name", None) or path.stem
    return model, name
