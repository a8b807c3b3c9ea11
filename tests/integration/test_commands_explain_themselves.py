"""Every `scripts/*` command explains itself, resolves paths from where it runs, and every `make`
target listed by `make` does something."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").iterdir() if not p.name.startswith("_"))


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # A pipe, an 80-column terminal's width: the case where boxed help used to be cut with "…".
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_names_the_script_and_has_examples_and_exit_codes(script: str, tmp_path: Path) -> None:
    done = _run([str(ROOT / "scripts" / script), "--help"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith(f"Usage: scripts/{script} "), text[:200]
    assert "Examples:" in text
    assert "Exit codes:" in text
    assert "…" not in text
    assert "..." not in text.replace("[OPTIONS]", "").replace("[ARGS]...", ""), "help text cut short"
    # An 80-column terminal breaks a longer line wherever it reaches the edge ("--e/nvironment"): click wraps
    # prose between words itself, and a block kept as written must fit.
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert too_wide == [], too_wide
    examples = text.split("Examples:")[1].split("Exit codes:")[0]
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    # A command continued on the next line (ending in a backslash) is one command.
    commands = [line for line, before in zip(lines, ["", *lines[:-1]], strict=True) if not before.endswith("\\")]
    assert commands
    assert all(c.startswith((f"scripts/{script}", "make ")) for c in commands), commands
    codes = text.split("Exit codes:")[1].split("Options:")[0].split("Arguments:")[0]
    assert re.search(r"^\s+0\s+\S", codes, re.MULTILINE), codes


def test_simulate_reads_and_writes_paths_relative_to_the_caller(tmp_path: Path) -> None:
    rows = ["arrival_seconds,task_seconds"] + [f"{i * 2},1" for i in range(120)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    done = _run(
        [str(ROOT / "scripts" / "simulate"), "--stack", "dev", "--trace", "t.csv", "--out", "mine.png"], tmp_path
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2 would be "no such trace file"
    assert (tmp_path / "mine.png").is_file()
    assert "plot: mine.png" in done.stdout
    assert not (ROOT / "mine.png").exists()


def _make_targets() -> list[str]:
    done = _run(["make", "--no-print-directory", "help"], ROOT)
    assert done.returncode == 0, done.stderr
    return re.findall(r"^\s+make (\S+)", done.stdout, re.MULTILINE)


def test_every_listed_make_target_does_something() -> None:
    targets = _make_targets()
    assert {"local", "test", "test-unit", "test-integration", "bench", "render", "build"} <= set(targets)
    for target in targets:
        # -n prints what the target would run; "Nothing to be done" or no command is a target that does nothing.
        dry = _run(["make", "--no-print-directory", "-n", "-W", "pyproject.toml", target], ROOT)
        assert dry.returncode == 0, f"make -n {target}: {dry.stderr}"
        assert dry.stdout.strip(), f"make {target} runs nothing"
        assert "Nothing to be done" not in dry.stdout + dry.stderr, target


def test_make_test_integration_runs_the_integration_tests() -> None:
    dry = _run(["make", "--no-print-directory", "-n", "test-integration"], ROOT)
    assert re.search(r"pytest tests/integration\b", dry.stdout), dry.stdout


def test_the_readme_names_every_make_target_and_script() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [t for t in _make_targets() if f"make {t}" not in readme]
    assert not missing, f"make targets the README does not name: {missing}"
    scripts = [s for s in SCRIPTS if f"scripts/{s}" not in readme]
    assert not scripts, f"scripts the README does not name: {scripts}"
