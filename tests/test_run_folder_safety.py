"""Run folders: non-finite weights never saved, one writer, user files never touched, durable files.

Each test reproduces a class of failure of issue 12 (tiny blueprint, 32 px images, 1 thread).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.io.checkpoint import load_checkpoint, save_checkpoint
from spmkit.train.run_dir import LOCK, MARKER, RunDir, read_jsonl
from spmkit.errors import CheckpointError, SpmkitError

runner = CliRunner()


def one_paragraph(res) -> str:
    """The CLI's failure output: exit 2, no traceback, one paragraph."""
    out = res.output.strip()
    assert res.exit_code == 2, res.output
    assert "Traceback" not in out and out and "\n\n" not in out, out
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data"), classes=2, train_per_class=4, val_per_class=2)


@pytest.fixture(scope="module")
def done_run(data: Path, tmp_path_factory) -> Path:
    """A finished one-epoch run (2 steps) to resume from."""
    run = tmp_path_factory.mktemp("runs") / "good"
    res = runner.invoke(app, train_args(data, run, 1, 4))
    assert res.exit_code == 0, res.output
    return run


def _finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_non_finite_weights_never_overwrite_the_last_good_checkpoint(done_run: Path, data: Path, tmp_path: Path):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(done_run, run)
    # a huge lr: the weights overflow within a few steps; interval checkpoints every step, rare logging
    res = runner.invoke(app, train_args(data, run, 3, 2, "--resume", "--set", "lr=1e30", "--set",
                                        "ckpt_every_steps=1", "--set", "log_every_steps=1000"))
    out = one_paragraph(res)
    assert "step" in out and "last.pt" in out
    ck = load_checkpoint(run / "last.pt")
    assert _finite(ck) and ck["step"] >= 2


def test_second_writer_is_refused_while_the_first_holds_the_folder(done_run: Path, data: Path, tmp_path: Path):
    run = tmp_path / "busy"
    run.mkdir()
    (run / MARKER).write_text("")
    with open(run / LOCK, "a") as held:  # a live writer holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        before = sorted(p.name for p in run.iterdir())
        out = one_paragraph(runner.invoke(app, train_args(data, run, 1, 4)))
        assert "another spmkit process" in out
        assert sorted(p.name for p in run.iterdir()) == before  # nothing written, nothing removed
        # the DDP launcher refuses before starting any process
        out = one_paragraph(runner.invoke(app, [*train_args(data, run, 1, 4), "--devices", "cpu", "--nproc", "2"]))
        assert "another spmkit process" in out
    # --resume of a live run: the lock of the first run's folder
    with open(done_run / LOCK, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        mtime = (done_run / "last.pt").stat().st_mtime_ns
        one_paragraph(runner.invoke(app, train_args(data, done_run, 2, 4, "--resume")))
        assert (done_run / "last.pt").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("dot", [False, True])
def test_folder_with_user_files_is_refused_before_any_write(data: Path, tmp_path: Path, monkeypatch, dot: bool):
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"blueprint.yaml": "my: own\n", "recipe.yaml": "lr: 1\n", "metrics.jsonl": '{"epoch": 1}\n',
             "metrics.csv": "a,b\n"}
    for name, text in files.items():
        (mine / name).write_text(text)
    if dot:
        monkeypatch.chdir(mine)
    out = one_paragraph(runner.invoke(app, train_args(data, Path(".") if dot else mine, 1, 4)))
    assert "not an spmkit run" in out
    assert sorted(p.name for p in mine.iterdir()) == sorted(files)
    assert all((mine / n).read_text() == t for n, t in files.items())


def test_failed_command_leaves_no_run_folder(data: Path, tmp_path: Path):
    out_dir = tmp_path / "new" / "run"
    one_paragraph(runner.invoke(app, train_args(tmp_path / "no-data", out_dir, 1, 4)))
    assert not (tmp_path / "new").exists()
    out_dir.mkdir(parents=True)  # an empty folder given by the user stays, and stays empty
    one_paragraph(runner.invoke(app, train_args(data, out_dir, 1, 4, "--resume")))
    assert out_dir.is_dir() and not list(out_dir.iterdir())


def test_torn_metrics_lines_orphans_and_resume(done_run: Path, data: Path, tmp_path: Path):
    import shutil

    run = tmp_path / "torn"
    shutil.copytree(done_run, run)
    for name in ("metrics.jsonl", "steps.jsonl"):
        with open(run / name, "a") as f:
            f.write('{"epoch": 2, "ste')  # a kill during the append
    orphan = run / ".tmp-abc123.pt"
    orphan.write_bytes(b"half a checkpoint")
    res = runner.invoke(app, ["plot", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, train_args(data, run, 2, 4, "--resume"))
    assert res.exit_code == 0, res.output
    assert not orphan.exists()
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2]
    assert all(ln.startswith("{") and ln.endswith("}") for ln in (run / "steps.jsonl").read_text().splitlines())
    # a damaged line in the middle is one paragraph, not a traceback
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "{oops", lines[1]]) + "\n")
    out = one_paragraph(runner.invoke(app, ["plot", str(run)]))
    assert "line 2" in out


def test_checksum_reports_a_bit_flip(done_run: Path, data: Path, tmp_path: Path):
    state = load_checkpoint(done_run / "last.pt")
    w = torch.arange(256, dtype=torch.float32)
    state["model"] = {**state["model"], "probe": w}
    path = tmp_path / "flip.pt"
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version")}, path)
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(w.numpy().tobytes())
    assert at > 0
    raw[at + 41] ^= 0x04  # one bit of one weight
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    save_checkpoint({"model": {}}, tmp_path / "bare.pt")  # the marker, but not a run's content
    with pytest.raises(CheckpointError, match="incomplete: task, model_spec, recipe"):
        load_checkpoint(tmp_path / "bare.pt")
    out = one_paragraph(runner.invoke(app, ["eval", "--checkpoint", str(path), "--data", str(data)]))
    assert str(path) in out


def test_files_follow_the_umask_and_full_disk_keeps_the_checkpoint(done_run: Path, tmp_path: Path, monkeypatch):
    old = os.umask(0o027)
    try:
        save_checkpoint({"model": {}}, tmp_path / "a.pt")
        RunDir(tmp_path / "r").acquire()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pt").stat().st_mode) == 0o640
    mode = stat.S_IMODE((done_run / "last.pt").stat().st_mode)
    assert mode == 0o666 & ~old, oct(mode)

    good = (tmp_path / "a.pt").read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(SpmkitError, match="disk is full") as err:
        save_checkpoint({"model": {}}, tmp_path / "a.pt")
    assert "\n" not in str(err.value) and "previous" in str(err.value)
    assert (tmp_path / "a.pt").read_bytes() == good
    assert not list(tmp_path.glob(".tmp-*"))


def test_metrics_rows_are_well_formed_json(done_run: Path):
    rows = [json.loads(ln) for ln in (done_run / "metrics.jsonl").read_text().splitlines()]
    assert rows and rows[0]["val_images"] == 4 and rows[0]["val_skipped"] == 0
    assert (done_run / MARKER).exists()
