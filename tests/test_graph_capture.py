"""Every registered stem, merging layer, mixer and block compiles with ``fullgraph=True`` and exports with
``torch.export`` at a dynamic batch; FX (``create_feature_extractor``) traces every tiny blueprint; the
tiny SPM model has no graph break (GLE used to branch on the thread count)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spmkit
from spmkit.registry import BLOCKS, MERGING, MIXERS, STEMS, load_components

from conftest import tiny_blueprint_files

load_components()
KINDS = {"stem": STEMS, "merging": MERGING, "mixer": MIXERS, "block": BLOCKS}
COMPONENTS = [(kind, name) for kind, reg in KINDS.items() for name in reg.names()]
#: which instance of a component to test, where the first one found would skip its interesting path
PREFER = {("mixer", "window"): lambda m: any(m.shift_size)}
IMG = 32  # every tiny blueprint builds at 64; a smaller input keeps each capture short


def _models() -> dict[str, nn.Module]:
    if not hasattr(_models, "cache"):
        _models.cache = {p.stem: spmkit.create_model(str(p)).eval() for p in tiny_blueprint_files()}  # type: ignore[attr-defined]
    return _models.cache  # type: ignore[attr-defined]


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


class _Bound(nn.Module):
    """Calls ``module`` with the captured non-tensor arguments bound and its tensor arguments positional,
    so ``torch.export`` gets one dynamic batch dimension per tensor."""

    def __init__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.module, self.args, self.kwargs = module, args, kwargs
        self.slots = [("a", i) for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        self.slots += [("k", k) for k, v in kwargs.items() if isinstance(v, torch.Tensor)]

    def tensors(self, args: tuple, kwargs: dict) -> tuple[torch.Tensor, ...]:
        return tuple(args[i] if kind == "a" else kwargs[i] for kind, i in self.slots)

    def forward(self, *tensors: torch.Tensor):
        args, kwargs = list(self.args), dict(self.kwargs)
        for (kind, i), t in zip(self.slots, tensors):
            if kind == "a":
                args[i] = t
            else:
                kwargs[i] = t
        return self.module(*args, **kwargs)


def _capture(kind: str, name: str) -> tuple[nn.Module, dict[int, tuple[tuple, dict]]]:
    """The first tiny-blueprint instance of a component and its inputs at batch 2 and 3."""
    cls = KINDS[kind].get(name)
    prefer = PREFER.get((kind, name), lambda m: True)
    for model in _models().values():
        found = [m for m in model.modules() if type(m) is cls]
        if not found:
            continue
        module = next((m for m in found if prefer(m)), found[0])
        calls: dict[int, tuple[tuple, dict]] = {}

        def hook(mod, args, kwargs):
            batch = _tensors(args)[0].shape[0]
            calls.setdefault(batch, (args, kwargs))

        handle = module.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad():
                for batch in (2, 3):
                    model(torch.randn(batch, 3, IMG, IMG))
        finally:
            handle.remove()
        return module, calls
    raise AssertionError(f"no tiny blueprint uses the {kind} {name!r} (test_registry checks that one does)")


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=[f"{k}-{n}" for k, n in COMPONENTS])
def test_component_compiles_fullgraph_and_exports_with_dynamic_batch(kind: str, name: str) -> None:
    module, calls = _capture(kind, name)
    bound = _Bound(module, *calls[2])
    x2, x3 = bound.tensors(*calls[2]), bound.tensors(*calls[3])
    with torch.no_grad():
        want2, want3 = _tensors(bound(*x2)), _tensors(bound(*x3))
        torch._dynamo.reset()
        got = _tensors(torch.compile(bound, fullgraph=True, backend="eager")(*x2))
    for g, w in zip(got, want2, strict=True):
        torch.testing.assert_close(g, w)

    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(bound, x2, dynamic_shapes=(tuple({0: batch} for _ in x2),))  # one spec per *tensors
    with torch.no_grad():
        got3 = _tensors(ep.module()(*x3))  # a batch size it was not traced at
    for g, w in zip(got3, want3, strict=True):
        torch.testing.assert_close(g, w)


def test_tiny_spm_model_has_no_graph_breaks_with_one_thread() -> None:
    """With one thread, GLE used to branch on ``torch.get_num_threads()`` (16 breaks on pvt_tiny_spm)."""
    assert torch.get_num_threads() == 1  # conftest: the thread count that turned GLE's chunking on
    model = _models()["tiny_pvt_spm"]
    torch._dynamo.reset()
    explain = torch._dynamo.explain(model)(torch.randn(2, 3, 64, 64))
    assert explain.graph_break_count == 0, [str(r.reason)[:200] for r in explain.break_reasons]
    assert explain.graph_count == 1


def test_gle_chunked_eager_path_equals_captured_path() -> None:
    """Eager one-thread chunking (off under capture) gives the same output as the single pass."""
    from spmkit.layers.gle import GuidedLocalEnhancement

    gle = GuidedLocalEnhancement(16, num_heads=2).eval()
    x = torch.randn(3, 16, 9, 11)  # odd sizes: padded windows and their bias, chunked by rows
    with torch.no_grad():
        gle.cpu_chunk_elements = 1  # one window row per chunk
        chunked = gle(x)
        gle.cpu_chunk_elements = 0
        single = gle(x)
        ep = torch.export.export(gle, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
        gle.cpu_chunk_elements = 1  # a captured graph never chunks, whatever the setting
        exported = ep.module()(x)
    torch.testing.assert_close(chunked, single)
    torch.testing.assert_close(exported, single)


@pytest.mark.parametrize("path", tiny_blueprint_files(), ids=lambda p: p.stem)
def test_create_feature_extractor_traces_tiny_blueprint(path) -> None:
    from torchvision.models.feature_extraction import create_feature_extractor

    model = _models()[path.stem]
    extractor = create_feature_extractor(model, return_nodes={"norm": "features", "head": "logits"})
    x = torch.randn(2, 3, 48, 40)  # not the blueprint's size: padding, resized tables, odd maps
    with torch.no_grad():
        out = extractor(x)
        torch.testing.assert_close(out["logits"], model(x))
        torch.testing.assert_close(model.forward_head(out["features"]), out["logits"])


def test_jit_trace_at_batch_1_runs_at_batch_4() -> None:
    """The traced graph has no batch-specialised Python ints (GLE's chunk loop used to be unrolled into it)."""
    from spmkit.layers.gle import GuidedLocalEnhancement

    model = spmkit.create_model("tiny_pvt_spm").eval()
    gles = [m for m in model.modules() if isinstance(m, GuidedLocalEnhancement)]
    assert gles
    for m in gles:
        m.cpu_chunk_elements = 1  # eager would chunk every window row
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, 64, 64), check_trace=False)
        x = torch.randn(4, 3, 64, 64)
        torch.testing.assert_close(traced(x), model(x))
