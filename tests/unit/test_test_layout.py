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


# The one exception: the generated-config check runs the rule modules' own checks over every generated
# render, so each rule holds for the three stacks and for configs nobody wrote, from one definition.
RUNS_THE_RULE_TESTS = "tests/support/generated_stacks.py"


def test_no_test_module_imports_another() -> None:
    offending = {
        str(path.relative_to(TESTS.parent)): sorted(
            name for name in _imported(ast.parse(path.read_text())) if name.startswith(TEST_PACKAGES)
        )
        for path in sorted(TESTS.rglob("*.py"))
    }
    offending.pop(RUNS_THE_RULE_TESTS, None)
    assert {path: names for path, names in offending.items() if names} == {}, "move shared helpers to tests/support"
