"""The optimizer's kernels (recipe ``opt_impl``): fused where the optimizer and device take it, the same
updates as the one-parameter-at-a-time loop, and a clear refusal where ``fused`` is asked for and missing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from spmkit.tasks.recipe import RecipeError, TrainRecipe
from spmkit.train.optim import create_optimizer, fused_works, optimizer_impl


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3))


def _train(model: nn.Module, recipe: TrainRecipe, steps: int = 5) -> nn.Module:
    opt = create_optimizer(model, recipe, 1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(4, 6, generator=g), torch.randint(0, 3, (4,), generator=g)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model


@pytest.mark.parametrize("opt", ["adamw", "adam", "sgd", "lamb"])
@pytest.mark.parametrize("impl", ["auto", "foreach"])
def test_kernels_give_the_loops_updates(opt: str, impl: str) -> None:
    base = _model()
    ref = _train(copy.deepcopy(base), TrainRecipe(opt=opt, opt_impl="loop", weight_decay=0.05))
    got = _train(copy.deepcopy(base), TrainRecipe(opt=opt, opt_impl=impl, weight_decay=0.05))
    moved = max((a - b).abs().max().item() for a, b in zip(ref.parameters(), base.parameters()))
    assert moved > 1e-3  # the updates did something (weight decay and lr reached the optimizer)
    for (name, a), b in zip(ref.named_parameters(), got.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_auto_is_fused_exactly_where_the_probe_says() -> None:
    model = _model()
    for opt in ("adamw", "sgd", "lamb"):
        o = create_optimizer(model, TrainRecipe(opt=opt), 1e-3)
        want = fused_works(opt, torch.device("cpu"), torch.float32, 0.9, {"eps": 1e-8} if opt != "sgd" else {})
        assert (optimizer_impl(o) == "fused") == want, (opt, optimizer_impl(o))
    assert optimizer_impl(create_optimizer(model, TrainRecipe(opt_impl="loop"), 1e-3)) == "loop"
    assert optimizer_impl(create_optimizer(model, TrainRecipe(opt_impl="foreach"), 1e-3)) == "foreach"


def test_fused_asked_of_an_optimizer_without_it_is_refused() -> None:
    if fused_works("lamb", torch.device("cpu"), torch.float32, 0.9, {"eps": 1e-8}):
        pytest.skip("this timm's Lamb takes fused kernels")
    with pytest.raises(RecipeError, match="opt_impl fused: optimizer 'lamb' does not take fused kernels"):
        create_optimizer(_model(), TrainRecipe(opt="lamb", opt_impl="fused"), 1e-3)


def test_resume_moves_state_between_kernels() -> None:
    """A checkpoint's optimizer state from one implementation loads into another (older runs: loop)."""
    model = _model()
    _train(model, TrainRecipe(opt_impl="loop"), steps=2)
    loop_opt = create_optimizer(model, TrainRecipe(opt_impl="loop"), 1e-2)
    nn.functional.cross_entropy(model(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
    loop_opt.step()
    fused = create_optimizer(model, TrainRecipe(), 1e-2)
    fused.load_state_dict(loop_opt.state_dict())
    fused.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert len(fused.state) == len(list(model.parameters()))
