"""Streamed Hugging Face datasets as --data: ``hf-stream:NAME[:CONFIG]`` / ``hf-stream:FOLDER`` (issue 20, step 3).

Offline: a local folder of parquet files streamed through ``datasets.load_dataset(..., streaming=True)``, the
same code path a hub name takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolder_util import train_args
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.errors import DataError

datasets = pytest.importorskip("datasets")
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _offline_hf(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")


def _parquet_folder(tmp_path: Path, train: list[int], val: list[int], broken_val: bool = False) -> Path:
    """Parquet files ``train-0000i.parquet`` / ``validation-0000i.parquet`` with the given row counts; every
    image is distinct (its index is written into its pixels); classes a, b, c."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    folder = tmp_path / "parquet"
    folder.mkdir()
    png = tmp_path / "tmp.png"
    index = 0
    for split, sizes in (("train", train), ("validation", val)):
        for f, n in enumerate(sizes):
            images, labels = [], []
            for _ in range(n):
                arr = np.zeros((32, 32, 3), np.uint8)
                arr[31, 0] = (index % 256, index // 256, 7)  # below the class stripe
                arr[(index % 3) * 10:(index % 3) * 10 + 4] = 250
                Image.fromarray(arr).save(png)
                images.append({"bytes": png.read_bytes(), "path": None})
                labels.append(index % 3)
                index += 1
            if broken_val and split == "validation" and f == 0:
                images[0] = {"bytes": b"garbage", "path": None}
            datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(
                str(folder / f"{split}-{f:05d}.parquet"))
    return folder


def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def _dataset(spec: str, split: str, policy: str = "leave_out"):
    from spmkit.data.sources import open_source

    source = open_source(spec)
    return source.dataset(split, source.classes("train"), _to_tensor, policy)


def test_streamed_parquet_folder_trains_one_epoch_and_scores_every_val_sample(tmp_path: Path) -> None:
    folder = _parquet_folder(tmp_path, train=[7, 6], val=[3, 2, 2], broken_val=True)
    spec = f"hf-stream:{folder}"
    ds = _dataset(spec, "val")
    from spmkit.data.hf_stream import HFStreamDataset

    assert isinstance(ds, HFStreamDataset) and len(ds) == 7 and ds.parts == 3  # length from the parquet footers
    run = tmp_path / "run"
    res = runner.invoke(app, train_args(Path(spec), run, 1, 4))
    assert res.exit_code == 0, res.output
    row = _rows(run)[-1]
    assert row["val_images"] == 6 and row["val_skipped"] == 1  # 7 samples: 6 scored once, 1 unreadable
    assert row["step"] == 13 // 4
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["data_info"]["classes"] == ["a", "b", "c"]

    res = runner.invoke(app, ["data", "check", spec, "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output.strip().splitlines()[-1])
    assert rep["kind"] == "hf-stream" and rep["classes"] == ["a", "b", "c"]
    assert rep["splits"]["train"]["images"] == 13 and rep["splits"]["train"]["unreadable"] == 0
    assert rep["splits"]["val"]["images"] == 7 and rep["splits"]["val"]["unreadable"] == 1


@pytest.mark.parametrize("val_files", [[3, 2, 2, 1, 1], [9]])  # more shards than 2 x 2 readers, and one shard
def test_streamed_validation_reads_every_sample_once_across_processes_and_workers(tmp_path: Path,
                                                                                 val_files: list[int]) -> None:
    from spmkit.data.sampling import loader_sampler, process_sampler

    spec = f"hf-stream:{_parquet_folder(tmp_path, train=[3], val=val_files)}"
    seen: list[bytes] = []
    for rank in range(2):
        ds = _dataset(spec, "val")
        sampler = process_sampler(ds, rank, 2, shuffle=False, pad=False)
        assert loader_sampler(sampler) is None
        got = [img.numpy().tobytes() for batch in torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
               for img in batch[0]]
        assert got  # both processes have a part
        seen += got
    assert len(seen) == 9 and len(set(seen)) == 9


def test_streamed_training_gives_equal_batches_per_process_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    from spmkit.data.sampling import process_sampler

    spec = f"hf-stream:{_parquet_folder(tmp_path, train=[4, 3, 3, 3, 4, 2, 2], val=[1])}"  # 21 rows, 7 shards

    def batches(rank: int, workers: int, epoch: int, start: int) -> list[bytes]:
        ds = _dataset(spec, "train", "substitute")
        sampler = process_sampler(ds, rank, 2, shuffle=True, seed=5, pad=True, batch_size=2)
        sampler.set_epoch(epoch)
        sampler.set_start(start * 2)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, drop_last=True)
        return [b[0].numpy().tobytes() for b in loader]

    full = {rank: batches(rank, 2, 1, 0) for rank in range(2)}
    assert len(full[0]) == len(full[1]) == 11 // 2  # ceil(21 / 2) = 11 per process: 5 full batches each
    assert batches(0, 2, 2, 0) != full[0]  # reshuffled per epoch
    for start in (1, 3):
        assert batches(0, 2, 1, start) == full[0][start:], start


def test_stream_without_a_known_length_and_bad_folders_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    import spmkit.data.hf_stream as hf_stream

    folder = _parquet_folder(tmp_path, train=[3], val=[2])
    monkeypatch.setattr(hf_stream, "split_length", lambda *a: None)  # as a hub stream without num_examples
    with pytest.raises(DataError, match="does not say how many samples it has"):
        _dataset(f"hf-stream:{folder}", "train")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["data", "check", f"hf-stream:{empty}"])
    assert res.exit_code == 2 and "holds no parquet files" in " ".join(res.output.split())


def test_two_gloo_processes_on_a_streamed_folder_score_every_val_sample_once(tmp_path: Path) -> None:
    folder = _parquet_folder(tmp_path, train=[5, 5, 6], val=[4, 4, 3])  # 11 val rows in 3 uneven shards
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "spmkit",
           *train_args(Path(f"hf-stream:{folder}"), out, 1, 4, "--devices", "cpu", "--nproc", "2")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = _rows(out)
    assert rows[-1]["val_images"] == 11 and rows[-1]["step"] == 8 // 4  # ceil(16 / 2) // 4


def test_a_stream_of_unknown_length_takes_it_from_the_recipe_and_still_scores_every_val_sample(
        tmp_path: Path, monkeypatch, caplog) -> None:
    """``train_num_samples`` / ``val_num_samples`` (timm's names) give the length a stream does not publish:
    the epoch has ceil(N / processes) // batch steps of the given N; validation reads and counts every sample
    whatever N says, and logs once that N was wrong."""
    import logging

    import spmkit.data.hf_stream as hf_stream

    folder = _parquet_folder(tmp_path, train=[7, 6], val=[3, 2, 2])  # 13 train rows, 7 val rows
    monkeypatch.setattr(hf_stream, "split_length", lambda *a: None)  # as a hub stream without num_examples
    spec = f"hf-stream:{folder}"
    with pytest.raises(DataError, match="--set val_num_samples=N"):  # the refusal names the way out
        _dataset(spec, "val")
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="spmkit.data"):
        res = runner.invoke(app, train_args(Path(spec), run, 2, 4, "--set", "train_num_samples=9",
                                            "--set", "val_num_samples=5"))
    assert res.exit_code == 0, res.output
    rows = [r for r in _rows(run) if "val_images" in r]
    assert [r["step"] for r in rows] == [2, 4]  # 9 // 4 = 2 steps per epoch (not 13 // 4 = 3)
    assert all(r["val_images"] == 7 and r["val_skipped"] == 0 for r in rows)  # every row once, not 5
    notes = [m for m in caplog.messages if "evaluation read 7 samples" in m]
    assert len(notes) == 1 and "val_num_samples=5" in notes[0]  # said once, not per epoch


def test_a_given_length_replaces_a_known_one_of_shards_and_streams_as_timm_does(tmp_path: Path, caplog) -> None:
    import logging

    from spmkit.data.sampling import process_sampler
    from spmkit.data.sources import open_source

    spec = f"hf-stream:{_parquet_folder(tmp_path, train=[7, 6], val=[3])}"
    source = open_source(spec)
    with caplog.at_level(logging.WARNING, logger="spmkit.data"):
        ds = source.dataset("train", source.classes("train"), _to_tensor, "substitute", num_samples=30)
    assert len(ds) == 30 and any("train_num_samples=30 sizes the epoch (the data says 13" in m
                                 for m in caplog.messages)
    sampler = process_sampler(ds, 1, 2, shuffle=True, seed=0, pad=True, batch_size=4)
    got = list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0, drop_last=True))
    assert len(sampler) == 15 and len(got) == 15 // 4  # ceil(30 / 2) // 4 batches, the stream read again
    # ``data check`` counts by reading: an unknown length is no obstacle there
    import spmkit.data.hf_stream as hf_stream

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_stream, "split_length", lambda *a: None)
        res = runner.invoke(app, ["data", "check", spec, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["splits"]["train"]["images"] == 13
