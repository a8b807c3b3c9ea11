"""Worker pools and their scaling policies as rendered: shape, drain window, targets, metric math."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
import yaml

from infra.components.metrics import backlog_per_instance_expression
from infra.components.pool_scaling import bound
from infra.config import DRAIN_MARGIN_SECONDS
from infra.program import longest_task_seconds
from infra.scaling.default_policy import SCALE_IN_LOAD, SCALE_IN_SECONDS
from infra.scaling.group_state import GroupView, PoolSample
from infra.scaling.signals import SIGNAL_CAPACITY_NEEDED, SIGNAL_LOAD_WITH_ONE_FEWER, metric_functions
from infra.vm.files import POOL_ENV
from infra.vm.user_data import STOP_MARGIN_S
from tests.unit.infra.conftest import Rendered
from tests.unit.test_fetchenv import systemd_unquote
from worker.names import (
    METRIC_BUSY_PROCESSES,
    METRIC_IN_FLIGHT,
    METRIC_IN_SERVICE,
    METRIC_OLDEST_AGE,
    METRIC_TASK_SECONDS,
    METRIC_WAITING,
)

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


def _evaluate(expression: str, values: dict[str, Any]) -> float:
    """Evaluate the CloudWatch metric math we emit (arithmetic, comparisons, IF, FILL) on one point."""
    python = expression.replace("REPEAT", "None")
    namespace: dict[str, Any] = {
        "IF": lambda condition, yes, no: yes if condition else no,
        "FILL": lambda value, fill: fill if value is None else value,
        **values,
    }
    with np.errstate(divide="ignore", invalid="ignore"):  # IF evaluates both branches here
        result = eval(python, {"__builtins__": {}}, namespace)  # noqa: S307 - our own expression
    return float(result)


def _run_queries(queries: list[dict[str, Any]], metrics: dict[str, float | None]) -> float:
    """Evaluate a rendered query list: metric reads from `metrics` (by metric name and queue), then each
    expression in order; the value of the query that returns data."""
    env: dict[str, Any] = {}
    returned = None
    for query in queries:
        stat = query.get("metricStat", {}).get("metric") or query.get("metric")
        if stat is not None:
            dims = stat["dimensions"]
            queue = (
                dims.get("Queue")
                if isinstance(dims, dict)
                else next((d["value"] for d in dims if d["name"] == "Queue"), None)
            )
            value = metrics.get(f"{stat['metricName']}/{queue}" if queue else stat["metricName"])
            env[query["id"]] = None if value is None else np.float64(value)
        else:
            env[query["id"]] = np.float64(_evaluate(query["expression"], env))
        if query.get("returnData"):
            returned = env[query["id"]]
    assert returned is not None
    return float(returned)


POINTS = [
    # waiting, in flight, busy (None: not published), measured task seconds (None: none ended), in service
    (0, 0, 0, None, 0),
    (12, 0, 0, None, 0),
    (12, 0, 0, 600.0, 0),
    (0, 7, 7, 2.0, 2),
    (40, 8, 8, None, 2),
    (40, 8, None, 6.0, 2),
    (3, 16, 16, 600.0, 4),
    (0, 3, 3, 600.0, 1),
    (5, 20, 18, 1.5, 6),
]


def test_rendered_signals_are_the_models_signals(stack: Rendered) -> None:
    """The metric math AWS evaluates is the formula the simulator runs (infra.scaling.signals)."""
    for name, pool in stack.config.pools.items():
        scaling = pool.scaling(name)
        functions = metric_functions(scaling.signal)
        tracking = stack.one(POLICY, f"pool-{name}-backlog")["targetTrackingConfiguration"]
        rendered = {scaling.target_tracking.metric_name: tracking["customizedMetricSpecification"]["metrics"]}
        for short, policy in scaling.step_policies:
            alarm = stack.one(ALARM, f"pool-{name}-{short}")
            if "metricQueries" in alarm:
                rendered[policy.metric_name] = alarm["metricQueries"]
        assert set(rendered) >= {SIGNAL_CAPACITY_NEEDED, SIGNAL_LOAD_WITH_ONE_FEWER}
        for waiting, in_flight, busy, seconds, in_service in POINTS:
            # The publisher's numbers, spread over the pool's queues.
            metrics: dict[str, float | None] = {METRIC_BUSY_PROCESSES: busy, METRIC_TASK_SECONDS: seconds}
            metrics[METRIC_IN_SERVICE] = in_service
            for index, queue in enumerate(pool.queues):
                metrics[f"{METRIC_WAITING}/{queue}"] = waiting if index == 0 else 0
                metrics[f"{METRIC_IN_FLIGHT}/{queue}"] = in_flight if index == 0 else 0
            sample = PoolSample(0.0, waiting, in_flight, 0.0, busy_processes=busy, task_seconds=seconds)
            view = GroupView(
                in_service, in_service, pool.concurrency, configured_task_seconds=pool.average_task_seconds
            )
            for signal, queries in rendered.items():
                expected = functions[signal](sample, view)
                assert expected is not None
                got = _run_queries(queries, metrics)
                assert got == pytest.approx(expected), (name, signal, waiting, in_flight, busy, seconds, in_service)


def test_backlog_expression_counts_waiting_and_in_flight() -> None:
    expression = backlog_per_instance_expression(["w0", "w1"], ["f0", "f1"], "ins")
    values = {"w0": 5, "w1": 1, "f0": 2, "f1": 0, "ins": 2}
    assert _evaluate(expression.replace("FILL(ins, REPEAT)", "ins"), values) == 4


def test_latency_net_fires_on_the_oldest_message_at_the_slo(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        step = stack.one(POLICY, f"pool-{name}-latency")
        assert step["adjustmentType"] == "PercentChangeInCapacity"
        assert [s["scalingAdjustment"] for s in step["stepAdjustments"]] == [50, 100, 200]
        assert step["stepAdjustments"][0]["metricIntervalLowerBound"] == "0"
        alarm = stack.one(ALARM, f"pool-{name}-latency")
        assert alarm["threshold"] == pool.acceptable_latency_seconds  # the SLO; the alarm threshold pages
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert (alarm["metricName"], alarm["dimensions"]) == (METRIC_OLDEST_AGE, {"Pool": name})
        assert alarm["period"] == 10  # the publisher's high-resolution datapoints
        assert alarm["alarmActions"] == [f"{ARN}/pool-{name}-latency"]


def test_scale_in_is_a_step_policy_with_hysteresis_that_never_empties_a_busy_pool(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        tracking = stack.one(POLICY, f"pool-{name}-backlog")["targetTrackingConfiguration"]
        assert tracking["disableScaleIn"] is True
        step = stack.one(POLICY, f"pool-{name}-scale-in")
        assert step["adjustmentType"] == "PercentChangeInCapacity"
        assert step["minAdjustmentMagnitude"] == 1
        assert all(s["scalingAdjustment"] < 0 for s in step["stepAdjustments"])
        alarm = stack.one(ALARM, f"pool-{name}-scale-in")
        assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", SCALE_IN_LOAD)
        assert alarm["evaluationPeriods"] == alarm["datapointsToAlarm"] == SCALE_IN_SECONDS // 10
        assert alarm["alarmActions"] == [f"{ARN}/pool-{name}-scale-in"]
        names = {r.name for r in stack.render.resources}
        # Only a minSize 0 pool has the policy that takes the last instance away.
        assert (f"pool-{name}-to-zero" in names) == (pool.min_size == 0)


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
