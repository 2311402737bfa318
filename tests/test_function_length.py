"""No function or method in ``spmkit/`` is longer than 120 lines (issue 18): long functions are where
behaviours pile up; the training loop is a short loop plus hooks."""

from __future__ import annotations

import ast
from pathlib import Path

LIMIT = 120
PACKAGE = Path(__file__).resolve().parents[1] / "spmkit"


def long_functions(root: Path, limit: int = LIMIT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_over_120_lines() -> None:
    assert long_functions(PACKAGE) == []


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "m.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path) == [f"{tmp_path.name}/m.py:5 long ({LIMIT + 1} lines)"]
