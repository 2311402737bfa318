"""``loader: dali`` (issue 20, step 4): NVIDIA DALI decodes and crops, here in DALI's CPU-only mode.

The tests that need DALI skip without the ``dali`` extra; the first ones (the message without DALI, the
recipe checks, label parsing) run everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolder_util import make_imagefolder, train_args
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
DALI = ["--devices", "cpu", "--set", "loader=dali"]


def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


# -- without DALI ---------------------------------------------------------------------------------------
def test_without_dali_the_run_stops_with_the_install_command(tmp_path: Path, monkeypatch) -> None:
    data = make_imagefolder(tmp_path / "img", classes=2, train_per_class=4, val_per_class=2)
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # import nvidia.dali -> ImportError
    res = runner.invoke(app, train_args(data, tmp_path / "run", 1, 4, *DALI))
    assert res.exit_code == 2, res.output
    assert 'pip install "spmkit[dali]"' in res.output and "loader=torch" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("setting, words", [("auto_augment=augmix-m5-w4-d2", "RandAugment only"),
                                            ("train_interpolation=hamming", "train_interpolation")])
def test_recipe_refuses_augmentations_dali_has_not(tmp_path: Path, setting: str, words: str) -> None:
    data = make_imagefolder(tmp_path / "img", classes=2, train_per_class=4, val_per_class=2)
    res = runner.invoke(app, train_args(data, tmp_path / "run", 1, 4, *DALI, "--set", setting))
    assert res.exit_code == 2 and words in res.output, res.output
    # the same settings are fine for the torch loader: the refusal is DALI's
    from spmkit.tasks.classification import ClassificationRecipe

    key, value = setting.split("=")
    assert ClassificationRecipe(**{key: value}).loader == "torch"


def test_rand_augment_string_maps_to_dali_arguments() -> None:
    from spmkit.data.dali import rand_augment_args

    assert rand_augment_args("rand-m9-mstd0.5-inc1") == {"n": 2, "m": 90, "num_magnitude_bins": 101,
                                                         "monotonic_mag": True}
    assert rand_augment_args("rand-n3-m7.5") == {"n": 3, "m": 75, "num_magnitude_bins": 101, "monotonic_mag": False}
    with pytest.raises(ValueError, match="cannot read"):
        rand_augment_args("rand-m")


def test_shard_labels_are_parsed_from_padded_text() -> None:
    from spmkit.data.dali import LABEL_BYTES, parse_labels
    from spmkit.errors import DataError

    texts = [b"0", b"7", b"12", b"305\n", b"999999"]
    rows = torch.zeros(len(texts), LABEL_BYTES, dtype=torch.uint8)
    for i, t in enumerate(texts):
        rows[i, :len(t)] = torch.tensor(list(t), dtype=torch.uint8)
    assert parse_labels(rows).tolist() == [0, 7, 12, 305, 999999]
    assert parse_labels(torch.tensor([[3], [1]], dtype=torch.int32)).tolist() == [3, 1]
    rows[1] = 0  # an empty .cls
    with pytest.raises(DataError, match="not a class index"):
        parse_labels(rows)


# -- with DALI (CPU-only pipelines) ----------------------------------------------------------------------
def _input_of(folder: Path, split: str, labels_are_indices: bool = False):
    from spmkit.data.dali import dali_input
    from spmkit.data.sources import open_source

    source = open_source(folder)
    inp = dali_input(source.kind, source.spec, split, source.classes("train"),
                     source.manifest if source.kind == "shards" else None)
    if labels_are_indices:
        from dataclasses import replace

        inp = replace(inp, labels=list(range(inp.count)))
    return inp


def _loaders(train, val, rank: int, world: int, batch: int, size: int = 32):
    from spmkit.data.dali import EvalCrop, TrainAugment, dali_loaders

    aug = TrainAugment((size, size), (0.08, 1.0), 0.5, "bicubic", "rand-m9-mstd0.5-inc1", 0.4)
    return dali_loaders(train, val, aug, EvalCrop((size, size), 0.875, "bicubic"), batch_size=batch, workers=1,
                        seed=0, rank=rank, world_size=world, device=torch.device("cpu"))


def test_validation_reads_every_image_once_over_processes(tmp_path: Path) -> None:
    pytest.importorskip("nvidia.dali")
    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=2, val_per_class=3)  # 9 val images
    val = _input_of(data, "val", labels_are_indices=True)
    for world, batch in ((1, 4), (2, 4), (3, 2), (4, 2)):  # uneven shards, a shard that ends in padding only
        seen = []
        for rank in range(world):
            _, loader = _loaders(val, val, rank, world, batch)
            for _ in range(2):  # a second evaluation reads the same shard again
                got = []
                for images, targets, skipped in loader:
                    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
                    assert images.shape[0] == targets.shape[0] > 0 and int(skipped) == 0
                    got += targets.tolist()
                seen.append(got)
        per_pass = [seen[i] for i in range(0, len(seen), 2)]
        assert sorted(sum(per_pass, [])) == list(range(9)), (world, seen)
        assert seen[0::2] == seen[1::2]


def test_validation_crop_matches_timm(tmp_path: Path) -> None:
    """Same geometry as timm's evaluation transform (shorter side to size / crop_pct, centre crop), RGB, CHW."""
    pytest.importorskip("nvidia.dali")
    from timm.data import create_transform

    d = tmp_path / "img" / "val" / "a"
    d.mkdir(parents=True)
    yy, xx = np.mgrid[0:60, 0:90]
    img = np.stack([xx * 255 // 89, yy * 255 // 59, np.full_like(xx, 60)], -1).astype(np.uint8)
    Image.fromarray(img).save(d / "x.png")  # lossless: only the resize differs
    (tmp_path / "img" / "train" / "a").mkdir(parents=True)
    val = _input_of(tmp_path / "img", "val")
    _, loader = _loaders(val, val, 0, 1, 1)
    ours = next(iter(loader))[0][0].int()
    ref = create_transform(32, is_training=False, interpolation="bicubic", crop_pct=0.875, use_prefetcher=True)(
        Image.open(d / "x.png").convert("RGB")).int()
    assert ours.shape == ref.shape == (3, 32, 32)
    assert (ours - ref).abs().float().mean() < 3.0  # resize filters differ by a level or two


def test_training_stream_partitions_the_data_per_pass(tmp_path: Path) -> None:
    pytest.importorskip("nvidia.dali")
    data = make_imagefolder(tmp_path / "img", classes=2, train_per_class=4, val_per_class=1)  # 8 train images
    train = _input_of(data, "train", labels_are_indices=True)
    streams = []
    for rank in range(2):
        loader, _ = _loaders(train, train, rank, 2, 4)
        assert len(loader) == 4  # samples of this process per epoch, as a padded sampler says
        it = iter(loader)
        streams.append([next(it) for _ in range(2)])
    for p in range(2):  # each DALI epoch, the two processes' batches are a partition of the 8 images
        assert sorted(streams[0][p][1].tolist() + streams[1][p][1].tolist()) == list(range(8))
    assert streams[0][0][1].tolist() != streams[0][1][1].tolist() or \
        streams[1][0][1].tolist() != streams[1][1][1].tolist()  # reshuffled after the first pass


@pytest.mark.parametrize("kind", ["files", "shards"])
def test_gpu_graph_is_well_formed_without_a_gpu(kind: str) -> None:
    """The GPU pipeline cannot run here, but DALI builds the graph (operator schemas check every argument)
    when the pipeline is defined: images decoded by the ``mixed`` operator stay on the GPU, labels on the host."""
    pytest.importorskip("nvidia.dali")
    from nvidia.dali import fn, pipeline_def, types

    from spmkit.data.dali import DaliInput, EvalCrop, TrainAugment, _eval_graph, _train_graph

    inp = DaliInput("w", "d", 2, files=["a.jpg", "b.jpg"], labels=[0, 1]) if kind == "files" else \
        DaliInput("w", "d", 2, tars=["train-000000.tar"])
    devices = []
    for augment in ("rand-m9-mstd0.5-inc1", None):
        aug = TrainAugment((32, 32), (0.08, 1.0), 0.5, "bicubic", augment, 0.4)

        @pipeline_def(batch_size=2, num_threads=1, device_id=0, enable_conditionals=True)
        def pipeline():
            train = _train_graph(fn, types, inp, aug, gpu=True, rank=0, world=2, reader_seed=1)
            val = _eval_graph(fn, types, inp, EvalCrop((32, 32), 0.875, "bilinear"), gpu=True, rank=1, world=2)
            devices.append([node.device for node in (*train, *val)])
            return (*train, *val)

        with warnings.catch_warnings(record=True):  # DALI's RandAugment uses DALI's deprecated aliases
            pipeline()  # defined, not built
    assert devices == [["gpu", "cpu", "gpu", "cpu"]] * 2


def test_train_one_epoch_on_a_folder_through_dali(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("nvidia.dali")
    from spmkit.data import dali

    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=8, val_per_class=5)
    for p in (data / "train").rglob("*.png"):  # DALI decodes PNG too: make the train split JPEG only
        Image.open(p).convert("RGB").save(p.with_suffix(".jpeg"))
        p.unlink()
    batches = []
    real = dali._DaliBatches.batches

    def counted(self):
        for b in real(self):
            batches.append(("val" if self.reader else "train", tuple(b[0].shape), b[0].dtype))
            yield b

    monkeypatch.setattr(dali._DaliBatches, "batches", counted)
    run = tmp_path / "run"
    res = runner.invoke(app, train_args(data, run, 1, 4, *DALI))
    assert res.exit_code == 0, res.output
    row = _rows(run)[-1]
    assert row["val_images"] == 15 and row["val_skipped"] == 0 and row["train_skipped"] == 0 and row["step"] == 6
    assert [b for b in batches if b[0] == "train"] == [("train", (4, 3, 32, 32), torch.uint8)] * 6
    assert sum(b[1][0] for b in batches if b[0] == "val") == 15
    assert "loader: dali" in (run / "recipe.yaml").read_text().splitlines()
    # its checkpoint evaluates with the torch loader, also where DALI is not installed
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    res = runner.invoke(app, ["eval", "--checkpoint", str(run / "last.pt"), "--data", str(data), "--json",
                              "--workers", "0", "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["val_images"] == 15


def test_unreadable_jpeg_stops_with_a_data_error(tmp_path: Path) -> None:
    pytest.importorskip("nvidia.dali")
    data = make_imagefolder(tmp_path / "img", classes=2, train_per_class=4, val_per_class=2)
    (data / "train" / "class_01" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    res = runner.invoke(app, train_args(data, tmp_path / "run", 1, 3, *DALI))
    assert res.exit_code == 2, res.output
    assert "DALI could not decode an image of" in res.output and f"spmkit data check {data}" in res.output
    assert "loader=torch" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_shards_with_two_processes_score_every_val_image_once(tmp_path: Path) -> None:
    pytest.importorskip("nvidia.dali")
    pytest.importorskip("webdataset")
    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=8, val_per_class=5)
    shards = tmp_path / "shards"
    res = runner.invoke(app, ["data", "pack", str(data), "--format", "wds", "-o", str(shards), "--shard-size", "4"])
    assert res.exit_code == 0, res.output
    val = _input_of(shards, "val")  # the reader alone: class counts of the 15 val images, over 2 processes
    counts = np.zeros(3, int)
    for rank in range(2):
        for _, targets, _ in _loaders(val, val, rank, 2, 4)[1]:
            counts += np.bincount(targets.numpy(), minlength=3)
    assert counts.tolist() == [5, 5, 5]
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "spmkit", *train_args(shards, out, 1, 4, "--nproc", "2", *DALI)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    row = _rows(out)[-1]
    assert row["val_images"] == 15 and row["step"] == 3  # ceil(24 / 2) // 4
