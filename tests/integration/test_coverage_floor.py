"""`make test` fails when coverage (tests and every Python subprocess they start) falls under the floor in
pyproject.toml, and the floor only rises: no change may lower it against the commit it is based on
(tests/support/coverage_floor.py says how that holds in a depth-1 checkout)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.coverage_floor import BASE_VARIABLE, configured_base, floor_problems

ROOT = Path(__file__).resolve().parents[2]
PULL_REQUEST = ROOT / ".github" / "workflows" / "pull-request.yml"


def test_the_coverage_floor_is_set_and_never_lowered() -> None:
    problems = floor_problems(ROOT, configured_base())
    if problems is None:
        # GitHub Actions sets CI=true: there the job must name the base, and a missing one fails.
        why = f"a shallow clone and no {BASE_VARIABLE}: no commit to compare the floor with"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    assert problems == []


def test_the_pull_request_job_compares_with_the_base_branch() -> None:
    job = yaml.safe_load(PULL_REQUEST.read_text())["jobs"]["test"]
    (checkout,) = [s for s in job["steps"] if "actions/checkout@" in s.get("uses", "")]
    # A pull request checks out its merge commit; its first parent is the base branch's tip.
    assert checkout["with"]["fetch-depth"] >= 2
    (make_test,) = [s for s in job["steps"] if s.get("run") == "make test"]
    assert make_test["env"][BASE_VARIABLE] == "HEAD^1"


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def _repo_with_floors(path: Path, floors: list[int]) -> Path:
    path.mkdir()
    _git(path, "init", "--quiet", "--initial-branch=main")
    for floor in floors:
        (path / "pyproject.toml").write_text(f"[tool.coverage.report]\nfail_under = {floor}\n")
        _git(path, "add", "pyproject.toml")
        _git(path, "commit", "--quiet", "-m", f"floor {floor}")
    return path


def _clone(origin: Path, into: Path, depth: int) -> Path:
    _git(origin.parent, "clone", "--quiet", f"--depth={depth}", f"file://{origin}", str(into))
    return into


def test_a_lowered_floor_fails_in_a_shallow_clone_given_the_base(tmp_path: Path) -> None:
    lowered = _repo_with_floors(tmp_path / "lowered", [90, 89])
    head = _git(lowered, "rev-parse", "HEAD")[:10]
    assert floor_problems(lowered, None) == [f"{head} lowered the floor from 90.0 to 89.0"]
    two = _clone(lowered, tmp_path / "two", depth=2)
    assert floor_problems(two, "HEAD^1") == ["the floor 89.0 is below 90.0 at HEAD^1"]
    one = _clone(lowered, tmp_path / "one", depth=1)
    assert floor_problems(one, None) is None  # cannot tell: the test skips, or fails in CI
    (missing,) = floor_problems(one, "HEAD^1") or ["passed"]
    assert "is not a commit in this checkout" in missing
    raised = _repo_with_floors(tmp_path / "raised", [90, 91])
    assert floor_problems(_clone(raised, tmp_path / "raised-two", depth=2), "HEAD^1") == []
    assert floor_problems(raised, None) == []
