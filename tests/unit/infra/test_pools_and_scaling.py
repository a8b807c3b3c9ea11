"""Worker pools and their scaling policies as rendered: shape, drain window, targets, the metrics they read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from infra.components.pool_scaling import bound
from infra.config import DRAIN_MARGIN_SECONDS
from infra.program import longest_task_seconds
from infra.scaling.default_policy import SCALE_IN_LOAD, SCALE_IN_SECONDS
from infra.vm.files import POOL_ENV
from infra.vm.user_data import STOP_MARGIN_S
from tests.support.percent_change import removed
from tests.support.rendered import Rendered
from tests.support.units import systemd_unquote
from worker.names import (
    METRIC_BACKLOG,
    METRIC_CAPACITY_NEEDED,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    METRIC_OLDEST_AGE,
)
from worker.publisher.capacity import PoolSignal, Sample, capacity
from worker.publisher.handler import PoolQueues, load_config, metric_data, service_data
from worker.publisher.queues import QueueStats, Snapshot
from worker.runtime.task_stats import QueueService

ASG = "aws:autoscaling/group:Group"
POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FUNCTION = "aws:lambda/function:Function"
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
        for short in ("latency", "fast-out", "from-zero", "scale-in"):
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


def _publisher_pools(stack: Rendered) -> tuple[PoolQueues, ...]:
    """The pools as the publisher reads them from this render's POOLS_JSON."""
    variables = stack.one(FUNCTION, "publisher-fn")["environment"]["variables"]
    environ = {**variables, "BROKER_URL": "redis://render.invalid:6379/0"}
    return load_config(environ).pools


def _published_names(pool: PoolQueues, in_service: int) -> set[str]:
    """Every per-pool metric (dimension Pool only) the publisher writes in one sample with work waiting."""
    stats = tuple(QueueStats(q, waiting=3, in_flight=1, oldest_published_at=0.0) for q in pool.queues)
    snapshot = Snapshot(10.0, stats)
    counts = {pool.asg: in_service}
    service = [QueueService(q, ended=2, seconds=3.0, running=1) for q in pool.queues]
    data = metric_data((pool,), snapshot, counts) + service_data((pool,), snapshot, counts, service)
    return {d["MetricName"] for d in data if d["Dimensions"] == [{"Name": "Pool", "Value": pool.name}]}


def test_every_policy_reads_one_metric_the_publisher_writes_for_its_pool(stack: Rendered) -> None:
    """No metric math: target tracking and every step alarm read one metric (dimension Pool) that the
    publisher, configured by this render's POOLS_JSON, publishes for that pool, named as the policy
    objects the simulator runs name it."""
    pools = {pool.name: pool for pool in _publisher_pools(stack)}
    assert set(pools) == set(stack.config.pools)
    for name, config in stack.config.pools.items():
        scaling = config.scaling(name)
        assert pools[name].signal == scaling.signal, "the publisher computes with the policy's constants"
        written = _published_names(pools[name], 0) | _published_names(pools[name], 2)
        spec = stack.one(POLICY, f"pool-{name}-backlog")["targetTrackingConfiguration"]["customizedMetricSpecification"]
        assert "metrics" not in spec
        assert spec["metricName"] == scaling.target_tracking.metric_name
        assert spec["metricDimensions"] == [{"name": "Pool", "value": name}]
        assert spec["namespace"] == stack.config.metric_namespace
        assert spec["metricName"] in written
        for short, policy in scaling.step_policies:
            alarm = stack.one(ALARM, f"pool-{name}-{short}")
            assert "metricQueries" not in alarm
            assert (alarm["metricName"], alarm["dimensions"]) == (policy.metric_name, {"Pool": name})
            assert alarm["metricName"] in written, (short, alarm["metricName"])


def test_capacity_needed_is_not_published_at_zero_in_service(stack: Rendered) -> None:
    """Target tracking multiplies the current capacity, so at zero in service it gets no datum and the
    from-zero step's metric carries the backlog instead."""
    for pool in _publisher_pools(stack):
        assert METRIC_CAPACITY_NEEDED not in _published_names(pool, 0)
        assert METRIC_CAPACITY_NEEDED in _published_names(pool, 1)
        assert METRIC_NEEDED_AT_ZERO in _published_names(pool, 1)


def test_latency_net_fires_on_the_oldest_message_at_the_slo(stack: Rendered) -> None:
    for name, pool in stack.config.pools.items():
        step = stack.one(POLICY, f"pool-{name}-latency")
        assert step["adjustmentType"] == "PercentChangeInCapacity"
        # The policy object's steps, rendered as they are (the rule itself: tests/unit/test_scaling_policy.py).
        net = pool.scaling(name).step("latency")
        assert net is not None
        assert [s["scalingAdjustment"] for s in step["stepAdjustments"]] == [s.scaling_adjustment for s in net.steps]
        assert step["stepAdjustments"][0]["metricIntervalLowerBound"] == "0"
        alarm = stack.one(ALARM, f"pool-{name}-latency")
        assert alarm["threshold"] == pool.acceptable_latency_seconds  # the SLO; the alarm threshold pages
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert (alarm["metricName"], alarm["dimensions"]) == (METRIC_OLDEST_AGE, {"Pool": name})
        assert alarm["period"] == 10  # the publisher's high-resolution datapoints
        assert alarm["alarmActions"] == [f"{ARN}/pool-{name}-latency"]


def test_scale_in_is_a_step_policy_with_hysteresis(stack: Rendered) -> None:
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


_BREACHES = {
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


def _breaches(alarm: dict[str, Any], published: dict[str, float]) -> bool:
    """The alarm on the value the publisher puts for its one metric (alarms read no metric math now)."""
    value = published[alarm["metricName"]]
    return bool(_BREACHES[alarm["comparisonOperator"]](value, alarm["threshold"]))


def _published(signal: PoolSignal, *, waiting: int, in_flight: int, busy: int, in_service: int) -> dict[str, float]:
    """What the publisher puts for a pool at one sample: its capacity rule and the backlog."""
    rule = capacity(Sample(waiting, in_flight, busy, 2.0, in_service), signal)
    return {METRIC_LOAD_WITH_ONE_FEWER: rule.load_with_one_fewer, METRIC_BACKLOG: float(waiting + in_flight)}


def test_scale_in_never_empties_a_busy_pool(stack: Rendered) -> None:
    """With one task running, no alarm the stack renders takes a pool's last instance: evaluated on what
    the publisher's capacity rule publishes and the rendered alarm's comparison, not on the policy's shape.
    And no scale-in step, as AWS rounds it, removes every instance of a bigger pool."""
    for name, pool in stack.config.pools.items():
        signal = pool.scaling(name).signal
        one_running = _published(signal, waiting=0, in_flight=1, busy=1, in_service=1)
        idle_of_three = _published(signal, waiting=0, in_flight=0, busy=0, in_service=3)
        scale_in = stack.one(ALARM, f"pool-{name}-scale-in")
        assert not _breaches(scale_in, one_running), name
        assert _breaches(scale_in, idle_of_three), f"{name}: scale-in never fires, even idle"
        names = {r.name for r in stack.render.resources}
        if f"pool-{name}-to-zero" in names:
            to_zero = stack.one(ALARM, f"pool-{name}-to-zero")
            idle = _published(signal, waiting=0, in_flight=0, busy=0, in_service=1)
            assert not _breaches(to_zero, one_running), name
            assert _breaches(to_zero, idle), f"{name}: the to-zero alarm never fires, so the check above proves nothing"
        step = stack.one(POLICY, f"pool-{name}-scale-in")
        largest = max(-s["scalingAdjustment"] for s in step["stepAdjustments"])
        for instances in range(2, pool.max_size + 1):
            assert instances - removed(instances, largest, step["minAdjustmentMagnitude"]) >= 1, (name, instances)


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
