"""The coverage floor (`[tool.coverage.report] fail_under`) only rises: what a change may not do is
lower it against the commit it is based on.

That takes two commits, and a depth-1 checkout (the pull-request job's) holds one. So the base is
named, not guessed: BASE_VARIABLE names a git revision to compare with (the pull-request job fetches
two commits of its merge commit and sets it to HEAD^1, the base branch's tip). Without it, every
committed version is compared with the one before, which needs the whole history; a shallow clone
without a base cannot tell, and says so (`floor_problems` returns `None`) rather than pass.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tomllib
from pathlib import Path

BASE_VARIABLE = "COVERAGE_FLOOR_BASE"
PYPROJECT = "pyproject.toml"


def floor_of(pyproject: str) -> float | None:
    report = tomllib.loads(pyproject).get("tool", {}).get("coverage", {}).get("report", {})
    value = report.get("fail_under")
    return None if value is None else float(value)


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check)


def floor_at(root: Path, revision: str) -> float | None:
    """The floor in pyproject.toml as committed at `revision` (None: no file, or no floor, there)."""
    shown = _git(root, "show", f"{revision}:{PYPROJECT}", check=False)
    return floor_of(shown.stdout) if shown.returncode == 0 else None


def is_shallow(root: Path) -> bool:
    return _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"


def floor_problems(root: Path, base: str | None) -> list[str] | None:
    """Every way the floor in `root`'s pyproject.toml was lowered; None when nothing can be compared
    (a shallow clone and no `base`). A `base` that git cannot find is an error, not a pass."""
    current = floor_of((root / PYPROJECT).read_text())
    if current is None:
        return [f"{PYPROJECT} has no [tool.coverage.report] fail_under: the floor `make test` enforces"]
    if base is not None:
        if _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False).returncode != 0:
            return [f"{BASE_VARIABLE}={base} is not a commit in this checkout (fetch it, or fetch more depth)"]
        before = floor_at(root, base)
        return [] if before is None or current >= before else [f"the floor {current} is below {before} at {base}"]
    if is_shallow(root):
        return None
    revisions = _git(root, "log", "--reverse", "--format=%H", "--", PYPROJECT).stdout.split()
    history = [(r[:10], f) for r in revisions if (f := floor_at(root, r)) is not None]
    pairs = itertools.pairwise(history)
    problems = [f"{b[0]} lowered the floor from {a[1]} to {b[1]}" for a, b in pairs if b[1] < a[1]]
    if history and current < history[-1][1]:
        problems.append(f"the working tree's floor {current} is below the committed {history[-1][1]}")
    return problems


def configured_base() -> str | None:
    return os.environ.get(BASE_VARIABLE) or None
