"""Fidelity against the official code: each official model and its blueprint give the same logits after the
official ``state_dict`` goes through spmkit's converter (the table docs/zoo.md quotes).

    PYTHONPATH=. python benchmarks/official_parity.py \\
        --checkout whai362/PVT=/src/PVT --checkout microsoft/Swin-Transformer=/src/Swin-Transformer \\
        --checkout Yonghao-Yu/StepwisePatchMerging=/src/StepwisePatchMerging --checkout ziplab/LIT=/src/LIT \\
        --checkout AILab-CVC/GroupMixFormer=/src/GroupMixFormer --checkout rayleizhu/GLMix=/src/GLMix [--write]

Which official model each blueprint reproduces (repository, file, model or config, layout) is read from the
blueprints' ``release:`` blocks; the checkouts stay outside this repository and nothing of them is copied.
For each model: build the official model (its own init), randomise what its init leaves constant (BatchNorm
statistics, layer scales, norm affines, zero biases; LIT's deformable offsets stay at their zero init), load
its ``state_dict`` into the blueprint with ``spmkit.convert.load_weights`` (strict), and compare the logits
in eval mode on random 224x224 inputs. Blueprints whose repository has no checkout are listed as skipped.

Stand-ins for what the official code imports but does not need here (installed only while it is imported):
``fairscale.nn.checkpoint.checkpoint_wrapper`` (GLNet; identity), ``ipdb`` (GroupMixFormer; unused) and
LIT's CUDA ``DeformConv2dPack`` (``torchvision.ops.deform_conv2d``, the same operation). GroupMixFormer needs
``einops`` installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import shlex
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOC = Path(__file__).resolve().parent.parent / "docs" / "zoo.md"
#: top-level module names the official repositories use for their own files (dropped between repositories)
_LOCAL_NAMES = ("models", "blocks", "patch_embed", "params", "spm", "mm_modules", "attention", "layers", "config",
                "kernels", "fairscale", "ipdb")


class ParityError(Exception):
    """A checkout that cannot be used (printed as one line, exit status 2)."""


@dataclass
class Row:
    blueprint: str
    official: str
    layout: str
    max_logit: float = math.nan
    max_diff: float = math.nan
    skipped: str = ""

    @property
    def relative(self) -> float:
        return self.max_diff / self.max_logit if self.max_logit else math.nan


# -- importing official files -----------------------------------------------------------------------------


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def _deform_conv_pack() -> type:
    """LIT's ``mm_modules.DCN.modules.deform_conv2d.DeformConv2dPack`` (weight, bias, conv_offset), on torchvision."""
    import torch
    from torch import nn
    from torch.nn.modules.utils import _pair
    from torchvision.ops import deform_conv2d

    class DeformConv2dPack(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, groups=1,
                     deformable_groups=1, im2col_step=32, bias=True, lr_mult=0.1):
            super().__init__()
            k, self.stride, self.padding, self.dilation = (_pair(kernel_size), _pair(stride), _pair(padding),
                                                           _pair(dilation))
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k))
            self.bias = nn.Parameter(torch.zeros(out_channels))
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(in_channels // groups * k[0] * k[1])
            nn.init.uniform_(self.bias, -bound, bound)
            self.conv_offset = nn.Conv2d(in_channels, deformable_groups * 2 * k[0] * k[1], k, self.stride,
                                         self.padding, bias=True)
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

        def forward(self, x, return_offset=False):
            offset = self.conv_offset(x)
            out = deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation)
            return out, (offset if return_offset else None)

    return DeformConv2dPack


def _stand_ins() -> dict[str, types.ModuleType]:
    pack = _deform_conv_pack()
    identity = lambda module, *a, **k: module  # noqa: E731
    return {
        "fairscale": _module("fairscale"), "fairscale.nn": _module("fairscale.nn"),
        "fairscale.nn.checkpoint": _module("fairscale.nn.checkpoint", checkpoint_wrapper=identity),
        "ipdb": _module("ipdb", set_trace=lambda *a, **k: None),
        "mm_modules": _module("mm_modules", __path__=[]), "mm_modules.DCN": _module("mm_modules.DCN", __path__=[]),
        "mm_modules.DCN.modules": _module("mm_modules.DCN.modules", __path__=[]),
        "mm_modules.DCN.modules.deform_conv2d": _module("mm_modules.DCN.modules.deform_conv2d",
                                                        DeformConv2dPack=pack),
    }


@contextlib.contextmanager
def official_imports(*paths: Path) -> Iterator[None]:
    """``paths`` first on ``sys.path``, the stand-ins installed, no earlier repository's modules visible, and
    ``sys.argv`` without our arguments (LIT-Ti's ``params.py`` parses it on import); all undone afterwards."""
    def drop_local() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in _LOCAL_NAMES or name.startswith("_official_"):
                del sys.modules[name]

    saved_path, saved_argv = list(sys.path), list(sys.argv)
    drop_local()
    sys.modules.update(_stand_ins())
    sys.path[:0] = [str(p) for p in paths]
    sys.argv = [saved_argv[0]]
    try:
        yield
    finally:
        sys.path[:], sys.argv[:] = saved_path, saved_argv
        drop_local()


def load_file(path: Path) -> types.ModuleType:
    """Import one official file by path (its folder must be on ``sys.path`` for its sibling imports)."""
    if not path.is_file():
        raise ParityError(f"{path} does not exist: is the checkout at the commit the release names?")
    name = f"_official_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _config(checkout: Path, rel: str, section: str) -> dict[str, Any]:
    """``MODEL.<section>`` of an official YAML config, keys lower-cased (read with spmkit's bounded reader)."""
    from spmkit.io.safe_yaml import read_yaml_file

    data = read_yaml_file(checkout / rel) or {}
    return {k.lower(): v for k, v in ((data.get("MODEL") or {}).get(section) or {}).items()}


# -- one builder per official repository ------------------------------------------------------------------


def _by_function(sub: str = "") -> Callable[[Path, Any], Any]:
    """Repositories whose file defines one function per model (``pvt_tiny()``, ``glnet_4g()``)."""
    def build(checkout: Path, code: Any) -> Any:
        file = checkout / code.file
        with official_imports(file.parent):
            return getattr(load_file(file), code.model)()
    return build


def _swin(checkout: Path, code: Any) -> Any:
    cfg = _config(checkout, code.config, "SWIN")
    with official_imports(checkout):
        mod = load_file(checkout / code.file)
        return mod.SwinTransformer(img_size=224, patch_size=4, in_chans=3, num_classes=1000,
                                   embed_dim=cfg["embed_dim"], depths=cfg["depths"], num_heads=cfg["num_heads"],
                                   window_size=cfg.get("window_size", 7), mlp_ratio=4.0, qkv_bias=True)


def _lit(checkout: Path, code: Any) -> Any:
    file = checkout / code.file
    if code.config is None:  # LIT-Ti: one function in code_for_lit_ti/lit.py
        with official_imports(file.parent):
            return getattr(load_file(file), code.model)()
    root = file.parent.parent  # code_for_lit_s_m_b: `from models.patch_embed import *`
    cfg = _config(checkout, code.config, "LIT")
    with official_imports(root):
        mod = importlib.import_module("models.lit")
        return mod.LIT(img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=cfg["embed_dim"],
                       depths=cfg["depths"], num_heads=cfg["num_heads"], mlp_ratio=4.0, qkv_bias=True,
                       qk_scale=None, drop_rate=0.0, drop_path_rate=0.0, ape=False, patch_norm=True,
                       use_checkpoint=False)


def _groupmixformer(checkout: Path, code: Any) -> Any:
    if importlib.util.find_spec("einops") is None:
        raise ParityError("AILab-CVC/GroupMixFormer's models/groupmixformer.py imports einops: pip install einops")
    cfg = {"embedding_dims": [80, 160, 320, 320], "serial_depths": [2, 4, 12, 4], "mlp_ratios": [4, 4, 4, 4],
           "num_heads": 8}  # the defaults of the release's config.py
    cfg.update(_config(checkout, code.config, "GMA"))
    file = checkout / code.file
    with official_imports(file.parent):
        mod = load_file(file)
        return mod.GroupMixFormer(patch_size=4, in_dim=3, num_stages=4, num_classes=1000,
                                  embedding_dims=cfg["embedding_dims"], serial_depths=cfg["serial_depths"],
                                  num_heads=cfg["num_heads"], mlp_ratios=cfg["mlp_ratios"], qkv_bias=True,
                                  qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0,
                                  pretrained=False)


BUILDERS: dict[str, Callable[[Path, Any], Any]] = {
    "whai362/PVT": _by_function(),
    "Yonghao-Yu/StepwisePatchMerging": _by_function(),
    "rayleizhu/GLMix": _by_function(),
    "microsoft/Swin-Transformer": _swin,
    "ziplab/LIT": _lit,
    "AILab-CVC/GroupMixFormer": _groupmixformer,
}


# -- the comparison -----------------------------------------------------------------------------------------


def randomise(model: Any, seed: int) -> None:
    """Give what the official init leaves constant random values (BatchNorm statistics, layer scales, norm
    affines, zero biases), so that every tensor's place is tested; deformable offsets stay at zero (their init)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or "offset" in name or name.endswith(("attn_mask", "relative_position_index")):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.numel() > 1 and bool((t == t.flatten()[0]).all()):
                t.add_(torch.randn(t.shape, generator=g) * 0.05)


def compare(name: str, checkout: Path, batch: int = 2, seed: int = 0) -> Row:
    import torch

    import spmkit
    from spmkit.convert import load_weights

    bp = spmkit.load_blueprint(name)
    release = bp.release
    torch.manual_seed(seed)
    official = BUILDERS[release.code.repo](checkout, release.code).eval()
    randomise(official, seed)
    ours = spmkit.create_model(name).eval()
    report = load_weights(ours, official.state_dict(), from_=release.layout)  # strict: every tensor placed
    x = torch.randn(batch, 3, *bp.image_size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        want, got = official(x), ours(x)
    if isinstance(want, (tuple, list)):
        want = want[0]
    return Row(name, release.code.model if release.code.config is None else Path(release.code.config).stem,
               report.layout, float(want.abs().max()), float((want - got).abs().max()))


# -- the command --------------------------------------------------------------------------------------------


def parse_checkouts(items: list[str]) -> dict[str, Path]:
    """``["owner/name=PATH", ...]`` -> {repository: path}; a path that is not a folder is an error."""
    out: dict[str, Path] = {}
    for item in items:
        repo, sep, path = item.partition("=")
        if not sep or not repo or not path:
            raise ParityError(f"--checkout {item!r}: expected OWNER/NAME=PATH, e.g. whai362/PVT=/src/PVT")
        if repo not in BUILDERS:
            raise ParityError(f"--checkout {item!r}: no builder for {repo}; known: {', '.join(BUILDERS)}")
        if not Path(path).is_dir():
            raise ParityError(f"--checkout {item!r}: {path} is not a folder (a local clone of {repo})")
        out[repo] = Path(path)
    return out


def markdown(rows: list[Row], command: str) -> str:
    done = [r for r in rows if not r.skipped]
    lines = ["| blueprint | official model | layout | max abs logit | max abs difference | relative |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    lines += [f"| `{r.blueprint}` | {r.official} | {r.layout} | {r.max_logit:.3f} | {r.max_diff:.2e} | "
              f"{r.relative:.1e} |" for r in done]
    skipped = [f"`{r.blueprint}` ({r.skipped})" for r in rows if r.skipped]
    return "\n".join([
        "Each blueprint equals its release: with the official model code (outside the repository), its own "
        "random init with BatchNorm statistics, layer scales, norm affines and zero biases randomised, the "
        "official model's `state_dict` goes through `spmkit.convert.load_weights` (strict) into the blueprint "
        "and the logits agree in eval mode on random inputs at the blueprint's size (relative: difference / "
        "max abs logit). LIT's deformable offsets stay at their zero init, and its CUDA deformable conv is "
        "replaced by `torchvision.ops.deform_conv2d` (the same operation).", "",
        f"Command: `{command}`", "", *lines, *(["", f"Skipped: {', '.join(skipped)}."] if skipped else [])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", action="append", default=[], metavar="OWNER/NAME=PATH",
                    help="a local clone of an official repository (repeat for each)")
    ap.add_argument("--only", action="append", default=[], metavar="BLUEPRINT", help="compare only these")
    ap.add_argument("--write", action="store_true", help="write the table into docs/zoo.md (section zoo_fidelity)")
    args = ap.parse_args(argv)
    from spmkit.blueprint.zoo import releases

    try:
        checkouts = parse_checkouts(args.checkout)
    except ParityError as err:
        print(f"official_parity: {err}", file=sys.stderr)
        return 2
    wanted = releases()
    unknown = sorted(set(args.only) - set(wanted))
    if unknown:
        print(f"official_parity: no release block in {', '.join(unknown)}; blueprints with one: "
              f"{', '.join(wanted)}", file=sys.stderr)
        return 2
    names = [n for n in wanted if not args.only or n in args.only]
    if not checkouts:
        repos = sorted({wanted[n].code.repo for n in names})
        print("official_parity: no checkouts given, nothing compared. The official code stays outside this "
              "repository; clone the repositories and pass each as --checkout OWNER/NAME=PATH: "
              f"{', '.join(repos)}.", file=sys.stderr)
        return 0
    rows = []
    for name in names:
        code = wanted[name].code
        if code.repo not in checkouts:
            rows.append(Row(name, code.model, wanted[name].layout, skipped=f"no checkout of {code.repo}"))
            continue
        print(f"[parity] {name}: {code.repo} {code.file} {code.config or code.model}", file=sys.stderr)
        try:
            rows.append(compare(name, checkouts[code.repo]))
        except ParityError as err:
            rows.append(Row(name, code.model, wanted[name].layout, skipped=str(err)))
    command = "PYTHONPATH=. python benchmarks/official_parity.py " + " ".join(
        shlex.quote(a if not a.startswith(tuple(checkouts)) else a.split("=")[0] + "=...") for a in sys.argv[1:])
    body = markdown(rows, command)
    print(body)
    if args.write:
        from benchmarks.docsection import write_section

        write_section("zoo_fidelity", "Fidelity", body, DOC)
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
