"""The shape of the code, as docs/architecture.md states it: short functions, no private names borrowed across
modules, and a layout section that names every folder that exists. Import layers and cycles are checked by
`lint-imports` in `make lint` ([tool.importlinter] in pyproject.toml)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("infra", "worker", "celery_cluster_client", "policy")
MAX_FUNCTION_LINES = 60
# A function longer than MAX_FUNCTION_LINES says why on the line above its `def` (or its first decorator).
REASON = re.compile(r"^\s*# long function: \S")


def _modules(packages: tuple[str, ...] = PACKAGES) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _long_functions(path: Path) -> Iterator[str]:
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        above = lines[first - 2] if first >= 2 else ""
        if length > MAX_FUNCTION_LINES and not REASON.match(above):
            yield f"{path}:{node.lineno} {node.name} ({length} lines)"


# Not split yet (each holds several steps); the list only shrinks: a function split must leave it, and
# no other function may join it.
NOT_SPLIT_YET = {
    "infra/scaling/simulator.py simulate",
}


def test_no_function_is_over_60_lines_without_a_reason() -> None:
    found = [line.replace(f"{ROOT}/", "") for path in _modules() for line in _long_functions(path)]
    named = {f"{line.split(':')[0]} {line.split()[1]}" for line in found}
    new = [line for line in found if f"{line.split(':')[0]} {line.split()[1]}" not in NOT_SPLIT_YET]
    assert not new, "split these, or say why above the def (`# long function: ...`):\n" + "\n".join(new)
    assert named == NOT_SPLIT_YET, f"split since: {sorted(NOT_SPLIT_YET - named)}; take them off NOT_SPLIT_YET"


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "m.py"
    module.write_text(f"def f() -> None:\n{body}\n")
    assert [line.split()[1] for line in _long_functions(module)] == ["f"]
    module.write_text(f"# long function: one table, read top to bottom\ndef f() -> None:\n{body}\n")
    assert list(_long_functions(module)) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    own = (*PACKAGES, "tests", "scripts")
    found = []
    for path in [*_modules(own), *sorted((ROOT / "scripts").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in own:
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not found, "make these public, or move them where both sides can import them:\n" + "\n".join(found)


def test_the_layout_section_names_every_folder_and_only_folders_that_exist() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layout", 1)[1].split("```")[1]
    named = set(re.findall(r"^(\S+/)\s", block, re.M))
    named |= {f"worker/{n}" for n in re.findall(r"^  (\S+/)\s", block, re.M)}
    missing = sorted(n for n in named if not (ROOT / n).is_dir())
    assert not missing, f"docs/architecture.md names folders that do not exist: {missing}"
    folders = {f"{p.relative_to(ROOT)}/" for pkg in ("infra", "worker") for p in (ROOT / pkg).iterdir()}
    folders = {f for f in folders if (ROOT / f / "__init__.py").is_file()}
    unnamed = sorted(folders - named)
    assert not unnamed, f"docs/architecture.md's layout does not name: {unnamed}"
