"""Classifier head: global pooling, dropout, linear."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from spmkit.registry import HEADS

Pool = Literal["avg", "max", "token", ""]


@HEADS.register("classifier")
class ClassifierHead(nn.Module):
    """Pools ``forward_features`` output (NHWC map or ``(B, N, C)`` tokens) and classifies.

    ``pool``: ``avg``/``max`` over positions, ``token`` takes the class token (index 0), ``""`` keeps the
    input as it is. ``num_classes: 0`` gives pooled features (``fc`` is an Identity).
    """

    def __init__(
        self, in_dim: int, num_classes: int = 1000, pool: Pool = "avg", drop: float = 0.0, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.in_dim, self.num_classes, self.pool = in_dim, num_classes, pool
        self._dd = {"device": device, "dtype": dtype}
        self.drop = nn.Dropout(drop)
        self.fc: nn.Module = nn.Linear(in_dim, num_classes, **self._dd) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        if pool is not None:
            if pool not in ("avg", "max", "token", ""):
                raise ValueError(f"unknown pool {pool!r}; allowed: avg, max, token, ''")
            self.pool = pool  # type: ignore[assignment]
        self.num_classes = num_classes
        dd = {"device": next(self.parameters(), torch.empty(0)).device} if any(True for _ in self.parameters()) else {}
        self.fc = nn.Linear(self.in_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.flatten(1, -2)  # NHWC map or tokens -> [B, L, C] (a view; no branch on ndim, so FX traces it)
        if self.pool == "avg":
            x = x.mean(dim=1)
        elif self.pool == "max":
            x = x.amax(dim=1)
        elif self.pool == "token":
            x = x[:, 0]
        x = self.drop(x)
        return x if pre_logits else self.fc(x)
