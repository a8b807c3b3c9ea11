"""The scheduler instance's user data is valid cloud-config (cloud-init's own schema check), in every
image mode, and enables the scheduler unit instead of the pool's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from infra.vm import files
from infra.vm.scheduler_data import SchedulerRuntime, render_scheduler_user_data
from tests.support.boot import ARTEFACTS
from tests.support.cloud_init_tool import cloud_init_command

RUNTIME = SchedulerRuntime(
    stack="dev",
    region="eu-west-1",
    secret_id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:celery-cluster/dev/broker",
    log_group="/celery-cluster/dev/scheduler",
    metrics_namespace="CeleryCluster/dev",
    lease_seconds=30,
    queues=("default", "reports"),
    lease_url="dynamodb://celery-cluster-dev-scheduler",
    task_routes={"reports.*": "reports"},
)


@pytest.mark.parametrize("mode", ["bake", "boot", "ami"])
def test_scheduler_user_data_is_valid_cloud_config(mode: str, tmp_path: Path) -> None:
    text = render_scheduler_user_data(mode, RUNTIME, ARTEFACTS)  # type: ignore[arg-type]
    path = tmp_path / f"scheduler-{mode}.yaml"
    path.write_text(text)
    argv, env = cloud_init_command()
    command = [*argv, "schema", "--config-file", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid cloud-config" in done.stdout
    runcmd = yaml.safe_load(text)["runcmd"]
    assert runcmd[-2:] == [
        ["systemctl", "disable", "--now", files.WORKER_UNIT, files.DRAIN_UNIT],
        ["systemctl", "enable", "--now", files.SCHEDULER_UNIT],
    ]
    assert ("install-worker" in text) == (mode == "boot")
