"""No file replaced that spmkit did not make (issue 22, class 2), walked over every registered command.

For every command that writes: an existing file at an output path that spmkit did not write for that
command is refused without ``--force`` and left byte for byte; an output that is one of the command's
inputs is refused even with ``--force``; a file spmkit wrote for the command is replaced on a re-run; and a
write that fails (an exception in the writer, a full disk) leaves the previous file, or nothing."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Callable

import pytest
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.io.output_paths import MANIFEST, Outputs, OutputPathError, made_by_spmkit

runner = CliRunner()
USER = b"the user's own file\n"

#: commands that write nothing but stdout / stderr
READ_ONLY = {"build", "eval", "list", "data check"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, Path]:
    """A data folder, a one-epoch run and an input image."""
    root = tmp_path_factory.mktemp("outsafe")
    data = make_imagefolder(root / "data", classes=2, train_per_class=2, val_per_class=1)
    run = root / "run"
    res = runner.invoke(app, train_args(data, run, 1, 4))
    assert res.exit_code == 0, res.output
    return {"data": data, "run": run, "ckpt": run / "last.pt", "image": next((data / "train").rglob("*.png"))}


# (arguments writing to ``out``; ``out`` is the file the command would write)
Case = Callable[[dict[str, Path], Path], list[str]]
WRITERS: dict[str, Case] = {
    "convert": lambda e, out: ["convert", str(e["ckpt"]), "-b", "tiny_pvt", "--set", "img_size=32", "-o", str(out)],
    "export": lambda e, out: ["export", "tiny_pvt", "-o", str(out), "--no-dynamo", "--input-size", "32", "32"],
    "visualize": lambda e, out: ["visualize", "features", str(e["image"]), "-b", "tiny_pvt", "--size", "32",
                                 "-o", str(out)],
    "predict": lambda e, out: ["predict", str(e["image"]), "-c", str(e["ckpt"]), "-o", str(out)],
    "plot": lambda e, out: ["plot", str(e["run"]), "--out", str(out.parent)],
    "profile": lambda e, out: ["profile", "tiny_pvt", "--input-size", "32", "--repeats", "1", "--warmup", "0",
                               "--no-memory", "--no-train", "--csv", str(out)],
    "schema": lambda e, out: ["schema", "-o", str(out)],
    "sweep": lambda e, out: ["sweep", "tiny_pvt", "--vary", "stages.1.depth=1,2", "--profile-only", "--repeats", "1",
                             "--warmup", "0", "--no-memory", "--output", str(out.parent)],
    "train": lambda e, out: train_args(e["data"], out.parent, 1, 4),
    "data pack": lambda e, out: ["data", "pack", str(e["data"]), "--format", "wds", "-o", str(out.parent)],
}
#: the name of the output file each case writes (in its own folder)
OUT_NAME = {"convert": "w.pt", "export": "m.onnx", "visualize": "v.png", "predict": "p.png", "plot": "loss.png",
            "profile": "rows.csv", "schema": "schema.json", "sweep": "results.csv", "train": "results.csv",
            "data pack": "train-000000.tar"}
#: cases cheap enough to run to the end twice (the second run replaces spmkit's own file)
RERUN = ["export", "plot", "schema", "visualize"]


def test_every_registered_command_is_classified():
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    names |= {f"{g.name} {c.name or c.callback.__name__}" for g in app.registered_groups
              for c in g.typer_instance.registered_commands}
    assert names == set(WRITERS) | READ_ONLY, "classify the new command: does it write files? add a case here"


def _refused(res, *needles: str) -> str:
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert out and "Traceback" not in out, out
    for n in needles:
        assert n in out, out
    return out


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_users_file_is_refused_without_force(command: str, env, tmp_path: Path):
    out = tmp_path / "o" / OUT_NAME[command]
    out.parent.mkdir()
    out.write_bytes(USER)
    _refused(runner.invoke(app, WRITERS[command](env, out)), str(out.parent))
    assert out.read_bytes() == USER
    assert not [p for p in out.parent.iterdir() if p != out and p.name != ".lock"], list(out.parent.iterdir())


INPUT_AS_OUTPUT: dict[str, Callable[[dict[str, Path], Path], tuple[list[str], Path]]] = {
    "convert": lambda e, t: (WRITERS["convert"](e, e["ckpt"]), e["ckpt"]),
    "export": lambda e, t: (["export", str(e["ckpt"]), "-o", str(e["ckpt"])], e["ckpt"]),
    "visualize": lambda e, t: (WRITERS["visualize"](e, e["image"]), e["image"]),
    "visualize --checkpoint": lambda e, t: (["visualize", "features", "-c", str(e["ckpt"]), "-o", str(e["ckpt"])],
                                            e["ckpt"]),
    "predict": lambda e, t: (WRITERS["predict"](e, e["image"]), e["image"]),
    "predict checkpoint": lambda e, t: (WRITERS["predict"](e, e["ckpt"]), e["ckpt"]),
    "profile": lambda e, t: _profile_yaml(t),
}


def _profile_yaml(tmp: Path) -> tuple[list[str], Path]:
    from spmkit.blueprint.loader import load_blueprint  # a blueprint file that --csv then names

    bp = tmp / "bp.yaml"
    bp.write_text("extends: tiny_pvt\n")
    load_blueprint(str(bp))
    return WRITERS["profile"]({}, bp)[:1] + [str(bp)] + WRITERS["profile"]({}, bp)[2:], bp


@pytest.mark.parametrize("case", sorted(INPUT_AS_OUTPUT))
def test_an_input_is_never_an_output_even_with_force(case: str, env, tmp_path: Path):
    args, victim = INPUT_AS_OUTPUT[case](env, tmp_path)
    before = victim.read_bytes()
    _refused(runner.invoke(app, [*args, "--force"]), "input")
    assert victim.read_bytes() == before


@pytest.mark.parametrize("command", RERUN)
def test_spmkits_own_output_is_replaced_and_an_edited_one_is_not(command: str, env, tmp_path: Path):
    out = tmp_path / OUT_NAME[command]
    for _ in range(2):
        res = runner.invoke(app, WRITERS[command](env, out))
        assert res.exit_code == 0, res.output
        assert made_by_spmkit(out, command)
    with open(out, "ab") as f:
        f.write(b"edited")  # the user changed it: no longer spmkit's to replace
    _refused(runner.invoke(app, WRITERS[command](env, out)), "--force")
    assert out.read_bytes().endswith(b"edited")
    res = runner.invoke(app, [*WRITERS[command](env, out), "--force"])
    assert res.exit_code == 0, res.output and made_by_spmkit(out, command)


def test_sweep_refuses_each_file_of_a_users_folder(env, tmp_path: Path):
    """The issue's case: sweep --output U where U holds the user's results.csv, results.md or sweep.yaml."""
    for name in ("results.md", "sweep.yaml"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_bytes(USER)
        _refused(runner.invoke(app, WRITERS["sweep"](env, folder / "x")), name)
        assert (folder / name).read_bytes() == USER


# ----------------------------------------------------------------------------- atomic writes
def test_a_failing_writer_leaves_the_previous_file_and_no_temporary(tmp_path: Path):
    out = tmp_path / "a.txt"
    with Outputs("t") as outs:
        outs.write_text(out, "first")

    def half(f):
        f.write(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        with Outputs("t") as outs:
            outs.write(out, half)
    assert out.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "a.txt"]


def test_a_full_disk_is_one_paragraph_and_leaves_nothing(tmp_path: Path, monkeypatch):
    from spmkit.io.atomic import WriteError

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match="disk is full"):
        Outputs("t").write_text(tmp_path / "b.txt", "data")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_nothing(tmp_path: Path, monkeypatch):
    import spmkit.export.exporter as ex

    def crash(src, x, output, *a):
        Path(output).write_bytes(b"truncated")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex, "_export_onnx_torchscript", crash)
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, WRITERS["export"]({}, out))
    assert res.exit_code == 2 and "disk is full" in res.output, res.output
    assert list(tmp_path.iterdir()) == []


def test_the_manifest_is_not_an_output_and_a_damaged_one_protects(tmp_path: Path):
    with pytest.raises(OutputPathError, match="list of files spmkit wrote"):
        Outputs("t", force=True).claim(tmp_path / MANIFEST)
    with Outputs("t") as outs:
        outs.write_text(tmp_path / "c.txt", "x")
    assert made_by_spmkit(tmp_path / "c.txt", "t") and not made_by_spmkit(tmp_path / "c.txt", "other")
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(OutputPathError, match="--force"):
        Outputs("t").claim(tmp_path / "c.txt")
    doc = {"format": "spmkit-outputs", "files": {"c.txt": {"purpose": "t", "size": 1, "sha256": "0" * 64}}}
    (tmp_path / MANIFEST).write_text(json.dumps(doc))  # a forged entry does not match the content
    with pytest.raises(OutputPathError):
        Outputs("t").claim(tmp_path / "c.txt")
