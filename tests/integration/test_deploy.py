"""scripts/deploy's sequence and its rollback advice. The Pulumi CLI cannot run here, so a stand-in
`pulumi` on PATH answers `stack output` with the outputs a deployed stack would have. The canary step
between `up` and the smoke test is recorded here as a step; its own behaviour, against stubbed AWS
APIs, is tests/integration/test_deploy_canary.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from infra.cli import deploy_steps
from infra.cli.deploy_steps import run
from infra.outputs import POOL_ASG_NAMES

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """Stands in for the subprocess runner: records each argv and answers with an exit code."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[Sequence[str]] = []
        self.fail = fail or {}

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(argv)
        return self.fail.get(argv[0].rsplit("/", 1)[-1] + " " + argv[1], 0)


@pytest.fixture(autouse=True)
def roll_step(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the canary step's runs (it succeeds) instead of calling AWS."""
    rolled: list[str] = []

    def roll(stack: str, **_: object) -> int:
        rolled.append(stack)
        return 0

    monkeypatch.setattr(deploy_steps, "roll", roll)
    return rolled


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    outputs = {
        POOL_ASG_NAMES: {"default": "celery-dev-default-asg", "reports": "celery-dev-reports-asg"},
    }
    script = tmp_path / "pulumi"
    script.write_text(f"#!/usr/bin/env bash\necho \"$@\" >> {tmp_path}/calls\necho '{json.dumps(outputs)}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_steps_run_in_order_and_up_waits_for_confirmation(fake_pulumi: Path, roll_step: list[str]) -> None:
    recorder = Recorder()
    code = run("dev", confirm=lambda _: True, echo=lambda _: None, runner=recorder)
    calls = recorder.calls
    assert code == 0
    assert roll_step == ["dev"]
    assert [c[0].rsplit("/", 1)[-1] + " " + c[1] for c in calls] == [
        "make build",
        "pulumi preview",
        "pulumi up",
        "smoke --stack",
    ]
    assert "--policy-pack" in calls[1]
    assert "--policy-pack" in calls[2]


def test_declining_stops_before_up(fake_pulumi: Path, roll_step: list[str]) -> None:
    recorder = Recorder()
    code = run("prod", confirm=lambda _: False, echo=lambda _: None, runner=recorder)
    assert code == 1
    assert [c[1] for c in recorder.calls] == ["build", "preview"]
    assert roll_step == []


def test_failed_smoke_prints_rollback_with_the_stacks_asgs(fake_pulumi: Path) -> None:
    lines: list[str] = []
    code = run("dev", confirm=lambda _: True, echo=lines.append, runner=Recorder({"smoke --stack": 1}))
    text = "\n".join(lines)
    assert code == 1
    assert "The smoke test failed on stack 'dev'. To roll back:" in text
    assert "rollback-instance-refresh --auto-scaling-group-name celery-dev-default-asg" in text
    assert "rollback-instance-refresh --auto-scaling-group-name celery-dev-reports-asg" in text
    assert "scripts/deploy dev" in text


def test_failed_preview_stops_the_run(fake_pulumi: Path) -> None:
    recorder = Recorder({"pulumi preview": 3})
    code = run("dev", confirm=lambda _: True, echo=lambda _: None, runner=recorder)
    assert code == 3
    assert [c[1] for c in recorder.calls] == ["build", "preview"]


def test_rollback_help_from_the_command_line(fake_pulumi: Path) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "deploy"), "--rollback-help", "staging"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("To roll back stack 'staging':")  # no smoke test ran
    assert "celery-dev-default-asg" in result.stdout
    assert "pulumi stack output --stack staging" not in result.stdout
    assert "stack output --stack staging --json --show-secrets" in (fake_pulumi / "calls").read_text()
