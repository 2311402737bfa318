"""``spmkit data pack``: an ImageNet-layout folder -> shuffled webdataset shards (``train-*.tar``, ``val-*.tar``).

The encoded files are copied as they are (no re-encoding: packing costs reading, not decoding); a file that
does not decode stays in, and is skipped and counted when read, as in the folder. The shards are written
into a temporary folder next to the output and renamed into place at the end, so an interrupted pack
leaves nothing half-written under the output's name. An existing output is replaced only when it is an
spmkit shard folder and ``force`` is given; anything else there is refused.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spmkit.data.imagenet import find_classes, scan_split
from spmkit.data.shards import FORMAT, MANIFEST, SPLITS, _wds
from spmkit.errors import DataError

_SUFFIX = {".jpeg": "jpg"}


@dataclass
class PackResult:
    output: Path
    counts: dict[str, int]
    shards: dict[str, int]
    classes: int


def _check_output(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"{out} exists and is not a folder; choose another -o.")
    if not any(out.iterdir()):
        return
    if not (out / MANIFEST).is_file():
        raise DataError(f"{out} exists and is not an spmkit shard folder (no {MANIFEST}); refusing to write into "
                        f"it. Choose another -o.")
    if not force:
        raise DataError(f"{out} already holds spmkit shards; give --force to replace them.")


def pack(folder: str | Path, output: str | Path, *, shard_size: int = 1000, shard_mb: float = 1000.0,
         seed: int = 0, force: bool = False) -> PackResult:
    """Write ``folder``'s train and val splits as shuffled shards of at most ``shard_size`` samples and
    ``shard_mb`` MB each into ``output`` with a manifest (classes of ``folder/train``, counts)."""
    wds = _wds()
    src, out = Path(folder), Path(output)
    if shard_size < 1 or shard_mb <= 0:
        raise DataError("--shard-size must be at least 1 and --shard-mb positive.")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise DataError(f"write the shards outside the folder being packed ({src}).")
    _check_output(out, force)
    classes = find_classes(src / "train")
    samples = {split: scan_split(src / split, classes) for split in SPLITS}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.packing-", dir=out.parent))
    try:
        manifest = {"format": FORMAT, "version": 1, "classes": classes, "seed": seed, "shard_size": shard_size,
                    "source": str(src), "splits": {}}
        for split in SPLITS:
            order = list(samples[split])
            random.Random(f"pack:{seed}:{split}").shuffle(order)
            shards: list[dict[str, int | str]] = []
            writer, n, size = None, 0, 0
            for i, (path, target) in enumerate(order):
                data = Path(path).read_bytes()
                if writer is None or n >= shard_size or (n and size + len(data) > shard_mb * 1e6):
                    if writer is not None:
                        writer.close()
                        shards[-1]["count"] = n
                    name = f"{split}-{len(shards):06d}.tar"
                    writer = wds.TarWriter(str(tmp / name), encoder=False)
                    shards.append({"file": name, "count": 0})
                    n, size = 0, 0
                suffix = Path(path).suffix.lower()
                writer.write({"__key__": f"{i:09d}", _SUFFIX.get(suffix, suffix[1:]): data,
                              "cls": str(target).encode()})
                n, size = n + 1, size + len(data)
            if writer is not None:
                writer.close()
                shards[-1]["count"] = n
            manifest["splits"][split] = {"count": len(order), "shards": shards}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.replaced-{tmp.name.rsplit('-', 1)[-1]}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PackResult(out, {s: manifest["splits"][s]["count"] for s in SPLITS},
                      {s: len(manifest["splits"][s]["shards"]) for s in SPLITS}, len(classes))
