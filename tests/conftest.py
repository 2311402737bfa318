"""Shared fixtures: tests run on CPU with few threads and tiny inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints"


def all_blueprint_files() -> list[Path]:
    return sorted(BLUEPRINTS.rglob("*.yaml"))


def tiny_blueprint_files() -> list[Path]:
    return sorted((BLUEPRINTS / "tiny").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
