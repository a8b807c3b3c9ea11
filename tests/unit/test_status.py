"""`scripts/status`: what a deployed stack's scaling sees, read from Auto Scaling and CloudWatch (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli.entry import script_app
from infra.cli.pool_status import StatusError, pool_statuses
from infra.cli.status import main
from infra.config import StackConfig, load_stack_config
from infra.outputs import METRIC_NAMESPACE, POOL_ASG_NAMES
from tests.support.moto_metrics import moto_account
from worker.names import METRIC_IN_FLIGHT, METRIC_OLDEST_AGE, METRIC_TASK_SECONDS, METRIC_WAITING

GROUP = "pool-default-asg-1a2b3c4"


@pytest.fixture
def config() -> StackConfig:
    return load_stack_config("dev")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, config: StackConfig) -> Iterator[None]:
    with moto_account(monkeypatch, config.region):
        yield


def _deployed(config: StackConfig, oldest_age: float) -> dict[str, Any]:
    """A pool's group with two instances, a minute of the publisher's metrics, one alarm in ALARM."""
    autoscaling = boto3.client("autoscaling", region_name=config.region)
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="pool-lc", ImageId="ami-0123456789abcdef0", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchConfigurationName="pool-lc",
        MinSize=0,
        MaxSize=5,
        DesiredCapacity=2,
        AvailabilityZones=[f"{config.region}a"],
    )
    namespace = config.metric_namespace
    cloudwatch = boto3.client("cloudwatch", region_name=config.region)
    now = datetime.now(UTC) - timedelta(seconds=30)
    queue = config.pools["default"].queues[0]
    per_queue = [{"Name": "Pool", "Value": "default"}, {"Name": "Queue", "Value": queue}]
    per_pool = [{"Name": "Pool", "Value": "default"}]
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {"MetricName": METRIC_WAITING, "Dimensions": per_queue, "Value": 40, "Timestamp": now},
            {"MetricName": METRIC_IN_FLIGHT, "Dimensions": per_queue, "Value": 4, "Timestamp": now},
            {"MetricName": METRIC_OLDEST_AGE, "Dimensions": per_pool, "Value": oldest_age, "Timestamp": now},
            {"MetricName": METRIC_TASK_SECONDS, "Dimensions": per_pool, "Value": 7.5, "Timestamp": now},
        ],
    )
    for name, description in (("latency-a1", "Pool default: oldest waiting task older than"), ("other", "Broker")):
        cloudwatch.put_metric_alarm(
            AlarmName=name, AlarmDescription=description, Namespace=namespace, MetricName=METRIC_OLDEST_AGE,
            Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    return {POOL_ASG_NAMES: {"default": GROUP}, METRIC_NAMESPACE: namespace}


def test_status_reads_sizes_queues_latency_task_time_and_alarms(aws: None, config: StackConfig) -> None:
    outputs = _deployed(config, oldest_age=200)
    (status,) = pool_statuses(
        config, outputs, boto3.client("autoscaling", region_name=config.region),
        boto3.client("cloudwatch", region_name=config.region),
    )  # fmt: skip
    assert (status.pool, status.asg_name, status.desired, status.min_size, status.max_size) == (
        "default", GROUP, 2, 0, 5
    )  # fmt: skip
    assert status.in_service == 2
    assert (status.waiting, status.in_flight, status.oldest_age_seconds, status.task_seconds) == (40, 4, 200, 7.5)
    assert status.busy_processes is None  # nothing published: shown as "-", not as 0
    assert status.over_slo == (config.pools["default"].acceptable_latency_seconds < 200)
    assert status.alarms == ["latency-a1"]  # the broker's alarm is not the pool's


def test_an_unknown_pool_is_named(aws: None, config: StackConfig) -> None:
    outputs = _deployed(config, oldest_age=1)
    with pytest.raises(StatusError, match="no deployed pool named nope"):
        pool_statuses(config, outputs, boto3.client("autoscaling"), boto3.client("cloudwatch"), pools=["nope"])


def _cli(args: list[str]) -> Any:
    app = script_app("status", None)
    app.command()(main)
    return CliRunner().invoke(app, args)


def test_the_cli_prints_json_and_exits_1_when_a_pool_is_over_its_slo(
    aws: None, config: StackConfig, tmp_path: Path
) -> None:
    saved = tmp_path / "outputs.json"
    slo = config.pools["default"].acceptable_latency_seconds
    saved.write_text(json.dumps(_deployed(config, oldest_age=slo * 3)))
    done = _cli(["--stack", "dev", "--outputs", str(saved), "--json"])
    assert done.exit_code == 1, done.output
    (pool,) = json.loads(done.output)
    assert (pool["pool"], pool["over_slo"], pool["oldest_age_seconds"]) == ("default", True, slo * 3)
    table = _cli(["--stack", "dev", "--outputs", str(saved)])
    assert table.exit_code == 1
    assert "default" in table.output
    assert "alarms in ALARM: latency-a1" in table.output


def test_the_cli_says_what_is_missing_in_one_line(aws: None, tmp_path: Path) -> None:
    done = _cli(["--stack", "dev", "--outputs", str(tmp_path / "missing.json")])
    assert done.exit_code == 2
    assert done.output.count("\n") == 1
    assert "missing.json" in done.output
