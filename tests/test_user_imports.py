"""A blueprint's ``imports:`` and ``--task SOURCE:NAME``: the user's own components and tasks from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from imagefolder_util import FAST, make_imagefolder
from typer.testing import CliRunner

import spmkit.tasks  # noqa: F401  (registers the builtin tasks before the snapshot below)
from spmkit.io import user_code
from spmkit.blueprint.loader import load_blueprint
from spmkit.cli.app import app
from spmkit.errors import BlueprintError, SpmkitError
from spmkit.registry import MIXERS, TASKS, load_components

ROOT = Path(__file__).resolve().parents[1]

MIXER = '''
import torch
import torch.nn.functional as F
from torch import nn

from spmkit.registry import MIXERS


@MIXERS.register("pooled_attention")
class PooledAttention(nn.Module):
    supports_prefix_tokens = True

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, num_prefix_tokens: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.heads, self.sr_ratio, self.prefix = num_heads, sr_ratio, num_prefix_tokens
        self.q = nn.Linear(dim, dim, device=device, dtype=dtype)
        self.kv = nn.Linear(dim, 2 * dim, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        prefix, grid = x[:, :self.prefix], x[:, self.prefix:]
        grid = F.avg_pool2d(grid.transpose(1, 2).reshape(b, c, *hw), self.sr_ratio, ceil_mode=True)
        kv = self.kv(torch.cat([prefix, grid.flatten(2).transpose(1, 2)], 1))
        k, v = kv.reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
'''

TASK = '''
from spmkit.registry import TASKS
from spmkit.tasks.classification import ClassificationTask


@TASKS.register("my_classification")
class MyClassification(ClassificationTask):
    name = "my_classification"
    best_metric = "top5"
'''

BLUEPRINT = "extends: tiny_pvt\nname: tiny_ext\nimports: [ext_mixer.py]\nmixer: {type: pooled_attention}\n"


@pytest.fixture(autouse=True)
def _forget_user_code():
    """Each test imports the user's files afresh; nothing it registers outlives it."""
    load_components()
    mixers, tasks = dict(MIXERS._items), dict(TASKS._items)
    yield
    MIXERS._items.clear(), MIXERS._items.update(mixers)
    TASKS._items.clear(), TASKS._items.update(tasks)
    user_code._by_path.clear()
    for name in [n for n in sys.modules if n.startswith(user_code.PACKAGE + ".")]:
        del sys.modules[name]


def _project(root: Path, mixer: str = MIXER, blueprint: str = BLUEPRINT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ext_mixer.py").write_text(mixer)
    (root / "ext.yaml").write_text(blueprint)
    return root / "ext.yaml"


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    return env


def test_build_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bp_file = _project(tmp_path / "proj")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = CliRunner().invoke(app, ["build", "../proj/ext.yaml", "--json", "--model-set", "stages.0.depth=2"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [s["mixer"] for s in out["stages"]] == ["pooled_attention"] * 4
    assert out["stages"][0]["depth"] == 2  # --model-set still applies
    bp = load_blueprint(bp_file)
    assert bp.imports == [str((tmp_path / "proj" / "ext_mixer.py").resolve())]  # stored absolute
    # the resolved blueprint (as in a checkpoint) rebuilds from any folder, once per process
    module = sys.modules[next(n for n in sys.modules if n.startswith(user_code.PACKAGE + ".ext_mixer_"))]
    again = load_blueprint(bp.model_dump(mode="json", exclude_unset=True))
    assert again.imports == bp.imports
    assert MIXERS.get("pooled_attention").__module__ == module.__name__


def test_build_in_a_fresh_process(tmp_path: Path) -> None:
    bp_file = _project(tmp_path / "proj")
    (tmp_path / "elsewhere").mkdir()
    proc = subprocess.run([sys.executable, "-m", "spmkit", "build", str(bp_file), "--json"], env=_env(),
                          cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["stages"][3]["mixer"] == "pooled_attention"


def test_extends_chain_imports_relative_to_each_file(tmp_path: Path) -> None:
    _project(tmp_path / "base")
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "block_note.py").write_text("from spmkit.registry import MIXERS\n"
                                                      "MIXERS.register('noted')(MIXERS.get('sra'))\n")
    child = tmp_path / "child" / "child.yaml"
    child.write_text("extends: ../base/ext.yaml\nimports: [block_note.py]\nstages.0.mixer: {type: noted}\n")
    bp = load_blueprint(child)
    assert bp.imports == [str((tmp_path / "base" / "ext_mixer.py").resolve()),
                          str((tmp_path / "child" / "block_note.py").resolve())]
    assert bp.stages[0].mixer.type == "noted" and "pooled_attention" in MIXERS


def test_only_named_files_are_imported(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    _project(tmp_path, mixer=f"open({str(marker)!r}, 'w').close()\n",
             blueprint="extends: tiny_pvt\nname: plain\n")
    load_blueprint(tmp_path / "ext.yaml")
    assert not marker.exists()


@pytest.mark.parametrize("entry,source,expected", [
    ("missing.py", None, "missing.py: no such file"),
    ("ext_mixer.py", "def broken(:\n", "SyntaxError (line 1)"),
    ("ext_mixer.py", "x = 1\nraise RuntimeError('no GPU here')\n", "RuntimeError (line 2): no GPU here"),
    ("no_such_pkg.mixers", None, "no module named 'no_such_pkg.mixers'"),
    ("not a module!", None, "neither a .py file nor a module name"),
])
def test_a_failing_import_names_the_file_and_the_blueprint(tmp_path: Path, entry: str, source: str | None,
                                                           expected: str) -> None:
    bp_file = _project(tmp_path, mixer=source or MIXER,
                       blueprint=f"extends: tiny_pvt\nname: bad\nimports: [{entry!r}]\n")
    res = CliRunner().invoke(app, ["build", str(bp_file), "--json"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert str(bp_file) in text and "imports.0" in text and expected in text
    assert "Traceback" not in res.output
    if source is not None:  # a failed file is not left half-imported: fixing it works in the same process
        (tmp_path / "ext_mixer.py").write_text(MIXER)
        assert load_blueprint(bp_file).imports


def test_imports_must_be_a_list(tmp_path: Path) -> None:
    bp_file = _project(tmp_path, blueprint="extends: tiny_pvt\nname: bad\nimports: ext_mixer.py\n")
    with pytest.raises(BlueprintError, match="imports: must be a list"):
        load_blueprint(bp_file)


def test_a_failing_task_import_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpmkitError, match=r"--task .*missing_tasks\.py:x: .*missing_tasks\.py: no such file"):
        user_code.task_class(user_code.absolute_task("missing_tasks.py:x"))
    (tmp_path / "tasks.py").write_text("raise ImportError('needs pycocotools')\n")
    with pytest.raises(SpmkitError, match=r"tasks\.py: importing it failed: ImportError \(line 1\): needs pyco"):
        user_code.task_class("tasks.py:x")
    assert user_code.split_task("classification") == (None, "classification")
    assert user_code.split_task("my_pkg.tasks:seg") == ("my_pkg.tasks", "seg")


def test_two_processes_train_a_user_mixer_with_a_user_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _project(tmp_path / "proj").parent
    (proj / "my_tasks.py").write_text(TASK)
    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=4, val_per_class=2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spmkit", "train", "--blueprint", "ext.yaml", "--task", "my_tasks.py:my_classification",
           "--data", str(data), "--output", str(out), "--epochs", "1", "--batch-size", "2", *FAST,
           "--nproc", "2", "--device", "cpu"]
    proc = subprocess.run(cmd, env=_env(), cwd=proj, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["world_size"] == 2 and ck["step"] == 2  # 8 images / (2 processes x 2)
    assert ck["task"] == f"{(proj / 'my_tasks.py').resolve()}:my_classification"
    assert ck["blueprint"]["imports"] == [str((proj / "ext_mixer.py").resolve())]
    assert ck["blueprint"]["mixer"]["type"] == "pooled_attention"
    # evaluation elsewhere rebuilds the user's task and mixer from what the checkpoint stores
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = CliRunner().invoke(app, ["eval", "--checkpoint", str(out / "last.pt"), "--data", str(data), "--json",
                                   "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "top1" in json.loads(res.output.strip().splitlines()[-1])
    assert TASKS.get("my_classification").best_metric == "top5"


def test_create_model_and_timm_names_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    import spmkit

    bp_file = _project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    name = spmkit.register_blueprint("ext.yaml", name="user_ext_test")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    x = torch.randn(1, 3, 64, 64)
    for model in (spmkit.create_model(bp_file, num_classes=3), timm.create_model(name, num_classes=3)):
        assert type(model.stages[0].blocks[0].attn).__name__ == "PooledAttention"
        assert model(x).shape == (1, 3)


def test_a_sweep_file_names_a_task_file_relative_to_itself(tmp_path: Path) -> None:
    from spmkit.sweep.spec import load_sweep_file

    sweep = tmp_path / "sweeps" / "s.yaml"
    sweep.parent.mkdir()
    (sweep.parent / "my_tasks.py").write_text(TASK)
    sweep.write_text("base: tiny_pvt\ntask: my_tasks.py:my_classification\naxes: {mlp_ratio: [1, 2]}\n")
    spec = load_sweep_file(sweep)
    assert spec.task == f"{(sweep.parent / 'my_tasks.py').resolve()}:my_classification"
    assert user_code.task_class(spec.task).best_metric == "top5"


def test_imports_are_not_a_change_against_the_reference(tmp_path: Path) -> None:
    bp_file = _project(tmp_path, blueprint="extends: pvt_tiny\nname: mine\nimports: [ext_mixer.py]\n"
                                           "stages.3.mixer: {type: pooled_attention}\n")
    res = CliRunner().invoke(app, ["build", str(bp_file)])
    assert res.exit_code == 0, res.output
    assert "variant of pvt_tiny: changes stages.3.mixer" in " ".join(res.output.split())
    assert "changes imports" not in res.output and "imports (" not in res.output
