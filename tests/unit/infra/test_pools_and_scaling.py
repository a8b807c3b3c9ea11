"""Worker pools and their scaling policies as rendered: shape, drain window, targets, metric math."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from infra.components.metrics import backlog_per_instance_expression
from infra.components.pool_scaling import bound
from infra.config import DRAIN_MARGIN_SECONDS
from infra.program import longest_task_seconds
from infra.vm.files import POOL_ENV
from infra.vm.user_data import STOP_MARGIN_S
from tests.unit.infra.conftest import Rendered
from tests.unit.test_fetchenv import systemd_unquote
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE

ASG = "aws:autoscaling/group:Group"
POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
ARN = "arn:aws:autoscaling:us-east-1:123456789012:autoscaling"


def _env(template: dict[str, Any]) -> dict[str, str]:
    """The pool's environment file, as the launch template's cloud-config user data writes it."""
    config = yaml.safe_load(base64.b64decode(template["userData"]).decode())
    (content,) = [f["content"] for f in config["write_files"] if f["path"] == POOL_ENV]
    return dict(systemd_unquote(line) for line in content.splitlines() if line and not line.startswith("#"))


def test_every_pool_has_template_group_and_policies(stack: Rendered) -> None:
    groups, policies = stack.named(ASG), stack.named(POLICY)
    for name in stack.config.pools:
        assert f"pool-{name}-asg" in groups
        assert f"pool-{name}-lt" in stack.named(LT)
        assert policies[f"pool-{name}-backlog"]["policyType"] == "TargetTrackingScaling"
        for short in ("latency", "fast-out", "scale-in"):
            assert policies[f"pool-{name}-{short}"]["policyType"] == "StepScaling"
    assert len([name for name in groups if name.startswith("pool-")]) == len(stack.config.pools)


def test_group_references_latest_template_version_number(stack: Rendered) -> None:
    for name in stack.config.pools:
        group = stack.one(ASG, f"pool-{name}-asg")
        spec = (
            group["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
            if "mixedInstancesPolicy" in group
            else group["launchTemplate"]
        )
        # The mocked template's latestVersion is 1: the group carries that number, not $Latest.
        assert spec["version"] == "1"
        assert spec.get("launchTemplateId", spec.get("id")) == f"pool-{name}-lt-id"
        assert group["instanceRefresh"]["strategy"] == "Rolling"


def test_lifecycle_hook_timeout_is_the_drain_window(stack: Rendered) -> None:
    config = stack.config
    for name in config.pools:
        hook = stack.one("aws:autoscaling/lifecycleHook:LifecycleHook", f"pool-{name}-drain")
        assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert hook["heartbeatTimeout"] == config.drain_window_seconds
        env = _env(stack.one(LT, f"pool-{name}-lt"))
        # Running tasks get at least the stack's window and at least as long as a task may run; the
        # agent heartbeats the hook meanwhile, so the drain may outlast its heartbeat timeout.
        soft = int(env["CELERY_SOFT_SHUTDOWN_TIMEOUT"])
        assert soft >= hook["heartbeatTimeout"] - DRAIN_MARGIN_SECONDS
        assert soft >= longest_task_seconds(config.worker_environment(name))
        assert int(env["DRAIN_TIMEOUT"]) == soft + STOP_MARGIN_S


def test_user_data_carries_the_pool_shape(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        env = _env(stack.one(LT, f"pool-{name}-lt"))
        assert env["WORKER_QUEUES"] == ",".join(pool.queues)
        assert env["WORKER_CONCURRENCY"] == str(pool.concurrency)
        assert env["WORKER_POOL_NAME"] == name


def test_group_settings(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        group = stack.one(ASG, f"pool-{name}-asg")
        assert (group["minSize"], group["maxSize"]) == (pool.min_size, pool.max_size)
        assert group["defaultInstanceWarmup"] == pool.instance_warmup_seconds
        assert "GroupInServiceInstances" in group["enabledMetrics"]
        assert group["capacityRebalance"] is pool.spot.enabled
        if pool.warm_pool.enabled:
            assert group["warmPool"]["minSize"] == pool.warm_pool.min_size
            assert "mixedInstancesPolicy" not in group
        else:
            mixed = group["mixedInstancesPolicy"]
            overrides = [o["instanceType"] for o in mixed["launchTemplate"]["overrides"]]
            assert overrides == list(pool.instance_types)
            distribution = mixed["instancesDistribution"]
            assert distribution["onDemandPercentageAboveBaseCapacity"] == pool.on_demand_percentage_above_base


def test_target_equals_latency_over_task_seconds_times_concurrency(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        config = stack.one(POLICY, f"pool-{name}-backlog")["targetTrackingConfiguration"]
        expected = pool.acceptable_latency_seconds / pool.average_task_seconds * pool.concurrency
        assert config["targetValue"] == pytest.approx(expected)


def _evaluate(expression: str, values: dict[str, float]) -> float:
    """Evaluate the CloudWatch metric math we emit (sums, division, IF, FILL with REPEAT) on one point."""
    python = expression.replace("FILL(ins, REPEAT)", "ins")
    namespace: dict[str, Any] = {"IF": lambda condition, yes, no: yes if condition else no, **values}
    result: float = eval(python, {"__builtins__": {}}, namespace)  # noqa: S307 - our own expression
    return result


def test_backlog_per_instance_math_is_defined_at_zero_instances(stack: Rendered) -> None:
    for name in stack.config.pools:
        metrics = stack.one(POLICY, f"pool-{name}-backlog")["targetTrackingConfiguration"][
            "customizedMetricSpecification"
        ]["metrics"]
        (expression,) = [m for m in metrics if m.get("returnData")]
        ids = {m["id"] for m in metrics if "metricStat" in m}
        assert {m["metricStat"]["period"] for m in metrics if "metricStat" in m} == {10}
        values = {metric_id: 3.0 for metric_id in ids if metric_id != "ins"}
        backlog = sum(values.values())
        assert _evaluate(expression["expression"], {**values, "ins": 0.0}) == backlog
        assert _evaluate(expression["expression"], {**values, "ins": 4.0}) == backlog / 4


def test_backlog_expression_counts_waiting_and_in_flight() -> None:
    expression = backlog_per_instance_expression(["w0", "w1"], ["f0", "f1"], "ins")
    assert _evaluate(expression, {"w0": 5, "w1": 1, "f0": 2, "f1": 0, "ins": 2}) == 4


def test_step_scaling_fires_on_latency_over_the_slo(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        step = stack.one(POLICY, f"pool-{name}-latency")
        assert step["adjustmentType"] == "ChangeInCapacity"
        assert [s["scalingAdjustment"] for s in step["stepAdjustments"]] == [1, 2, 4]
        assert step["stepAdjustments"][0]["metricIntervalLowerBound"] == "0"
        alarm = stack.one(ALARM, f"pool-{name}-latency")
        assert alarm["threshold"] == pool.latency_slo_seconds
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert (alarm["metricName"], alarm["dimensions"]) == (METRIC_OLDEST_AGE, {"Pool": name})
        assert alarm["period"] == 10  # the publisher's high-resolution datapoints
        assert alarm["alarmActions"] == [f"{ARN}/pool-{name}-latency"]


def test_scale_in_is_a_step_policy_below_the_target(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        tracking = stack.one(POLICY, f"pool-{name}-backlog")["targetTrackingConfiguration"]
        assert tracking["disableScaleIn"] is True
        step = stack.one(POLICY, f"pool-{name}-scale-in")
        assert step["adjustmentType"] == "PercentChangeInCapacity"
        assert step["minAdjustmentMagnitude"] == 1
        assert all(s["scalingAdjustment"] < 0 for s in step["stepAdjustments"])
        alarm = stack.one(ALARM, f"pool-{name}-scale-in")
        assert alarm["comparisonOperator"] == "LessThanThreshold"
        assert (alarm["metricName"], alarm["dimensions"]) == (METRIC_BACKLOG_PER_INSTANCE, {"Pool": name})
        # Scale-in starts well under the target, so the two policies never fight.
        assert alarm["threshold"] < 0.9 * tracking["targetValue"]
        assert alarm["threshold"] <= pool.concurrency
        assert alarm["alarmActions"] == [f"{ARN}/pool-{name}-scale-in"]


def test_instance_role_may_complete_only_its_own_lifecycle_hook(stack: Rendered) -> None:
    for name in stack.config.pools:
        document = json.loads(stack.one("aws:iam/rolePolicy:RolePolicy", f"pool-{name}-lifecycle")["policy"])
        (statement,) = document["Statement"]
        assert statement["Resource"] == f"{ARN}/pool-{name}-asg"


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (-0.0, "0"), (90.0, "90"), (-2.55, "-2.55"), (1234567.0, "1234567"), (1 / 3, "0.333333")],
)
def test_step_bounds_are_plain_decimals(value: float, text: str) -> None:
    assert bound(value) == text
