"""The layout holds: arrows point one way, modules stay small, functions stay short.

softmax_pipe (the CLI) -> flows -> registry -> softmax_core. A module never imports from a
layer above its own, lazily, under TYPE_CHECKING or not: every ``import`` node of the AST
counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["softmax_core", "registry", "flows", "softmax_pipe"]  # bottom to top
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def _imported_packages(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    layer = path.relative_to(ROOT).parts[0]
    rank = LAYERS.index(layer)
    above = set(LAYERS[rank + 1 :])
    bad = _imported_packages(ast.parse(path.read_text(), str(path))) & above
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) imports from a higher layer: {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_size(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {n} lines (max {MAX_MODULE_LINES})"


def _body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its first body statement to its end (the signature, where
    typer options are declared, does not count; nor does the docstring)."""
    body = fn.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
        and len(body) > 1
    ):
        body = body[1:]
    assert fn.end_lineno is not None
    return fn.end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_function_size(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    long = [
        f"{node.name} (line {node.lineno}): {_body_lines(node)} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and _body_lines(node) > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_layer_check_can_fail() -> None:
    tree = ast.parse("def f():\n    from flows.training import x\n")
    assert _imported_packages(tree) == {"flows"}
