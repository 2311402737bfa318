"""``spmkit sweep``: the grid, invalid variants, costs equal to ``spmkit build``, profiling, the lock, sweep files."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
import yaml
from conftest import all_blueprint_files
from typer.testing import CliRunner

from spmkit.blueprint import list_blueprints, load_blueprint
from spmkit.blueprint.schema import METADATA_FIELDS
from spmkit.cli.app import app
from spmkit.sweep import SweepError, expand, list_sweeps, load_sweep_file
from spmkit.sweep.lock import SweepLock

runner = CliRunner()
FAST_PROFILE = ["--repeats", "2", "--warmup", "0", "--profile-batch-size", "2", "--no-memory"]


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _build_json(name: str, *overrides: str) -> dict:
    args = ["build", name, "--json"]
    for o in overrides:
        args += ["--model-set", o]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_profile_only_rows_equal_build(tmp_path: Path) -> None:
    out = tmp_path / "S"
    res = runner.invoke(app, ["sweep", "tiny_pvt", "--vary", "merging.type=conv,spm", "--vary", "stages.1.depth=1,2",
                              "--profile-only", "--device", "cpu", "--output", str(out), *FAST_PROFILE])
    assert res.exit_code == 0, res.output
    rows = _csv(out / "results.csv")
    assert [(r["merging.type"], r["stages.1.depth"]) for r in rows] == [
        ("conv", "1"), ("conv", "2"), ("spm", "1"), ("spm", "2")]
    for r in rows:
        built = _build_json("tiny_pvt", f"merging.type={r['merging.type']}", f"stages.1.depth={r['stages.1.depth']}")
        assert (int(r["params"]), int(r["macs"])) == (built["params"], built["macs"])
        assert float(r["latency_ms"]) > 0 and float(r["throughput"]) > 0
        assert int(r["delta_params"]) == int(r["params"]) - int(rows[0]["params"])
    assert len({r["params"] for r in rows}) == 4
    md = (out / "results.md").read_text()
    assert "first value of every axis" in md and "| spm | 2 | 149.1 K |" in md
    cached = json.loads((out / "profile.json").read_text())
    assert len(next(iter(cached.values()))) == 4


def test_dry_run_full_size_in_seconds_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    res = runner.invoke(app, ["sweep", "pvt_tiny", "--vary", "merging.type=conv,spm", "--vary", "stages.2.depth=2,4",
                              "--dry-run", "--json"])
    elapsed = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    got = {(r["merging.type"], r["stages.2.depth"]): r["params"] for r in rows}
    assert len(got) == 4
    # the official counts of PVT v1 Tiny and PVT-Tiny + SPM (the blueprints' references)
    assert got[("conv", "2")] == 13_229_288 and got[("spm", "2")] == 14_029_480
    assert got[("spm", "4")] > got[("conv", "4")] > got[("conv", "2")]
    assert elapsed < 30, elapsed
    assert list(tmp_path.iterdir()) == []


def test_invalid_combinations_listed_and_skipped() -> None:
    res = runner.invoke(app, ["sweep", "tiny_pvt", "--vary", "merging.type=conv,bogus", "--vary", "stages.1.heads=2,3",
                              "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [(r["merging.type"], r["stages.1.heads"]) for r in data["rows"]] == [("conv", "2")]
    reasons = {d["variant"]: d["reason"] for d in data["invalid"]}
    assert set(reasons) == {"merging.type=conv stages.1.heads=3", "merging.type=bogus stages.1.heads=2",
                            "merging.type=bogus stages.1.heads=3"}
    assert "not divisible by heads 3" in reasons["merging.type=conv stages.1.heads=3"]
    assert "unknown merging 'bogus'" in reasons["merging.type=bogus stages.1.heads=2"]
    assert "skipped, invalid: merging.type=bogus stages.1.heads=2" in res.output  # listed before running


def test_zip_pairs_values_and_needs_equal_lengths() -> None:
    res = runner.invoke(app, ["sweep", "tiny_pvt", "--zip", "--vary", "stages.1.depth=1,2",
                              "--vary", "stages.2.depth=2,1", "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert [(r["stages.1.depth"], r["stages.2.depth"]) for r in rows] == [("1", "2"), ("2", "1")]
    res = runner.invoke(app, ["sweep", "tiny_pvt", "--zip", "--vary", "stages.1.depth=1,2",
                              "--vary", "stages.2.depth=1", "--dry-run"])
    assert res.exit_code == 2 and "same number of values" in res.output


def test_second_sweep_cannot_write_a_locked_folder(tmp_path: Path) -> None:
    out = tmp_path / "S"
    with SweepLock(out):
        res = runner.invoke(app, ["sweep", "tiny_pvt", "--vary", "merging.type=conv,spm", "--profile-only",
                                  "--device", "cpu", "--output", str(out), *FAST_PROFILE])
        assert res.exit_code == 2
        assert "being written by another sweep" in res.output
        assert not (out / "results.csv").exists()
        with pytest.raises(SweepError):
            SweepLock(out).acquire()
    SweepLock(out).acquire().release()  # free again once the holder is done


def test_lock_outlives_a_killed_sweep_while_its_training_child_runs(tmp_path: Path) -> None:
    import subprocess

    lock = SweepLock(tmp_path).acquire()
    child = subprocess.Popen(["sleep", "60"], pass_fds=(lock.fd,))  # as the sweep starts training processes
    try:
        lock.release()  # the sweep is gone
        with pytest.raises(SweepError, match="another sweep"):
            SweepLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    SweepLock(tmp_path).acquire().release()


def test_shipped_merging_sweep_equals_the_ablation_blueprints() -> None:
    spec = load_sweep_file(list_sweeps()["pvt_tiny_merging"])
    variants = expand(spec)
    assert [dict(v.values)["merging.type"] for v in variants] == ["conv", "msa_only", "gle_only", "spm"]
    skip = set(METADATA_FIELDS)  # what does not change the model (reference, release: the file's own)
    for v in variants:
        got = load_blueprint(v.base, v.blueprint_overrides).model_dump(mode="json", exclude=skip)
        want = load_blueprint(f"pvt_tiny_{dict(v.values)['merging.type']}").model_dump(mode="json", exclude=skip)
        assert got == want, v.label
    # sweep files are not blueprints; `spmkit list` shows them apart
    assert "pvt_tiny_merging" not in list_blueprints()
    listed = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    assert "pvt_tiny_merging" in listed["sweeps"] and "pvt_tiny_merging" not in listed["blueprints"]
    assert not any(p.parent.name == "sweeps" for p in all_blueprint_files())


def test_sweep_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: tiny_pvt\naxes: {merging.type: []}\nepochs: 3\n")
    res = runner.invoke(app, ["sweep", str(bad), "--dry-run"])
    assert res.exit_code == 2
    assert "axes" in res.output and "has no values" in res.output
    assert "epochs: unknown key" in res.output


# -- training ------------------------------------------------------------------------------------------------

def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "tiny_pvt", "--vary", "merging.type=conv,spm", "--data", str(data), "--epochs", "1",
            "--output", str(out), "--device", "cpu", "--model-set", "img_size=32", "--batch-size", "4",
            "--set", "workers=0", "--set", "warmup_epochs=0", "--set", "ckpt_every_steps=1",
            "--set", "log_every_steps=1", "--jobs", "2", *extra]


def test_train_kill_resume_and_skip(tmp_path: Path, monkeypatch) -> None:
    import torch
    from imagefolder_util import make_imagefolder

    from spmkit.train.trainer import FAULT_ENV

    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)
    out = tmp_path / "S"
    monkeypatch.setenv(FAULT_ENV, "2")  # every training process is SIGKILLed after its 2nd of 3 steps
    res = runner.invoke(app, _train_args(data, out))
    assert res.exit_code == 2 and "2 run(s) failed" in res.output, res.output
    runs = sorted(p for p in (out / "runs").iterdir() if p.is_dir())  # beside each: NAME.console.log
    assert len(runs) == 2
    for run in runs:
        assert torch.load(run / "last.pt", map_location="cpu", weights_only=True)["step"] == 2
        assert not (run / "result.json").exists()
    assert {r["status"] for r in _csv(out / "results.csv")} == {"failed"}

    monkeypatch.delenv(FAULT_ENV)
    res = runner.invoke(app, _train_args(data, out))
    assert res.exit_code == 0, res.output
    for run in runs:
        assert "resumed" in (run / "train.log").read_text()  # from the checkpoint, not from scratch
        steps = [json.loads(ln)["step"] for ln in (run / "steps.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3]
    rows = _csv(out / "results.csv")
    assert [r["merging.type"] for r in rows] == ["conv", "spm"] and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert 0.0 <= float(r["top1"]) <= 100.0
        built = _build_json("tiny_pvt", "img_size=32", f"merging.type={r['merging.type']}")
        assert int(r["params"]) == built["params"]
    assert (out / "top1_vs_gmacs.png").stat().st_size > 0 and (out / "top1_vs_params.png").is_file()

    before = {run: ((run / "last.pt").stat().st_mtime_ns, (run / "train.log").read_text()) for run in runs}
    res = runner.invoke(app, _train_args(data, out))
    assert res.exit_code == 0, res.output
    assert "trained 0 run(s), skipped 2 finished" in res.output
    assert before == {run: ((run / "last.pt").stat().st_mtime_ns, (run / "train.log").read_text()) for run in runs}
    assert _csv(out / "results.csv") == rows


def test_submitit_local_executor_trains_and_collects(tmp_path: Path) -> None:
    """The SLURM path (one submitit job per run, results collected when it ends), on submitit's local executor."""
    from imagefolder_util import make_imagefolder

    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=4, val_per_class=2)
    out = tmp_path / "S"
    res = runner.invoke(app, ["sweep", "tiny_pvt", "--vary", "merging.type=conv", "--data", str(data), "--epochs", "1",
                              "--output", str(out), "--device", "cpu", "--model-set", "img_size=32",
                              "--set", "workers=0", "--executor", "submitit-local", "--time", "10"])
    assert res.exit_code == 0, res.output
    # 8 training images, fewer than the default recipe's batch of 128: the sweep trains with a batch of 8
    assert "has 8 images, fewer than one batch of 128: training with batch_size=8" in res.output
    (row,) = _csv(out / "results.csv")
    assert row["status"] == "ok" and float(row["top1"]) >= 0.0
    (run,) = (p for p in (out / "runs").iterdir() if p.is_dir())
    assert (run / "result.json").is_file() and (run / "last.pt").is_file()
    assert yaml.safe_load((run / "recipe.yaml").read_text())["batch_size"] == 8
    assert list((out / "submitit").glob("*_result.pkl"))  # it went through submitit, not a local process


def test_seeds_mean_std_delta_and_pareto_front() -> None:
    from spmkit.sweep.cost import MetaCost
    from spmkit.sweep.grid import Variant
    from spmkit.sweep.charts import pareto_front
    from spmkit.sweep.results import build_table

    a = Variant(0, "tiny_pvt", (("merging.type", "conv"),), ("merging.type=conv",), ())
    b = Variant(1, "tiny_pvt", (("merging.type", "spm"),), ("merging.type=spm",), ())
    costs = {a.blueprint_key: MetaCost(100, 1000, (32, 32)), b.blueprint_key: MetaCost(130, 1700, (32, 32))}
    ok = lambda top1: {"status": "ok", "metrics": {"top1": top1}, "train_s": 1.0}  # noqa: E731
    results = {0: [ok(70.0), ok(74.0)], 1: [ok(80.0), {"status": "failed"}]}
    t = build_table([a, b], [], costs, {}, results, {0: 2, 1: 2})
    ra, rb = t.rows
    assert (ra["top1"], ra["top1_std"], ra["runs"], ra["status"]) == (72.0, pytest.approx(2 ** 0.5 * 2), 2, "ok")
    assert (rb["top1"], rb["top1_std"], rb["runs"], rb["status"]) == (80.0, None, 1, "incomplete")
    assert (rb["delta_top1"], rb["delta_params"], rb["delta_macs"]) == (8.0, 30, 700)
    # higher accuracy at lower cost wins; (3, 70) is beaten by (2, 75), (4, 90) is on the front
    assert pareto_front([(1, 60), (3, 70), (2, 75), (4, 90), (4, 85)]) == [0, 2, 3]


def test_recipe_axes_become_recipe_overrides_and_bad_values_are_invalid() -> None:
    from spmkit.sweep import SweepSpec
    from spmkit.sweep.cost import validate
    from spmkit.sweep.runner import _check_recipes

    spec = SweepSpec(base="tiny_pvt", axes={"merging.type": ["conv"]}, recipe_axes={"lr": [1e-3, -1]},
                     recipe_overrides={"epochs": 1}, seeds=2)
    variants = expand(spec)
    assert [v.recipe_overrides for v in variants] == [("epochs=1", "lr=0.001"), ("epochs=1", "lr=-1")]
    assert [v.label for v in variants] == ["merging.type=conv recipe.lr=0.001", "merging.type=conv recipe.lr=-1"]
    grid, _ = validate(variants)
    _check_recipes(spec, grid)
    assert [v.index for v in grid.valid] == [0]
    ((bad, reason),) = grid.invalid
    assert bad.index == 1 and "lr" in reason and "greater than 0" in reason


def test_jobs_get_disjoint_devices(monkeypatch) -> None:
    from spmkit.sweep.executors import slot_envs

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert slot_envs(2, "cuda", 2) == [{"CUDA_VISIBLE_DEVICES": "4,5"}, {"CUDA_VISIBLE_DEVICES": "6,7"}]
    assert slot_envs(4, "auto", 1)[3] == {"CUDA_VISIBLE_DEVICES": "7"}
    with pytest.raises(SweepError, match="needs 6 GPUs; 4 are visible"):
        slot_envs(3, "cuda", 2)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert slot_envs(2, "cpu", 1) == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(SweepError, match="no GPU is visible"):
        slot_envs(1, "cuda", 1)
