"""An AWS rule on what alarms and target tracking read, checked over every rendered stack: no period under
60 s on a metric not published at high resolution."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.support.rendered import Rendered
from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_BUSY_PROCESSES,
    METRIC_CAPACITY_NEEDED,
    METRIC_ENTRY_LATENESS,
    METRIC_IN_FLIGHT,
    METRIC_IN_SERVICE,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    METRIC_OLDEST_AGE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_SCHEDULER_HEARTBEAT,
    METRIC_TASK_SECONDS,
    METRIC_WAITING,
)

SCALING_POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


# What worker.publisher.handler writes with StorageResolution=1 (10 s samples) under the stack's namespace.
HIGH_RESOLUTION = {
    METRIC_WAITING,
    METRIC_IN_FLIGHT,
    METRIC_OLDEST_AGE,
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_TASK_SECONDS,
    METRIC_BUSY_PROCESSES,
    METRIC_IN_SERVICE,
    METRIC_CAPACITY_NEEDED,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    # worker.scheduler.beat, StorageResolution=1 too.
    METRIC_SCHEDULER_HEARTBEAT,
    METRIC_ENTRY_LATENESS,
}


def _metric_reads(stack: Rendered) -> Iterator[tuple[str, str, str, int]]:
    """(resource, namespace, metric, period) of every metric an alarm or a target-tracking policy reads."""
    for name, alarm in stack.named(ALARM).items():
        if "metricName" in alarm:
            yield name, alarm["namespace"], alarm["metricName"], alarm["period"]
        for query in alarm.get("metricQueries", []):
            metric: dict[str, Any] | None = query.get("metric")
            if metric is not None:
                yield name, metric["namespace"], metric["metricName"], metric["period"]
    for name, policy in stack.named(SCALING_POLICY).items():
        spec = (policy.get("targetTrackingConfiguration") or {}).get("customizedMetricSpecification") or {}
        if "metricName" in spec:
            yield name, spec["namespace"], spec["metricName"], spec.get("period", 60)
        for query in spec.get("metrics", []):
            stat = query.get("metricStat")
            if stat is not None:
                yield name, stat["metric"]["namespace"], stat["metric"]["metricName"], stat["period"]


def test_no_period_under_60_s_on_a_metric_not_published_at_high_resolution(stack: Rendered) -> None:
    """PutMetricAlarm, Period: "If you specify 10 or 30 for a metric that does not have sub-minute
    resolution, the alarm still attempts to gather data at the period rate that you specify. In this
    case, it does not receive data for the attempts that do not correspond to a one-minute data
    resolution, and the alarm might often lapse into INSUFFICIENT_DATA."
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    (target tracking's customized metrics accept 10, 30 and 60 s periods under the same rule:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html)."""
    reads = list(_metric_reads(stack))
    assert reads
    namespace = stack.config.metric_namespace
    short = [(r, ns, m, p) for r, ns, m, p in reads if p < 60]
    assert short, "the pools' scaling reads the publisher's 10 s datapoints"
    for resource, metric_namespace, metric, period in short:
        assert (metric_namespace, metric in HIGH_RESOLUTION) == (namespace, True), (
            f"{resource} reads {metric_namespace}/{metric} at {period} s, which is not published at high resolution"
        )
