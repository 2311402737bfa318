"""Webdataset shards and Hugging Face datasets as --data; spmkit data pack|check (issue 20, step 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolder_util import make_imagefolder, train_args
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app

pytest.importorskip("webdataset")
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _pack(folder: Path, out: Path, *extra: str) -> None:
    res = runner.invoke(app, ["data", "pack", str(folder), "--format", "wds", "-o", str(out), *extra])
    assert res.exit_code == 0, res.output


def _rows(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def test_pack_then_train_sees_every_val_image_and_the_folder_classes(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=8, val_per_class=5)
    (data / "train" / "class_02" / "extra.jpeg").write_bytes((data / "train" / "class_02" / "img_000.jpg").read_bytes())
    shards = tmp_path / "shards"
    _pack(data, shards, "--shard-size", "4")
    manifest = json.loads((shards / "spmkit-shards.json").read_text())
    assert manifest["classes"] == ["class_00", "class_01", "class_02"]
    assert manifest["splits"]["train"]["count"] == 25 and len(manifest["splits"]["train"]["shards"]) == 7
    assert manifest["splits"]["val"]["count"] == 15 and len(list(shards.glob("val-*.tar"))) == 4
    assert not list(tmp_path.glob(".shards*"))  # the temporary folder was renamed into place
    # shuffled: the first shard is not one class's images in folder order
    from spmkit.data.shards import read_samples

    first = [t for _, _, t in read_samples(shards / "train-000000.tar")]
    all_targets = [t for p in sorted(shards.glob("train-*.tar")) for _, _, t in read_samples(p)]
    assert sorted(all_targets) == [0] * 8 + [1] * 8 + [2] * 9 and all_targets != sorted(all_targets)
    assert len(first) == 4

    run = tmp_path / "run"
    res = runner.invoke(app, train_args(shards, run, 1, 4))
    assert res.exit_code == 0, res.output
    rows = _rows(run)
    assert rows[-1]["val_images"] == 15 and rows[-1]["val_skipped"] == 0 and rows[-1]["step"] == 25 // 4
    info = json.loads((run / "run.json").read_text())
    assert info["data_info"]["num_classes"] == 3
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["data_info"]["classes"] == manifest["classes"]
    # the checkpoint evaluates on the folder and on the shards alike
    scores = []
    for source in (data, shards):
        res = runner.invoke(app, ["eval", "--checkpoint", str(run / "last.pt"), "--data", str(source), "--json",
                                  "--workers", "0"])
        assert res.exit_code == 0, res.output
        scores.append(json.loads(res.output.strip().splitlines()[-1]))
    assert scores[0]["val_images"] == scores[1]["val_images"] == 15
    assert scores[0]["top1"] == pytest.approx(scores[1]["top1"])


def test_pack_refuses_foreign_output_and_replaces_its_own_only_with_force(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "img", classes=2, train_per_class=2, val_per_class=1)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["data", "pack", str(data), "-o", str(foreign)])
    assert res.exit_code == 2 and "not an spmkit shard folder" in res.output and (foreign / "notes.txt").exists()
    out = tmp_path / "out"
    _pack(data, out)
    res = runner.invoke(app, ["data", "pack", str(data), "-o", str(out)])
    assert res.exit_code == 2 and "--force" in res.output
    res = runner.invoke(app, ["data", "pack", str(data), "-o", str(data / "inside")])
    assert res.exit_code == 2 and "outside" in res.output
    res = runner.invoke(app, ["data", "pack", str(data), "-o", str(out), "--force", "--shard-size", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["shards"] == {"train": 4, "val": 2}
    assert len(list(out.glob("train-*.tar"))) == 4 and not list(tmp_path.glob(".out*"))
    res = runner.invoke(app, ["data", "pack", str(data), "-o", str(out), "--format", "tfrecord", "--force"])
    assert res.exit_code == 2 and "wds" in res.output


def _plain_dataset(shards: Path, split: str, policy: str = "leave_out"):
    from spmkit.data.shards import ShardDataset, load_manifest

    return ShardDataset(shards, split, load_manifest(shards), transform=_to_tensor, unreadable=policy)


@pytest.mark.parametrize("shard_size", [3, 100])  # 5 val shards for 2 x 2 slots, and 1 shard for 4 slots
def test_validation_stream_yields_every_sample_once_across_processes_and_workers(tmp_path: Path,
                                                                                shard_size: int) -> None:
    from spmkit.data.sampling import loader_sampler, process_sampler

    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=2, val_per_class=5)
    shards = tmp_path / "shards"
    _pack(data, shards, "--shard-size", str(shard_size) if shard_size == 100 else "3")  # 5 shards or 1
    seen: list[bytes] = []
    for rank in range(2):
        ds = _plain_dataset(shards, "val")
        sampler = process_sampler(ds, rank, 2, shuffle=False, pad=False)
        assert loader_sampler(sampler) is None
        for workers in (0, 2) if rank == 0 else (2,):
            loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers)
            got = [img.numpy().tobytes() for batch in loader for img in batch[0]]
            if workers == 2:
                seen += got
    assert len(seen) == 15 and len(set(seen)) == 15


def test_training_stream_gives_equal_batches_per_process_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    from spmkit.data.sampling import process_sampler

    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=7, val_per_class=1)  # 21 images
    shards = tmp_path / "shards"
    _pack(data, shards, "--shard-size", "3")  # 7 shards: uneven over 2 processes x 2 workers

    def batches(rank: int, workers: int, epoch: int, start: int) -> list[bytes]:
        ds = _plain_dataset(shards, "train", "substitute")
        sampler = process_sampler(ds, rank, 2, shuffle=True, seed=5, pad=True, batch_size=2)
        sampler.set_epoch(epoch)
        sampler.set_start(start * 2)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, drop_last=True)
        return [b[0].numpy().tobytes() for b in loader]

    full = {rank: batches(rank, 2, 1, 0) for rank in range(2)}
    assert len(full[0]) == len(full[1]) == 11 // 2  # ceil(21 / 2) = 11 per process, 5 full batches
    assert batches(0, 2, 1, 0) == full[0]  # deterministic
    assert batches(0, 2, 2, 0) != full[0]  # reshuffled per epoch
    for start in (1, 2, 3):
        assert batches(0, 2, 1, start) == full[0][start:], start
    single = batches(1, 0, 1, 0)
    assert len(single) == 5 and batches(1, 0, 1, 2) == single[2:]


def test_unreadable_and_truncated_shard_samples_are_skipped_and_counted(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "img", classes=2, train_per_class=4, val_per_class=4)
    (data / "val" / "class_00" / "broken.jpg").write_bytes(b"not a jpeg")
    (data / "train" / "class_01" / "broken.png").write_bytes(b"not a png")
    shards = tmp_path / "shards"
    _pack(data, shards, "--shard-size", "3")
    # cut the last val shard in the middle of its second member
    last = sorted(shards.glob("val-*.tar"))[-1]
    manifest = json.loads((shards / "spmkit-shards.json").read_text())
    n_last = manifest["splits"]["val"]["shards"][-1]["count"]
    last.write_bytes(last.read_bytes()[:1200])
    ds = _plain_dataset(shards, "val")
    items = list(ds)
    skipped = sum(s for _, _, s in items)
    kept = [i for i in items if i[0] is not None]
    assert len(kept) + skipped == 9  # every sample once: read, or counted as unreadable
    assert skipped >= 1 + (n_last - 1)  # the broken image and the samples lost with the shard's end
    res = runner.invoke(app, ["data", "check", str(shards), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["kind"] == "shards" and rep["splits"]["val"]["images"] == 9
    assert rep["splits"]["val"]["unreadable"] == skipped and rep["splits"]["train"]["unreadable"] == 1
    assert rep["splits"]["train"]["per_class"] == {"class_00": 4, "class_01": 4}
    res = runner.invoke(app, ["data", "check", str(data)])
    assert res.exit_code == 0 and "broken.jpg" in res.output and "1 unreadable" in res.output


def test_shards_without_manifest_are_scanned(tmp_path: Path) -> None:
    import webdataset as wds

    folder = tmp_path / "foreign"
    folder.mkdir()
    img = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(img)
    for split, n in (("train", 5), ("val", 3)):
        with wds.TarWriter(str(folder / f"{split}-0000.tar")) as w:
            for i in range(n):
                w.write({"__key__": f"s{i}", "png": img.read_bytes(), "cls": i % 3})
    res = runner.invoke(app, ["data", "check", str(folder), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["classes"] == ["0", "1", "2"] and rep["splits"]["train"]["images"] == 5


def _hf_dataset(tmp_path: Path, broken_val: bool = False):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)

    def rows(n: int, broken: bool) -> dict:
        images, labels = [], []
        for i in range(n):
            arr = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            arr[(i % 3) * 10:(i % 3) * 10 + 4] = 250
            path = tmp_path / f"tmp_{i}.png"
            Image.fromarray(arr).save(path)
            images.append({"bytes": path.read_bytes(), "path": None})
            labels.append(i % 3)
        if broken:
            images[0] = {"bytes": b"garbage", "path": None}
        return {"image": images, "label": labels}

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    return datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(rows(12, False), features=features),
        "validation": datasets.Dataset.from_dict(rows(7, broken_val), features=features),
    })


def test_hf_save_to_disk_and_parquet_folders_train_and_check(tmp_path: Path, monkeypatch) -> None:
    dd = _hf_dataset(tmp_path, broken_val=True)
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")  # parquet -> Arrow cache
    saved = tmp_path / "saved"
    dd.save_to_disk(str(saved))
    run = tmp_path / "run"
    res = runner.invoke(app, train_args(saved, run, 1, 4))
    assert res.exit_code == 0, res.output
    row = _rows(run)[-1]
    assert row["val_images"] == 6 and row["val_skipped"] == 1
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["data_info"]["classes"] == ["a", "b", "c"]

    parquet = tmp_path / "parquet"
    parquet.mkdir()
    dd["train"].to_parquet(str(parquet / "train-00000.parquet"))
    dd["validation"].to_parquet(str(parquet / "validation-00000.parquet"))
    res = runner.invoke(app, ["data", "check", str(parquet), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output.strip().splitlines()[-1])  # after the datasets library's progress bars
    assert rep["kind"] == "hf" and rep["classes"] == ["a", "b", "c"]
    assert rep["splits"]["train"]["images"] == 12 and rep["splits"]["val"]["unreadable"] == 1


def test_hf_hub_name_offline_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "spmkit", "data", "check", "hf:nobody/no-such-dataset"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "cannot load the Hugging Face dataset 'nobody/no-such-dataset'" in text and "cache" in text
    assert "Traceback" not in text


def test_two_gloo_processes_on_uneven_shards_score_every_val_image_once(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=8, val_per_class=5)
    shards = tmp_path / "shards"
    _pack(data, shards, "--shard-size", "4")  # 15 val images in 4 shards of 4, 4, 4, 3
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "spmkit", *train_args(shards, out, 1, 4, "--devices", "cpu", "--nproc", "2")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = _rows(out)
    assert rows[-1]["val_images"] == 15 and rows[-1]["step"] == 3  # ceil(24 / 2) // 4


def test_loader_benchmark_measures_every_cell(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.loader import main

    res = main(["--images", "16", "--size", "48", "--img-size", "32", "--batch-size", "4", "--batches", "2",
                "--warmup", "1", "--workers", "0", "--json"])
    cells = res["img_per_s_per_worker"]
    assert set(cells) == {f"{loader} / {pipe}" for loader in ("spmkit folder", "spmkit shards", "timm folder")
                          for pipe in ("decode", "crop_flip", "imagenet")}
    assert all(v > 0 for v in cells.values())


def test_a_given_length_sizes_shard_epochs_and_is_not_used_for_folders(tmp_path: Path, caplog) -> None:
    """Shard counts are always known (manifest or scan); ``num_samples`` (the recipe's ``train_num_samples`` /
    ``val_num_samples``) replaces them as timm's does. Evaluation still reads every sample; a folder's known
    length is kept (and the unused value logged)."""
    import logging

    from spmkit.data.sampling import process_sampler
    from spmkit.data.shards import ShardDataset, load_manifest
    from spmkit.data.sources import open_source

    data = make_imagefolder(tmp_path / "img", classes=3, train_per_class=3, val_per_class=2)
    shards = tmp_path / "shards"
    _pack(data, shards, "--shard-size", "4")
    train = ShardDataset(shards, "train", load_manifest(shards), transform=_to_tensor, num_samples=5)
    process_sampler(train, 0, 1, shuffle=True, seed=0, pad=True, batch_size=2)
    assert len(train) == 5 and len(list(torch.utils.data.DataLoader(train, batch_size=2, drop_last=True))) == 2
    val = ShardDataset(shards, "val", load_manifest(shards), transform=_to_tensor, unreadable="leave_out",
                       num_samples=2)
    assert len(val) == 2 and sum(b[0].shape[0] for b in torch.utils.data.DataLoader(val, batch_size=4)) == 6
    source = open_source(data)
    with caplog.at_level(logging.WARNING, logger="spmkit.data"):
        ds = source.dataset("train", source.classes("train"), None, "substitute", num_samples=5)
    assert len(ds) == 9 and any("train_num_samples=5 is not used" in m for m in caplog.messages)
