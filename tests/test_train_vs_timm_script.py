"""benchmarks/train_vs_timm_script.py: argument parsing and the two commands (no timm train.py in CI)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("train_vs_timm_script", ROOT / "benchmarks" / "train_vs_timm_script.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def _sets(cmd: list[str]) -> dict[str, str]:
    return dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--set")


def test_commands_carry_the_same_recipe(tmp_path: Path) -> None:
    for c in ("a", "b", "c"):
        (tmp_path / "train" / c).mkdir(parents=True)
    m = _module()
    args = m.parse_args(["--timm-train", "/x/train.py", "--data", str(tmp_path), "--model", "test_vit",
                         "--img-size", "224", "--epochs", "3", "--batch-size", "32", "--workers", "2",
                         "--mixup", "0.8", "--cutmix", "1.0", "--reprob", "0.25", "--aa", "rand-m9-mstd0.5-inc1"])
    t = m.timm_command(args, tmp_path / "t")
    s = m.spmkit_command(args, tmp_path / "s")
    assert t[1].endswith("timm_train_patched.py") and t[2] == "/x/train.py"  # the posterize fix wraps timm
    assert _flag(t, "--model") == "test_vit" and _flag(s, "--blueprint") == "timm:test_vit"
    assert _flag(t, "--num-classes") == "3"
    assert float(_flag(t, "--lr")) == float(_flag(s, "--lr")) == 5e-4 * 32 / 512
    sets = _sets(s)
    pairs = {"--img-size": "img_size", "--mixup": "mixup", "--cutmix": "cutmix", "--reprob": "reprob",
             "--aa": "auto_augment", "--smoothing": "smoothing", "--weight-decay": "weight_decay",
             "--warmup-epochs": "warmup_epochs", "--min-lr": "min_lr", "--warmup-lr": "warmup_lr",
             "--color-jitter": "color_jitter", "--train-interpolation": "train_interpolation", "--opt": "opt",
             "--sched": "sched"}
    for flag, key in pairs.items():
        a, b = _flag(t, flag), sets[key]
        assert a == b or float(a) == float(b), (flag, a, b)
    assert _flag(t, "-j") == _flag(s, "--workers") == "2"
    assert _flag(t, "-b") == _flag(s, "--batch-size") == "32"
    assert _flag(t, "--epochs") == _flag(s, "--epochs") == "3"
    assert "--sched-on-updates" in t and "--no-prefetcher" not in t and sets["prefetch"] == "on"


def test_no_aa_and_prefetch_off(tmp_path: Path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    m = _module()
    args = m.parse_args(["--timm-train", "t.py", "--data", str(tmp_path), "--aa", "none", "--prefetch", "off",
                         "--amp", "bf16", "--crop-pct", "0.9"])
    t, s = m.timm_command(args, tmp_path / "t"), m.spmkit_command(args, tmp_path / "s")
    assert "--aa" not in t and _sets(s)["auto_augment"] == "null"
    assert "--no-prefetcher" in t and _sets(s)["prefetch"] == "off"
    assert _flag(t, "--amp-dtype") == "bfloat16" and _flag(s, "--amp") == "bf16"
    assert _flag(t, "--crop-pct") == _sets(s)["crop_pct"] == "0.9"


def test_timm_log_parsing(tmp_path: Path) -> None:
    m = _module()
    log = tmp_path / "timm.log"
    log.write_text("Train: 0 [   0/9 (  0%)]  Loss: 2.3 (2.3)  Time: 1.000s,   64.00/s  (1.000s,   64.00/s)  LR: 1e-4\n"
                   "Train: 0 [   8/9 (100%)]  Loss: 2.3 (2.3)  Time: 0.500s,  128.00/s  (0.600s,  106.67/s)  LR: 1e-4\n"
                   "Train: 1 [   8/9 (100%)]  Loss: 2.2 (2.2)  Time: 0.500s,  128.00/s  (0.500s,  128.00/s)  LR: 1e-4\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.csv").write_text("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n"
                                                  "0,2.3,2.3,10.0,50.0,1e-4\n1,2.2,2.2,12.5,55.0,1e-4\n")
    r = m.timm_result(tmp_path, log, 10.0, 8.0, 64)
    assert r.images_per_s == [106.67, 128.0] and r.top1 == 12.5
    assert abs(r.epoch_s[0] - 9 * 0.6) < 1e-9
