"""Every read of an spmkit checkpoint verifies its checksum, whatever the command (issue 22, class 3): a run
checkpoint with flipped bytes in its weights is refused by every path that reads it, with one paragraph."""

from __future__ import annotations

import re
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

import spmkit
from spmkit.cli.app import app
from spmkit.errors import CheckpointError

runner = CliRunner()
SPMKIT = Path(spmkit.__file__).parent
#: the only modules that may call torch.load: both verify an spmkit checkpoint's checksum
READERS = {"io/checkpoint.py", "convert/reader.py"}


def flip_weight_bytes(src: Path, dst: Path) -> None:
    """Copy ``src`` and invert 4 bytes in the middle of its largest tensor (the zip CRC is not checked by torch)."""
    shutil.copyfile(src, dst)
    with zipfile.ZipFile(dst) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(dst, "r+b") as f:
        f.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
        pos = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(pos)
        data = f.read(4)
        f.seek(pos)
        f.write(bytes(b ^ 0xFF for b in data))


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(data, run folder, BAD.pt)``: a one-epoch run and its last.pt with damaged weights."""
    root = tmp_path_factory.mktemp("ckreads")
    data = make_imagefolder(root / "data", classes=2, train_per_class=2, val_per_class=1)
    run = root / "run"
    res = runner.invoke(app, train_args(data, run, 1, 4))
    assert res.exit_code == 0, res.output
    flip_weight_bytes(run / "last.pt", root / "BAD.pt")
    return data, run, root / "BAD.pt"


def _one_paragraph_corrupt(res) -> None:
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out and "\n\n" not in out and "is corrupt" in out, out


COMMANDS = {
    "train --init": lambda d, bad, tmp: train_args(d, tmp / "r", 1, 4, "--init", str(bad)),
    "train --resume": lambda d, bad, tmp: train_args(d, tmp / "r", 2, 4, "--resume"),
    "eval --weights": lambda d, bad, tmp: ["eval", "--data", str(d), "-b", "tiny_pvt", "--set", "img_size=32",
                                           "--weights", str(bad), "--workers", "0"],
    "eval --checkpoint": lambda d, bad, tmp: ["eval", "--data", str(d), "-c", str(bad), "--workers", "0"],
    "convert": lambda d, bad, tmp: ["convert", str(bad), "-b", "tiny_pvt", "-o", str(tmp / "c.pt")],
    "predict": lambda d, bad, tmp: ["predict", str(next((d / "train").rglob("*.png"))), "-c", str(bad)],
    "visualize --checkpoint": lambda d, bad, tmp: ["visualize", "features", "-c", str(bad), "-o", str(tmp / "v.png")],
    "export": lambda d, bad, tmp: ["export", str(bad), "-o", str(tmp / "m.onnx"), "--no-dynamo"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_damaged_checkpoint(command: str, bad, tmp_path: Path):
    data, run, damaged = bad
    if command == "train --resume":
        shutil.copytree(run, tmp_path / "r")
        shutil.copyfile(damaged, tmp_path / "r" / "last.pt")
    _one_paragraph_corrupt(runner.invoke(app, COMMANDS[command](data, damaged, tmp_path)))
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "v.png").exists() and not (tmp_path / "m.onnx").exists()


LIBRARY = {
    "create_model(checkpoint_path=)": lambda bad: spmkit.create_model("tiny_pvt", checkpoint_path=bad),
    "timm pretrained file": lambda bad: __import__("timm").create_model(
        "spmkit_tiny_pvt", pretrained=True, pretrained_cfg_overlay=dict(file=str(bad))),
    "load_weights": lambda bad: __import__("spmkit.convert", fromlist=["load_weights"]).load_weights(
        spmkit.create_model("tiny_pvt"), bad, strict=False),
    "read_checkpoint": lambda bad: __import__("spmkit.convert", fromlist=["read_checkpoint"]).read_checkpoint(bad),
    "load_checkpoint": lambda bad: __import__("spmkit.io.checkpoint", fromlist=["x"]).load_checkpoint(bad),
}


@pytest.mark.parametrize("path", sorted(LIBRARY))
def test_every_library_reader_refuses_a_damaged_checkpoint(path: str, bad):
    with pytest.raises(CheckpointError, match="is corrupt"):
        LIBRARY[path](bad[2])


def test_the_undamaged_checkpoint_still_loads(bad):
    from spmkit.convert import read_checkpoint

    assert read_checkpoint(bad[1] / "last.pt")


def test_torch_load_is_called_only_by_the_verifying_readers():
    """A new ``torch.load`` elsewhere would read spmkit checkpoints without the checksum: route it through
    ``spmkit.io.checkpoint.load_checkpoint`` or ``spmkit.convert.read_checkpoint`` instead."""
    callers = {str(p.relative_to(SPMKIT)) for p in SPMKIT.rglob("*.py")
               if re.search(r"torch\.load\(|\bload\(\s*path, map_location", p.read_text())}
    assert callers <= READERS, callers - READERS
