"""Hostile and broken input: YAML bombs, resource bombs, bad numbers, missing devices, outputs over inputs.

Every case must end in exit code 2, one paragraph on stderr (no blank line, no ``Traceback``), quickly.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import spmkit
from spmkit.cli.app import app
from spmkit.errors import SpmkitError

runner = CliRunner()
TINY = Path(__file__).resolve().parent.parent / "blueprints" / "tiny" / "tiny_pvt.yaml"


def assert_user_error(res, *needles: str, seconds: float | None = None) -> None:
    """Exit 2, one paragraph on stderr starting with ``error:``, no traceback, each needle in the message."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    err = res.stderr.strip()
    lines = err.splitlines()
    assert any(ln.startswith(("error:", "Usage:")) for ln in lines), err  # (after progress lines, if any)
    assert all(ln.strip() for ln in lines), f"more than one paragraph:\n{err}"
    for needle in needles:
        assert needle in err, (needle, err)


def _alias_bomb(levels: int = 9, key: str = "stages") -> str:
    """``levels`` of ten-fold aliases: 10**levels strings when expanded, a few hundred bytes on disk."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\n{key}: *a{levels - 1}\n"


def _write(tmp_path: Path, text: str | bytes, name: str = "bp.yaml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


# ----------------------------------------------------------------------------- YAML bombs (serious 1)
@pytest.mark.parametrize("field", ["stages", "reference"])  # a typed field and a free-form one
def test_alias_bomb_is_refused_quickly(tmp_path: Path, field: str) -> None:
    head = "name: bomb\nstem: {type: patch_embed}\nmixer: {type: sra}\n" if field == "stages" else TINY.read_text()
    bp = _write(tmp_path, head + _alias_bomb(key=field))
    t0 = time.perf_counter()
    res = runner.invoke(app, ["build", str(bp)])
    assert time.perf_counter() - t0 < 5
    assert_user_error(res, str(bp), "aliases")


def _inline_bomb(levels: int = 9) -> str:
    """The same bomb as one flow sequence, e.g. a ``--set`` value."""
    parts = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def test_alias_bomb_in_set_value_and_recipe(tmp_path: Path) -> None:
    from spmkit.tasks.recipe import load_recipe
    from spmkit.tasks.classification import ClassificationRecipe

    t0 = time.perf_counter()
    res = runner.invoke(app, ["build", "tiny_pvt", "--set", f"reference.x={_inline_bomb()}"])
    assert time.perf_counter() - t0 < 5
    assert_user_error(res, "aliases")
    with pytest.raises(SpmkitError, match="aliases"):
        load_recipe(ClassificationRecipe, None, [f"scale={_inline_bomb()}"])
    recipe = _write(tmp_path, _alias_bomb(key="scale"), "recipe.yaml")
    with pytest.raises(SpmkitError, match="aliases"):
        load_recipe(ClassificationRecipe, recipe)


@pytest.mark.parametrize("text, needle", [
    ("a: &a [*a]\n", "recursive"),
    ("stages: " + "[" * 3000 + "]" * 3000 + "\n", "nests deeper"),
    ("img_size: " + "9" * 5000 + "\n", "cannot be read"),
    (b"name: caf\xe9\n", "not a UTF-8 text file"),
])
def test_unreadable_yaml_is_one_paragraph(tmp_path: Path, text, needle: str) -> None:
    bp = _write(tmp_path, text)
    assert_user_error(runner.invoke(app, ["build", str(bp)]), str(bp), needle)
    recipe = _write(tmp_path, text, "recipe.yaml")
    res = runner.invoke(app, ["train", "--blueprint", "tiny_pvt", "--data", str(tmp_path), "--output",
                              str(tmp_path / "run"), "--recipe", str(recipe), "--devices", "cpu"])
    assert_user_error(res, str(recipe), needle)


def test_error_messages_show_a_bounded_prefix_of_values(tmp_path: Path) -> None:
    long = "x" * 100_000
    bp = _write(tmp_path, TINY.read_text().replace("name: tiny_pvt", f"name: {long}")
                + f"\nin_chans: [{', '.join(['1'] * 5000)}]\nact: {long}\n")
    res = runner.invoke(app, ["build", str(bp)])
    assert_user_error(res, "in_chans", "name")
    assert len(res.stderr) < 3000


def test_extends_chains_are_bounded(tmp_path: Path) -> None:
    for i in range(60):
        _write(tmp_path, f"extends: b{i + 1}.yaml\nname: b{i}\n", f"b{i}.yaml")
    _write(tmp_path, "extends: tiny_pvt\nname: last\n", "b60.yaml")
    assert_user_error(runner.invoke(app, ["build", str(tmp_path / "b0.yaml")]), "extends")
    _write(tmp_path, "extends: c1.yaml\nname: c0\n", "c0.yaml")
    _write(tmp_path, "extends: c0.yaml\nname: c1\n", "c1.yaml")
    assert_user_error(runner.invoke(app, ["build", str(tmp_path / "c0.yaml")]), "circular extends")


# ----------------------------------------------------------------------------- invalid values
@pytest.mark.parametrize("override, field", [
    ("stages.0.dim=true", "stages.0.dim"),
    ("stages.0.depth=2.5", "stages.0.depth"),
    ("norm.eps=-1e-6", "norm.eps"),
    ("norm.eps=0", "norm.eps"),
    ("head.num_classes=-5", "head.num_classes"),
    ("mlp_ratio=.inf", "mlp_ratio"),
    ("drop_path_rate=.nan", "drop_path_rate"),
    ("stages.0.sr_ratio=true", "stages.0.sr_ratio"),
    ("stem.patch_size=0", "stem.patch_size"),
    ("img_size=0", "img_size"),
    ("stages.0.depth=1000000000", "stages.0.depth"),
    ("stages.0.dim=1000000000", "stages.0.dim"),
])
def test_invalid_values_are_rejected(override: str, field: str) -> None:
    assert_user_error(runner.invoke(app, ["build", "tiny_pvt", "--set", override]), field)


def test_wrongly_typed_extra_is_rejected() -> None:
    assert_user_error(runner.invoke(app, ["build", "tiny_swin", "--set", "window_size=four"]), "window_size")


def test_recipe_numbers_are_numbers() -> None:
    from spmkit.tasks.recipe import load_recipe
    from spmkit.tasks.classification import ClassificationRecipe

    for override in ("epochs=true", "lr=inf", "lr=.nan", "scale=[0.1, .inf]", "batch_size=10000000000"):
        with pytest.raises(SpmkitError, match=override.split("=")[0]):
            load_recipe(ClassificationRecipe, None, [override])


@pytest.mark.parametrize("args", [
    ["build", "tiny_pvt", "--input-size", "0"],
    ["build", "tiny_pvt", "--input-size", "100000000"],
    ["profile", "tiny_pvt", "--batch-size", "0"],
    ["profile", "tiny_pvt", "--input-size", "0x5"],
    ["profile", "tiny_pvt", "--repeats", "0"],
])
def test_numeric_options_are_bounded(args: list[str]) -> None:
    assert_user_error(runner.invoke(app, args))


# ----------------------------------------------------------------------------- resource bombs (serious 8)
def test_resource_bomb_is_refused_with_an_estimate_before_allocating() -> None:
    overrides = [f"stages.{i}.dim=65536" for i in range(4)] + ["stages.0.depth=32"]
    t0 = time.perf_counter()
    with pytest.raises(SpmkitError, match=r"too large to run here: [\d,]+ parameters"):
        spmkit.create_model("tiny_pvt", overrides=overrides)
    assert time.perf_counter() - t0 < 15
    meta = spmkit.create_model("tiny_pvt", overrides=overrides, device="meta")  # counting stays possible
    assert sum(p.numel() for p in meta.parameters()) > 10**12


def test_model_larger_than_free_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import spmkit.sizing as sizing
    from spmkit.builder import estimate

    est = estimate(spmkit.load_blueprint("tiny_pvt"))
    assert est.params == sum(p.numel() for p in spmkit.create_model("tiny_pvt").parameters())
    monkeypatch.setattr(sizing, "available_bytes", lambda device: est.param_bytes // 2)
    with pytest.raises(sizing.ResourceError, match="110,698 parameters"):
        spmkit.create_model("tiny_pvt")
    res = runner.invoke(app, ["profile", "tiny_pvt", "--no-train", "--no-memory", "--repeats", "1", "--warmup", "0"])
    assert_user_error(res, "too large")


# ----------------------------------------------------------------------------- devices
def test_missing_gpus_are_reported_before_launching(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import spmkit.train.launch as launch

    def no_launch(*a, **k):
        raise AssertionError("processes were launched")

    monkeypatch.setattr(launch, "launch", no_launch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    base = ["train", "--blueprint", "tiny_pvt", "--data", str(tmp_path), "--output", str(tmp_path / "run")]
    assert_user_error(runner.invoke(app, [*base, "--gpus", "8"]), "8 GPU processes", "2 visible")
    assert_user_error(runner.invoke(app, [*base, "--device", "cuda:2"]), "2 visible GPUs (cuda:0 to cuda:1)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert_user_error(runner.invoke(app, [*base, "--devices", "cuda"]), "no CUDA GPU")
    assert_user_error(runner.invoke(app, [*base, "--gpus", "2"]), "no CUDA GPU")
    assert_user_error(runner.invoke(app, [*base, "--devices", "tpu"]), "choose auto, cpu, cuda or cuda:N")
    assert_user_error(runner.invoke(app, [*base, "--nproc", "0"]))
    assert_user_error(runner.invoke(app, [*base, "--devices", "cpu", "--nproc", "100000"]), "CPU processes")
    assert_user_error(runner.invoke(app, ["eval", "--data", str(tmp_path), "-b", "tiny_pvt", "--devices", "cuda"]),
                      "no CUDA GPU")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- outputs
def test_outputs_never_overwrite_inputs_or_existing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = _write(tmp_path, b"weights", "weights.pth")
    image = _write(tmp_path, b"pixels", "image.png")
    existing = _write(tmp_path, b"mine", "mine.pt")
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    for args, needle in [
        (["convert", str(ckpt), "-b", "tiny_swin", "-o", str(ckpt)], "input"),
        (["convert", str(ckpt), "-b", "tiny_swin", "-o", str(existing)], "--force"),
        (["convert", str(ckpt), "-b", "tiny_swin", "-o", "folder"], "--output folder:"),
        (["predict", str(image), "-c", str(ckpt), "-o", str(image)], "input"),
        (["predict", str(image), "-c", str(ckpt), "-o", str(ckpt)], "input"),
        (["predict", str(image), "-c", str(ckpt), "-o", str(existing)], "--force"),
    ]:
        assert_user_error(runner.invoke(app, args), needle)
    assert ckpt.read_bytes() == b"weights" and image.read_bytes() == b"pixels" and existing.read_bytes() == b"mine"


# ----------------------------------------------------------------------------- the top-level handler
def test_internal_errors_exit_1_with_one_paragraph(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import sys

    import spmkit.profile.summary as summary
    from spmkit.cli.app import main

    def boom(*a, **k):
        raise RuntimeError("unexpected state")

    monkeypatch.setattr(summary, "summarize", boom)
    monkeypatch.setattr(sys, "argv", ["spmkit", "build", "tiny_pvt"])
    monkeypatch.delenv("SPMKIT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "internal error: RuntimeError: unexpected state" in err
    assert "Traceback" not in err and "SPMKIT_DEBUG=1" in err
    monkeypatch.setenv("SPMKIT_DEBUG", "1")
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1 and "Traceback" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["spmkit", "build", "tiny_pvt", "--no-such-option"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2  # click's usage errors keep exit 2


def test_recipe_settings_timm_refuses_are_recipe_errors() -> None:
    from spmkit.train.optim import create_optimizer, create_scheduler
    from spmkit.tasks.recipe import RecipeError, load_recipe
    from spmkit.tasks.classification import ClassificationRecipe

    model = spmkit.create_model("tiny_pvt", device="meta")
    for override in ("opt_betas=[2, 0.9]", "opt_eps=-1", "momentum=-1", "seed=100000000000000000000", "min_lr=-1"):
        with pytest.raises(RecipeError, match=override.split("=")[0]):
            load_recipe(ClassificationRecipe, None, [override])
    with pytest.raises(RecipeError, match="optimizer 'nosuch'"):
        create_optimizer(model, load_recipe(ClassificationRecipe, None, ["opt=nosuch"]), 1e-3)
    opt = create_optimizer(model, load_recipe(ClassificationRecipe), 1e-3)
    with pytest.raises(RecipeError, match="schedule 'nosuch'"):
        create_scheduler(opt, load_recipe(ClassificationRecipe, None, ["sched=nosuch"]), 10)


def test_augmentation_settings_are_checked_with_the_recipe() -> None:
    from spmkit.tasks.recipe import RecipeError, load_recipe
    from spmkit.tasks.classification import ClassificationRecipe

    for override, needle in [("auto_augment=garbage", "auto_augment"), ("train_interpolation=garbage", "garbage"),
                             ("scale=[2, 1]", "scale"), ("hflip=7", "hflip"), ("recount=-3", "recount"),
                             ("crop_pct=-1", "crop_pct")]:
        with pytest.raises(RecipeError, match=needle):
            load_recipe(ClassificationRecipe, None, [override])


def test_profile_batch_that_cannot_fit_is_refused_before_building() -> None:
    res = runner.invoke(app, ["profile", "swin_t", "--batch-size", "4096", "--input-size", "4096", "--repeats", "1"])
    assert_user_error(res, "4096 images of 4096x4096")


def _numeric(tp: object) -> bool:
    import typing

    if tp is bool:
        return False
    if tp in (int, float):
        return True
    return any(_numeric(a) for a in typing.get_args(tp) if a is not type(None))


def test_every_numeric_option_of_every_command_is_bounded() -> None:
    """Commands added later are covered too: each int/float option states the range it accepts, so 0, negative
    or absurd values are usage errors (exit 2) before anything runs."""
    import inspect
    import typing

    from typer.models import OptionInfo

    unbounded = []
    for info in app.registered_commands:
        fn = inspect.unwrap(info.callback)
        for name, hint in typing.get_type_hints(fn, include_extras=True).items():
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            base, *meta = typing.get_args(hint)
            opt = next((m for m in meta if isinstance(m, OptionInfo)), None)
            if opt is not None and _numeric(base) and opt.min is None and opt.max is None:
                unbounded.append(f"{info.name or fn.__name__}: {name}")
    assert not unbounded, unbounded


@pytest.mark.parametrize("args", [
    ["sweep", "tiny_pvt", "--vary", "merging.type=conv,spm", "--dry-run", "--jobs", "0"],
    ["sweep", "tiny_pvt", "--vary", "merging.type=conv,spm", "--dry-run", "--seeds", "-1"],
    ["visualize", "erf", "--blueprint", "tiny_pvt", "--samples", "0"],
    ["visualize", "attention", "--blueprint", "tiny_pvt", "--query", "2", "0.5"],
    ["export", "tiny_pvt", "-o", "m.onnx", "--input-size", "0", "32"],
    ["export", "tiny_pvt", "-o", "m.onnx", "--atol", "-1"],
    ["train", "--blueprint", "tiny_pvt", "--data", "d", "--output", "r", "--seed", "-3"],
])
def test_new_commands_refuse_out_of_range_numbers(args: list[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_user_error(runner.invoke(app, args))
    assert not list(tmp_path.iterdir())  # nothing written


def test_sweep_files_are_read_within_the_yaml_bounds(tmp_path: Path) -> None:
    """Sweep files go through the same bounded reader as blueprints and recipes."""
    rows = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for name, prev in zip("bcdef", "abcde"):
        rows.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(rows) + "\nbase: tiny_pvt\naxes: {merging.type: [conv]}\n")
    t0 = time.perf_counter()
    assert_user_error(runner.invoke(app, ["sweep", str(bomb), "--dry-run"]), "bomb.yaml", "expands")
    assert time.perf_counter() - t0 < 10
