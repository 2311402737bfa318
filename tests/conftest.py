"""Shared fixtures: tests run on CPU with few threads and tiny inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tiny models gain nothing from a second thread, and on a busy 2-core machine two spinning threads cost
# several times; SPMKIT_TEST_THREADS overrides.
torch.set_num_threads(int(os.environ.get("SPMKIT_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints"


def all_blueprint_files() -> list[Path]:
    """Every builtin blueprint file (sweep files under blueprints/sweeps/ are not blueprints)."""
    return sorted(p for p in BLUEPRINTS.rglob("*.yaml") if p.relative_to(BLUEPRINTS).parts[0] != "sweeps")


def tiny_blueprint_files() -> list[Path]:
    return sorted((BLUEPRINTS / "tiny").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
