"""``spmkit visualize``'s library side: models and images in, one PNG and the numbers behind it out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from spmkit.errors import SpmkitError
from spmkit.visualize.draw import save_rows
from spmkit.visualize.kind import KINDS, Inputs, Options, require_kind
from spmkit.visualize.inputs import LoadedModel, builtin_image, from_blueprint, from_checkpoint, normalise, read_image


@dataclass
class Result:
    output: Path
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what the user should know (e.g. random inputs)


def make_inputs(kind_random: bool, images: Sequence[str | Path], size: int, samples: int, seed: int,
                model: torch.nn.Module) -> tuple[Inputs, list[str]]:
    """Image files, else random tensors (kinds that average over inputs) or the built-in image."""
    if images:
        rgb = np.stack([read_image(p, size) for p in images])
        return Inputs(normalise(rgb, model), rgb, "images", [Path(p).name for p in images]), []
    if kind_random:
        if samples < 1:
            raise SpmkitError(f"--samples must be at least 1, got {samples}.")
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(samples, 3, size, size, generator=g)
        return Inputs(x, None, "random"), [f"no IMAGE given: using {samples} random inputs of {size}x{size}."]
    rgb = builtin_image(size)[None]
    return (Inputs(normalise(rgb, model), rgb, "built-in image", ["built-in image"]),
            [f"no IMAGE given: using the built-in synthetic image ({size}x{size})."])


def visualize(
    kind: str,
    output: str | Path,
    *,
    blueprint: str | None = None,
    checkpoint: str | Path | None = None,
    images: Sequence[str | Path] = (),
    compare: Sequence[str] = (),
    overrides: Sequence[str] = (),
    device: str = "auto",
    options: Options | None = None,
    json_output: str | Path | None = None,
    force: bool = False,
) -> Result:
    """Draw ``kind`` for the model (and each ``compare`` blueprint, one row each) into ``output`` (PNG).

    ``json_output`` also writes the returned numbers there. A kind the model lacks raises
    ``KindNotAvailableError`` before anything is computed. Neither output may be an input (an image, the
    checkpoint, a blueprint file); an existing file that ``spmkit visualize`` did not write is replaced only
    with ``force`` (see ``spmkit.io.output_paths``).
    """
    opts = options or Options()
    if (blueprint is None) == (checkpoint is None):
        raise SpmkitError("give either --checkpoint RUN/best.pt or --blueprint NAME, not both or neither.")
    if str(output).lower().endswith((".json", ".jpg", ".jpeg")):
        raise SpmkitError(f"-o {output}: visualize writes a PNG; give a .png path.")
    if checkpoint is not None and overrides:
        raise SpmkitError("--set changes a blueprint; a checkpoint's model is drawn as it was trained.")
    from spmkit.io.output_paths import Outputs

    blueprint_files = [b for b in (blueprint, *compare) if b is not None and Path(b).is_file()]
    outs = Outputs("visualize", inputs=[*images, checkpoint, *blueprint_files], force=force)
    outs.claim(output, "--output")
    if json_output is not None:
        outs.claim(json_output, "--json-output")
    KINDS.get(kind)  # an unknown kind fails before any model is built
    if not all(0.0 <= q <= 1.0 for q in opts.query):
        raise SpmkitError(f"--query Y X takes fractions of the image height and width in 0..1 (0.5 0.5 is the "
                          f"centre); got {opts.query[0]:g} {opts.query[1]:g}.")
    from spmkit.io.devices import resolve_device

    dev = resolve_device(device)
    main: LoadedModel = (from_blueprint(blueprint, overrides, opts.seed) if blueprint is not None
                         else from_checkpoint(checkpoint))  # type: ignore[arg-type]
    k = require_kind(kind, main.model, main.label)
    models = [main]
    for name in compare:
        other = from_blueprint(name, (), opts.seed)
        require_kind(kind, other.model, other.label)
        models.append(other)
    size = opts.size or int(main.model.img_size[0])
    if size < 8:
        raise SpmkitError(f"--size must be at least 8 pixels, got {size}.")
    inputs, notes = make_inputs(k.random_inputs, images, size, opts.samples, opts.seed, main.model)
    inputs.tensor = inputs.tensor.to(dev)
    rows, per_model = [], []
    for m in models:
        m.model.to(dev)
        r, d = k.compute(m.model, m.label, inputs, opts)
        rows += r
        per_model.append(d)
    title = f"{kind}: {' vs '.join(m.label for m in models)} ({inputs.source}, {size}x{size})"
    path = save_rows(rows, output, title, outs)
    data = dict(kind=kind, output=str(path),
                input=dict(source=inputs.source, size=size, count=int(inputs.tensor.shape[0]), images=inputs.names),
                models=per_model)
    if json_output is not None:
        with outs:
            outs.write_text(json_output, json.dumps(data, indent=1))
    return Result(path, data, notes)
