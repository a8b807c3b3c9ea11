"""The tests' own layout: a test module imports helpers from tests/support, never from another test module
(or a conftest), so moving or deleting one test file cannot break another."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TEST_PACKAGES = ("tests.unit", "tests.integration")


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_test_module_imports_another() -> None:
    offending = {
        str(path.relative_to(TESTS.parent)): sorted(
            name for name in _imported(ast.parse(path.read_text())) if name.startswith(TEST_PACKAGES)
        )
        for path in sorted(TESTS.rglob("*.py"))
    }
    assert {path: names for path, names in offending.items() if names} == {}, "move shared helpers to tests/support"
