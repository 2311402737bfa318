"""The README's two set-up commands are exactly what CI runs, and its example blueprint builds."""

from __future__ import annotations

import re

from conftest import ROOT


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them() -> None:
    commands = _setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci, f"README command not run by .ci/run: {command}"


def test_readme_example_blueprint_builds() -> None:
    from spmkit.builder import build_model
    from spmkit.blueprint import load_blueprint

    install = _setup_commands()[0]
    path = install.rsplit("spmkit build ", 1)[1].strip()
    assert (ROOT / path).is_file()
    model = build_model(load_blueprint(ROOT / path), device="meta")
    assert sum(p.numel() for p in model.parameters()) > 0
