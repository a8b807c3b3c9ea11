"""The GitHub Actions workflows: pins, permissions, OIDC, what they run (schema and zizmor:
tests/integration/test_workflow_linters.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"pull-request.yml", "deploy.yml", "deploy-stack.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_pinned_by_commit_sha(path: Path) -> None:
    for step in _steps(_load(path)):
        uses = step.get("uses")
        if uses is None or uses.startswith(("./", "$/")):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses} is not pinned to a SHA"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_permissions_and_no_long_lived_keys(path: Path) -> None:
    workflow = _load(path)
    assert workflow.get("permissions") == {"contents": "read"}, f"{path.name}: top-level permissions must be read-only"
    text = path.read_text()
    assert "aws-access-key-id" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text
    for step in _steps(workflow):
        if "configure-aws-credentials" in step.get("uses", ""):
            assert "role-to-assume" in step["with"], f"{path.name}: AWS access must assume a role via OIDC"


def test_deploys_of_a_stack_never_overlap_and_prod_needs_staging() -> None:
    stack_job = _load(ROOT / ".github/workflows/deploy-stack.yml")["jobs"]["deploy"]
    assert stack_job["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    assert stack_job["environment"] == "${{ inputs.stack }}"
    jobs = _load(ROOT / ".github/workflows/deploy.yml")["jobs"]
    assert jobs["staging"]["needs"] == ["dev"]
    assert jobs["prod"]["needs"] == ["staging"]


def test_every_script_and_make_target_the_workflows_run_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for path in WORKFLOWS:
        for step in _steps(_load(path)):
            run = step.get("run", "")
            for script in re.findall(r"scripts/[\w-]+", run):
                assert (ROOT / script).is_file(), f"{path.name} runs {script}, which does not exist"
            for target in re.findall(r"\bmake ((?:[\w-]+ ?)+)", run):
                for name in target.split():
                    assert re.search(rf"^{name}:", makefile, re.M), f"{path.name} runs make {name}: no such target"
