"""The layout holds: arrows point one way, and no module depends on itself through others.

softmax_pipe (the CLI) -> flows -> registry -> softmax_core. A module never imports from a
layer above its own, and the modules form no cycle: lazily, under TYPE_CHECKING or not,
every ``import`` node of the AST counts. Size is not the measure: there are no line caps.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["softmax_core", "registry", "flows", "softmax_pipe"]  # bottom to top


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


def test_the_layer_check_can_fail() -> None:
    tree = ast.parse("def f():\n    from flows.training import x\n")
    assert _imported_packages(tree) == {"flows"}


# --- no cycles ----------------------------------------------------------------------------------


def _name_of(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edges(tree: ast.AST, known: set[str]) -> Iterator[str]:
    """The modules of ``known`` an AST imports. ``from pkg import name`` is an edge to
    ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in known:
                    yield sub
                elif node.module in known:
                    yield node.module


def import_graph(paths: list[Path], root: Path = ROOT) -> dict[str, set[str]]:
    known = {_name_of(p, root) for p in paths}
    graph: dict[str, set[str]] = {}
    for p in paths:
        name = _name_of(p, root)
        graph[name] = set(_edges(ast.parse(p.read_text(), str(p)), known)) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_module_cycles() -> None:
    found = cycles(import_graph(_modules()))
    assert not found, "modules that import each other (lazy imports count): " + "; ".join(
        " <-> ".join(c) for c in found
    )


def test_the_cycle_check_can_fail(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.c import x\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
    )
    (pkg / "d.py").write_text("from pkg import a\n")
    graph = import_graph(sorted(pkg.rglob("*.py")), tmp_path)
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
