"""The error tree and the README's exit-code table agree, and no bare base class is raised."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from softmax_core import errors

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("softmax_core", "registry", "flows", "softmax_pipe")


def _readme_table() -> dict[int, set[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows: dict[int, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows[int(cells[0])] = set(re.findall(r"`(\w+)`", cells[2]))
    return rows


def test_readme_table_matches_the_tree() -> None:
    table = _readme_table()
    tree: dict[int, set[str]] = {}
    for cls in errors.all_error_classes():
        if cls is not errors.SoftmaxPipeError:
            tree.setdefault(cls.exit_code, set()).add(cls.__name__)
    assert set(table) == {
        0,
        *tree,
        errors.EXIT_INTERNAL,
        errors.EXIT_INTERRUPTED,
        errors.EXIT_BROKEN_PIPE,
    }
    for code, names in tree.items():
        assert table[code] == names, f"exit {code}: README says {table[code]}, the tree {names}"


def test_every_class_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for cls in errors.all_error_classes():
        assert re.search(rf"\b{cls.__name__}\b", doc), f"{cls.__name__} missing from the tree"
        if cls is not errors.SoftmaxPipeError:
            assert re.search(rf"{cls.__name__}\s+exit {cls.exit_code}:", doc), cls.__name__


def _bare_raises(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "SoftmaxPipeError"
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_bare_base_class_is_raised(package: str) -> None:
    found = {
        str(p.relative_to(ROOT)): lines
        for p in sorted((ROOT / package).rglob("*.py"))
        if (lines := _bare_raises(p))
    }
    assert not found, f"raise a subclass of SoftmaxPipeError instead: {found}"


def test_the_bare_raise_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    raise SoftmaxPipeError('x')\n")
    assert _bare_raises(bad) == [2]
