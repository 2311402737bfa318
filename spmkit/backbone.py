"""The assembled model: stem, stages, final norm and head, with timm's backbone API.

Between components, feature maps are NHWC ``(B, H, W, C)``; inside a stage, blocks see tokens
``(B, P + H*W, C)`` with ``P`` class tokens first. ``forward_intermediates`` returns NCHW maps by default,
so timm's ``features_only``, torchvision detection and OpenMMLab wrappers work unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models._features import feature_take_indices
from torch import nn
from torch.utils.checkpoint import checkpoint

from spmkit.layers.init import init_conv_fan_out, init_linear_and_norm


class Stage(nn.Module):
    """Merging (optional), class token and position embedding (optional), blocks, stage norm (optional)."""

    def __init__(
        self,
        downsample: nn.Module | None,
        pos_embed: nn.Module | None,
        blocks: Sequence[nn.Module],
        norm: nn.Module | None,
        dim: int,
        cls_token: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.downsample = downsample
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim, device=device, dtype=dtype)) if cls_token else None
        self.pos_embed = pos_embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = norm
        self.num_prefix_tokens = 1 if cls_token else 0
        self.grad_checkpointing = False

    def init_weights(self) -> None:
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"cls_token"} if self.cls_token is not None else set()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """NHWC map in; ``(B, P + H*W, C)`` tokens and ``(H, W)`` out."""
        if self.downsample is not None:
            x = self.downsample(x)
        B, H, W, C = x.shape
        hw = (H, W)
        x = x.reshape(B, H * W, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = self.pos_embed(x, hw)
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, hw, use_reentrant=False)
            else:
                x = blk(x, hw)
        if self.norm is not None:
            x = self.norm(x)
        return x, hw


def _to_map(tokens: torch.Tensor, hw: tuple[int, int], prefix: int) -> torch.Tensor:
    B, _, C = tokens.shape
    return tokens[:, prefix:].reshape(B, hw[0], hw[1], C)


def first_conv_name(model: nn.Module) -> str | None:
    """The name of the first convolution that reads the image (timm's ``pretrained_cfg['first_conv']``): the
    first ``Conv2d`` of the stem (in registration order) whose input channels are the model's."""
    in_chans = getattr(model, "in_chans", 3)
    for root in ("stem", ""):
        module = model.get_submodule(root) if root else model
        for name, m in module.named_modules():
            if isinstance(m, nn.Conv2d) and m.in_channels == in_chans:
                return ".".join(p for p in (root, name) if p)
    return None


class Backbone(nn.Module):
    """A hierarchical backbone built from a blueprint (see ``spmkit.builder.build_model``)."""

    def __init__(
        self,
        blueprint: Any,
        stem: nn.Module,
        stages: Sequence[Stage],
        norm: nn.Module | None,
        head: nn.Module,
        feature_info: list[dict[str, Any]],
    ) -> None:
        super().__init__()
        self.blueprint = blueprint
        self.img_size: tuple[int, int] = blueprint.image_size
        self.in_chans: int = blueprint.in_chans
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.norm = norm if norm is not None else nn.Identity()
        self.head = head
        self.feature_info = feature_info
        self.num_features = self.head_hidden_size = feature_info[-1]["num_chs"]
        self.num_prefix_tokens = self.stages[-1].num_prefix_tokens
        self.grad_checkpointing = False
        self.pretrained_cfg: dict[str, Any] = dict(
            input_size=(self.in_chans, *self.img_size),
            mean=IMAGENET_DEFAULT_MEAN,
            std=IMAGENET_DEFAULT_STD,
            interpolation="bicubic",
            crop_pct=0.9,
            num_classes=self.num_classes,
            first_conv=first_conv_name(self),
            classifier="head.fc",
            architecture=f"spmkit_{blueprint.name}",
        )
        self.default_cfg = self.pretrained_cfg
        if not any(p.is_meta for p in self.parameters()):  # meta tensors hold no values to initialise
            self.init_weights()

    # ----------------------------------------------------------------------------- initialisation
    def init_weights(self) -> None:
        """Model-wide Linear/LayerNorm init, optional conv fan-out init, then each component's own."""
        self.apply(init_linear_and_norm)
        if self.blueprint.conv_init == "fan_out":
            self.apply(init_conv_fan_out)
        for m in self.modules():
            if m is not self and hasattr(m, "init_weights"):
                m.init_weights()

    # ----------------------------------------------------------------------------- timm API
    @property
    def num_classes(self) -> int:
        return int(getattr(self.head, "num_classes", 0))

    def get_classifier(self) -> nn.Module:
        return getattr(self.head, "fc", self.head)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.head.reset(num_classes, global_pool)
        self.pretrained_cfg["num_classes"] = num_classes

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Full names of parameters that must not get weight decay (position tables, class tokens)."""
        out: set[str] = set()
        for name, m in self.named_modules():
            if m is not self and hasattr(m, "no_weight_decay"):
                out |= {f"{name}.{p}" for p in m.no_weight_decay()}
        return out

    @torch.jit.ignore
    def param_lr_scales(self) -> dict[str, float]:
        """Full parameter name -> learning-rate multiplier, from components that ask for one (DTM offsets)."""
        out: dict[str, float] = {}
        for name, m in self.named_modules():
            if m is not self and hasattr(m, "param_lr_scales"):
                out.update({f"{name}.{p}": s for p, s in m.param_lr_scales().items()})
        return out

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [(r"^stages\.(\d+)\.downsample", (0,)),
                                                      (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                                                      (r"^norm", (99999,))],
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        tokens, hw = x, (0, 0)
        for i, stage in enumerate(self.stages):
            tokens, hw = stage(x)
            if i < len(self.stages) - 1:
                x = _to_map(tokens, hw, stage.num_prefix_tokens)
        tokens = self.norm(tokens)
        if self.num_prefix_tokens:
            return tokens
        return _to_map(tokens, hw, 0)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-stage maps (class tokens dropped), timm semantics; ``norm`` applies the final norm to the last."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError("output_fmt must be 'NCHW' or 'NHWC'")
        take, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        stages = self.stages[: max_index + 1] if (stop_early or intermediates_only) else self.stages
        intermediates = []
        x = self.stem(x)
        tokens, hw = x, (0, 0)
        for i, stage in enumerate(stages):
            tokens, hw = stage(x)
            x = _to_map(tokens, hw, stage.num_prefix_tokens)
            if i in take:
                out = _to_map(self.norm(tokens), hw, stage.num_prefix_tokens) if (norm and i == last) else x
                intermediates.append(out.permute(0, 3, 1, 2).contiguous() if output_fmt == "NCHW" else out)
        if intermediates_only:
            return intermediates
        if len(stages) == len(self.stages):
            tokens = self.norm(tokens)
            final = tokens if self.num_prefix_tokens else _to_map(tokens, hw, 0)
        else:
            final = x
        return final, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        take, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take
