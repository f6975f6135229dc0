"""The model package stays readable at a glance: no function longer than 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

MODEL = Path(__file__).resolve().parents[1] / "model"
LIMIT = 60


def function_lengths(root: Path) -> dict[str, int]:
    """'path:line name' -> lines (decorators excluded) of every function and method."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"
                out[where] = node.end_lineno - node.lineno + 1
    return out


def test_no_function_in_the_model_package_is_over_60_lines():
    lengths = function_lengths(MODEL)
    assert len(lengths) > 100  # the walk found the package
    too_long = {name: n for name, n in lengths.items() if n > LIMIT}
    assert too_long == {}, f"split these functions: {too_long}"
