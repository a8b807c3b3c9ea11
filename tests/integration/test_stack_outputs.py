"""scripts/smoke --stack finds its broker through the stack's outputs and Secrets Manager.
The Pulumi CLI cannot run here, so a stand-in `pulumi` prints the outputs; Secrets Manager is moto."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import boto3
import pytest

from infra.cli.deployed_outputs import StackOutputsError, smoke_target
from infra.config import load_stack_config
from infra.outputs import BROKER_SECRET_ARN


def _fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outputs: dict[str, object]) -> None:
    script = tmp_path / "pulumi"
    script.write_text(f"#!/usr/bin/env bash\necho '{json.dumps(outputs)}'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_reads_the_workers_secret_and_the_pools(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = {"CELERY_BROKER_URL": "rediss://:token@broker.example:6379/0", "CELERY_QUEUE_TYPE": "classic"}
    arn = boto3.client("secretsmanager").create_secret(Name="celery-dev-broker", SecretString=json.dumps(secret))["ARN"]
    _fake_pulumi(tmp_path, monkeypatch, {BROKER_SECRET_ARN: arn})
    settings, pools = smoke_target("dev")
    assert settings == secret
    assert pools == {name: list(pool.queues) for name, pool in load_stack_config("dev").pools.items()}


def test_an_undeployed_stack_is_named(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pulumi(tmp_path, monkeypatch, {})
    with pytest.raises(StackOutputsError, match=rf"stack dev has no output {BROKER_SECRET_ARN}"):
        smoke_target("dev")


def test_missing_pulumi_cli_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackOutputsError, match="Pulumi CLI is not on PATH"):
        smoke_target("dev")
