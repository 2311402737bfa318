"""One vocabulary across commands: every command's shared options are spelled and described as in
``spmkit/cli/options.py`` (commands added later are walked too), plus --version, the --set / --model-set
split and the errors that point from one to the other."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from spmkit.cli import options
from spmkit.cli.app import app

runner = CliRunner()
SHARED = {"--set": options.RecipeSetOption, "--model-set": options.ModelSetOption, "--device": options.DeviceOption,
          "--json": options.JsonOption, "--amp": options.AmpOption, "--seed": options.SeedOption}


def _canonical() -> dict:
    """The click options that options.py's aliases produce (read through a throwaway Typer app)."""
    probe = typer.Typer()

    def cmd(set_: options.RecipeSetOption = None, model_set: options.ModelSetOption = None,
            device: options.DeviceOption = None, json_: options.JsonOption = False,
            amp: options.AmpOption = None, seed: options.SeedOption = None) -> None:
        pass

    probe.command()(cmd)
    params = typer.main.get_command(probe).params
    return {name: next(p for p in params if name in p.opts) for name in SHARED}


def _commands() -> dict:
    group = typer.main.get_command(app)  # typer may carry its own click: duck-typed, no isinstance
    return dict(group.commands)


def _is_option(p) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def test_every_command_spells_and_describes_shared_options_alike() -> None:
    canonical = _canonical()
    commands = _commands()
    assert {"build", "train", "eval", "predict", "profile", "list", "convert", "plot"} <= set(commands)
    checked = 0
    for name, command in commands.items():
        for p in command.params:
            if not _is_option(p) or p.hidden:
                continue
            assert "--devices" not in p.opts, f"{name}: --devices is the hidden alias of --device"
            for opt in set(p.opts) & set(canonical):
                ref = canonical[opt]
                assert sorted(p.opts) == sorted(ref.opts), f"spmkit {name} {opt}: {p.opts} != {ref.opts}"
                assert p.help == ref.help, f"spmkit {name} {opt}: help {p.help!r} != {ref.help!r}"
                assert p.is_flag == ref.is_flag, f"spmkit {name} {opt}"
                checked += 1
    assert checked >= 12


def test_device_is_accepted_where_a_model_runs() -> None:
    commands = _commands()
    for name in ("build", "train", "eval", "predict", "profile"):
        visible = [o for p in commands[name].params if _is_option(p) and not p.hidden for o in p.opts]
        assert "--device" in visible, name
    for name in ("build", "profile", "convert"):  # no recipe here: --model-set, and the old --set still works
        opts = {o: p.hidden for p in commands[name].params if _is_option(p) for o in p.opts}
        assert opts.get("--model-set") is False and opts.get("--set") is True, name


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_of_every_command_renders_flags_without_a_value(name: str) -> None:
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0, res.output
    for line in res.output.splitlines():
        if re.search(r"--json\b", line):
            assert "<bool>" not in line, line
    assert "--devices" not in res.output


def test_version_and_old_spellings() -> None:
    import spmkit

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"spmkit {spmkit.__version__}"
    res = runner.invoke(app, ["build", "tiny_swin", "--set", "stages.2.depth=2", "--json", "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    res2 = runner.invoke(app, ["build", "tiny_swin", "-m", "stages.2.depth=2", "--json", "--device", "cpu"])
    assert res2.exit_code == 0, res2.output

    a, b = json.loads(res.output), json.loads(res2.output)
    assert a["params"] == b["params"] and a["stages"][2]["depth"] == 2 and b["forward"]["output_shape"] == [1, 10]
    res = runner.invoke(app, ["build", "tiny_swin", "--device", "cpu", "--devices", "cuda"])
    assert res.exit_code == 2 and "disagree" in res.output


def test_recipe_set_of_a_blueprint_field_points_to_model_set(tmp_path: Path) -> None:
    res = runner.invoke(app, ["train", "--blueprint", "tiny_pvt", "--data", str(tmp_path / "d"), "--output",
                              str(tmp_path / "r"), "--set", "merging.type=spm", "--set", "smothing=0.1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    text = " ".join(res.output.split())
    assert "merging: a blueprint field" in text and "--model-set merging.type=" in text
    assert "smothing: unknown recipe field; did you mean 'smoothing'?" in text
    assert text.count("smoothing") == 1  # not suggested for merging


def test_stage_override_no_component_of_the_stage_takes_names_the_stage() -> None:
    from spmkit.blueprint import load_blueprint
    from spmkit.errors import BlueprintError

    hybrid = ["stages.3.mixer={type: global}"]
    load_blueprint("tiny_swin", [*hybrid, "stages.2.window_size=2"])  # stage 2 has window mixers: taken
    with pytest.raises(BlueprintError) as info:  # stage 3 has a global mixer; window_size goes nowhere
        load_blueprint("tiny_swin", [*hybrid, "stages.3.window_size=2"])
    text = str(info.value)
    assert "stages.3.window_size" in text and "no component of stages.3 takes 'window_size'" in text
    assert "mixer 'global'" in text and "block 'transformer'" in text
    with pytest.raises(BlueprintError) as info:  # a top-level extra no stage takes lists every stage's components
        load_blueprint("tiny_swin", [*hybrid, "sr_ratio=2"])
    assert ("stages.0-2: mixer 'window', block 'transformer'; stages.3: mixer 'global', block 'transformer'"
            in str(info.value))


def test_a_variant_says_what_it_changes_against_its_reference(tmp_path: Path) -> None:
    from spmkit.blueprint import load_blueprint
    from spmkit.blueprint.reference import compare_with_reference, describe
    from spmkit.builder import build_model

    variant = tmp_path / "my_pvt.yaml"
    variant.write_text("extends: pvt_tiny\nname: my_pvt\nstages.2.depth: 3\n")
    bp = load_blueprint(variant)
    params = sum(p.numel() for p in build_model(bp, device="meta").parameters())
    cmp = compare_with_reference(bp, params)
    assert cmp is not None and cmp.reference_name == "pvt_tiny" and list(cmp.changed) == ["stages.2.depth"]
    assert cmp.changed["stages.2.depth"] == (2, 3) and cmp.delta == params - 13_229_288 > 0
    line = describe(cmp)
    assert line.startswith("variant of pvt_tiny: changes stages.2.depth (2 -> 3)") and f"{cmp.delta:+,}" in line
    own = load_blueprint("pvt_tiny")
    same = compare_with_reference(own, 13_229_288)
    assert not same.is_variant and describe(same) == "parameters equal to pvt_tiny's reference count: 13,229,288."
    res = runner.invoke(app, ["build", str(variant)])
    assert res.exit_code == 0 and "DIFFERENT" not in res.output and "variant of pvt_tiny" in res.output


def test_no_flag_shows_a_value_placeholder() -> None:
    """A flag takes no value, so no command's help shows one (`--json <bool>`, `--dry-run <bool>`, ...), nor
    the root's (`spmkit --help`)."""
    for args in ([], *([name] for name in _commands())):
        res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        assert "<bool>" not in res.output and "BOOLEAN" not in res.output, (args, res.output)
