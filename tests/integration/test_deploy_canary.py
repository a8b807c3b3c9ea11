"""The deploy waits for each pool's canary refresh and acts on the verdict (infra.cli.canary_rollout).

EC2 Auto Scaling and CloudWatch are botocore Stubbers, which check every request against the service
model; the Pulumi CLI is a stand-in on PATH that answers `stack output` with the plans a deployed
stack exports (built by the same function the program uses). Each DescribeInstanceRefreshes answer
is one poll: the test walks a refresh through the states AWS reports.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.canary.rules import refresh_preferences
from infra.cli.deploy_steps import ROLL_FAILED, run
from infra.config import load_stack_config
from infra.outputs import POOL_ASG_NAMES, POOL_REFRESH

STACK = "prod"
STARTED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TEMPLATES = {"default": "lt-0aaaaaaaaaaaaaaaa", "reports": "lt-0bbbbbbbbbbbbbbbb"}


def _alarms(pool: str) -> list[str]:
    return [f"monitoring-{pool}-{kind}-0a1b2c3" for kind in ("latency-slo", "canary-failures", "canary-unhealthy")]


def _plans() -> dict[str, dict[str, Any]]:
    config = load_stack_config(STACK)
    return {
        name: {
            "asgName": f"pool-{name}-asg-1234",
            "launchTemplateId": TEMPLATES[name],
            "launchTemplateVersion": "4",
            "preferences": refresh_preferences(config, pool, _alarms(name)),
        }
        for name, pool in config.pools.items()
    }


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    outputs = {POOL_ASG_NAMES: {n: p["asgName"] for n, p in _plans().items()}, POOL_REFRESH: _plans()}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    script = tmp_path / "pulumi"
    script.write_text(f"#!/usr/bin/env bash\ncat {tmp_path}/outputs.json\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


class Recorder:
    """The subprocess runner: records each step's argv, every step succeeds."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    def __call__(self, argv: Sequence[str]) -> int:
        self.steps.append(argv[0].rsplit("/", 1)[-1] + " " + argv[1])
        return 0


class Aws:
    """Stubbed autoscaling and cloudwatch clients; every queued answer must be asked for."""

    def __init__(self) -> None:
        keys = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}
        self.autoscaling = boto3.client("autoscaling", **keys)
        self.cloudwatch = boto3.client("cloudwatch", **keys)
        self.asg = Stubber(self.autoscaling)
        self.cw = Stubber(self.cloudwatch)

    def clients(self, region: str) -> tuple[Any, Any]:
        assert region == load_stack_config(STACK).region
        return self.autoscaling, self.cloudwatch

    def group(self, pool: str, version: str) -> None:
        """DescribeAutoScalingGroups: a mixed instances group on launch template `version`."""
        plan = _plans()[pool]
        self.asg.add_response(
            "describe_auto_scaling_groups",
            {"AutoScalingGroups": [_group(plan["asgName"], TEMPLATES[pool], version)]},
            {"AutoScalingGroupNames": [plan["asgName"]]},
        )

    def started(self, pool: str, refresh_id: str) -> None:
        plan = _plans()[pool]
        desired = _group(plan["asgName"], TEMPLATES[pool], "4")["MixedInstancesPolicy"]
        desired["LaunchTemplate"]["LaunchTemplateSpecification"] = {"LaunchTemplateId": TEMPLATES[pool], "Version": "4"}
        self.asg.add_response(
            "start_instance_refresh",
            {"InstanceRefreshId": refresh_id},
            {
                "AutoScalingGroupName": plan["asgName"],
                "Strategy": "Rolling",
                "DesiredConfiguration": {"MixedInstancesPolicy": desired},
                "Preferences": plan["preferences"],
            },
        )

    def polled(self, pool: str, refresh_id: str, status: str, **extra: Any) -> None:
        self.asg.add_response(
            "describe_instance_refreshes",
            {"InstanceRefreshes": [{"InstanceRefreshId": refresh_id, "Status": status, "StartTime": STARTED, **extra}]},
            {"AutoScalingGroupName": _plans()[pool]["asgName"], "InstanceRefreshIds": [refresh_id]},
        )

    def history(self, alarm: str, went_to_alarm: bool) -> None:
        """Its state updates since the refresh started: OK -> ALARM for the one that fired; a flap that
        came back to OK (ALARM -> OK) is not what fired."""
        items = [
            {
                "AlarmName": alarm,
                "Timestamp": STARTED,
                "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from {old} to {new}",
                "HistoryData": json.dumps({"oldState": {"stateValue": old}, "newState": {"stateValue": new}}),
            }
            for old, new in ([("OK", "ALARM")] if went_to_alarm else [("ALARM", "OK")])
        ]
        self.cw.add_response(
            "describe_alarm_history",
            {"AlarmHistoryItems": items},
            {"AlarmName": alarm, "HistoryItemType": "StateUpdate", "StartDate": STARTED},
        )


def _group(name: str, template: str, version: str) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": name,
        "MinSize": 2,
        "MaxSize": 20,
        "DesiredCapacity": 2,
        "DefaultCooldown": 300,
        "AvailabilityZones": ["us-east-1a"],
        "HealthCheckType": "EC2",
        "CreatedTime": STARTED,
        "MixedInstancesPolicy": {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateId": template,
                    "LaunchTemplateName": f"{name}-lt",
                    "Version": version,
                },
                "Overrides": [{"InstanceType": "m7g.large"}, {"InstanceType": "m6g.large"}],
            },
            "InstancesDistribution": {"OnDemandBaseCapacity": 2, "OnDemandPercentageAboveBaseCapacity": 20},
        },
    }


@pytest.fixture
def aws() -> Iterator[Aws]:
    stubs = Aws()
    with stubs.asg, stubs.cw:
        yield stubs
        stubs.asg.assert_no_pending_responses()
        stubs.cw.assert_no_pending_responses()


def _deploy(aws: Aws, lines: list[str], recorder: Recorder) -> int:
    return run(
        STACK,
        confirm=lambda _: True,
        echo=lines.append,
        runner=recorder,
        clients=aws.clients,
        sleep=lambda _: None,
    )


def test_a_rolled_back_refresh_names_the_alarm_and_fails_the_deploy_before_the_smoke_test(
    fake_pulumi: Path, aws: Aws
) -> None:
    aws.group("default", "3")
    aws.started("default", "r-default")
    aws.group("reports", "4")  # already on the new version: nothing to refresh
    aws.polled("default", "r-default", "InProgress", PercentageComplete=10, InstancesToUpdate=9)
    aws.polled(
        "default",
        "r-default",
        "InProgress",
        PercentageComplete=10,
        InstancesToUpdate=9,
        StatusReason="Waiting for checkpoint",
    )
    reason = "An alarm went into ALARM state: monitoring-default-canary-failures-0a1b2c3"
    aws.polled("default", "r-default", "RollbackInProgress", PercentageComplete=0, StatusReason=reason)
    aws.polled(
        "default",
        "r-default",
        "RollbackSuccessful",
        PercentageComplete=100,
        StatusReason=reason,
        RollbackDetails={"RollbackReason": reason, "PercentageCompleteOnRollback": 10},
    )
    for alarm in _alarms("default"):
        aws.history(alarm, went_to_alarm=alarm.startswith("monitoring-default-canary-failures"))
    lines: list[str] = []
    recorder = Recorder()

    code = _deploy(aws, lines, recorder)

    text = "\n".join(lines)
    assert code == ROLL_FAILED
    assert recorder.steps == ["make build", "pulumi preview", "pulumi up"], "no smoke test after a rollback"
    assert "default: refreshing pool-default-asg-1234 to version 4 (canary: checkpoints at [10, 100]%)" in text
    # Progress: each change of state printed once, the checkpoint wait among them.
    assert "default: InProgress 10%, 9 instance(s) to update\n" in text + "\n"
    assert "default: InProgress 10%, 9 instance(s) to update - Waiting for checkpoint" in text
    assert "default: RollbackInProgress 0%" in text
    assert f"  default: RolledBack ({reason}); alarm fired: monitoring-default-canary-failures-0a1b2c3" in lines
    assert "  reports: Unchanged (already on launch template version 4)" in lines


def test_a_successful_refresh_is_followed_by_the_smoke_test(fake_pulumi: Path, aws: Aws) -> None:
    for pool in ("default", "reports"):
        aws.group(pool, "3")
        aws.started(pool, f"r-{pool}")
    for status, percent in (("Pending", 0), ("InProgress", 50), ("Successful", 100)):
        for pool in ("default", "reports"):
            aws.polled(pool, f"r-{pool}", status, PercentageComplete=percent)
    lines: list[str] = []
    recorder = Recorder()

    code = _deploy(aws, lines, recorder)

    assert code == 0, "\n".join(lines)
    assert recorder.steps == ["make build", "pulumi preview", "pulumi up", "smoke --stack"]
    assert "  default: Successful" in lines
    assert "  reports: Successful" in lines
    assert "  reports: InProgress 50%" in lines
    up = next(line for line in lines if line.startswith("==> up:"))
    assert "--refresh" in up.split(), "up must refresh the state: the groups' versions move outside Pulumi"


def test_the_pipeline_rolls_and_smoke_tests_after_its_own_up(fake_pulumi: Path, aws: Aws) -> None:
    for pool in ("default", "reports"):
        aws.group(pool, "4")
    lines: list[str] = []
    recorder = Recorder()

    code = run(
        STACK,
        confirm=lambda _: False,  # never asked: nothing is previewed or applied
        echo=lines.append,
        runner=recorder,
        clients=aws.clients,
        sleep=lambda _: None,
        after_up=True,
    )

    assert code == 0, "\n".join(lines)
    assert recorder.steps == ["smoke --stack"]
