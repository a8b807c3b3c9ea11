"""`make test` fails when coverage (tests and every Python subprocess they start) falls under the floor in
pyproject.toml, and the floor only rises: no commit may lower it."""

from __future__ import annotations

import itertools
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _floor(pyproject: str) -> float | None:
    report = tomllib.loads(pyproject).get("tool", {}).get("coverage", {}).get("report", {})
    value = report.get("fail_under")
    return None if value is None else float(value)


def test_the_coverage_floor_is_set_and_never_lowered() -> None:
    current = _floor((ROOT / "pyproject.toml").read_text())
    assert current is not None, "pyproject.toml [tool.coverage.report] fail_under is the floor `make test` enforces"
    assert current > 0
    # Every committed version, oldest first (a depth-1 clone has only HEAD's, which is fine).
    revisions = subprocess.run(
        ["git", "log", "--reverse", "--format=%H", "--", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    history: list[tuple[str, float]] = []
    for revision in revisions:
        shown = subprocess.run(
            ["git", "show", f"{revision}:pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        floor = _floor(shown.stdout) if shown.returncode == 0 else None
        if floor is not None:
            history.append((revision[:10], floor))
    lowered = [(a, b) for a, b in itertools.pairwise(history) if b[1] < a[1]]
    assert lowered == [], f"the coverage floor was lowered: {lowered}"
    if history:
        assert current >= history[-1][1], f"the floor {current} is below the committed {history[-1][1]}"
