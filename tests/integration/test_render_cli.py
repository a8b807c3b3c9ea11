"""`scripts/render` and `python -m infra.cli.render` as a user runs them: a render is written as JSON, a
stack file that does not exist or a bad stack is one error with no traceback, and nothing is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from infra.config import ROOT
from tests.support.bad_stack import TWO_BAD_KEYS


def test_make_render_writes_json(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "render"), "--stack", "dev", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "dev.json").read_text())
    assert document["stack"] == "dev"
    types = {r["type"] for r in document["resources"]}
    assert {"aws:ec2/launchTemplate:LaunchTemplate", "aws:autoscaling/group:Group"} <= types
    assert "dev:" in result.stderr


def test_render_cli_reports_a_config_error_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli.render", "--stack", "qa"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no stack file Pulumi.qa.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_render_writes_nothing_for_a_bad_stack(tmp_path: Path) -> None:
    # A copy of this working tree (the program as it is now) with a stack file of our own, so the
    # repository's own stacks are never edited. It runs what `scripts/render` execs, with our venv's
    # Python from the copy's root (so the copy's code and stack files are the ones read); no `.venv`
    # link in the copy, so nothing there can reinstall our venv to point at a temporary directory.
    repo = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv", ".git", "build", "mutants", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, repo, ignore=ignore, symlinks=True)
    lines = (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
    for key, value in TWO_BAD_KEYS.items():
        # Replace the key where the stack sets it (a key set twice is itself an error), else add it.
        setting = f"  celery-cluster:{key}: {value}"
        at = [i for i, line in enumerate(lines) if line.startswith(f"  celery-cluster:{key}:")]
        if at:
            lines[at[0]] = setting
        else:
            lines.append(setting)
    stack = "\n".join(lines) + "\n"
    (repo / "Pulumi.bad.yaml").write_text(stack)
    out = tmp_path / "render"
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli.render", "--stack", "bad", "--out", str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert not out.exists() or not any(out.iterdir()), "a render was written for an invalid stack"
    named = [line.split("celery-cluster:")[1].split(":")[0] for line in done.stderr.splitlines() if line.strip()]
    assert named == ["brokerEngine", "egress"], done.stderr  # one line per bad key, nothing else
    assert "Traceback" not in done.stderr
