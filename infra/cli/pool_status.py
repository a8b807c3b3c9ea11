"""What a deployed stack's scaling sees now: per pool, the group's sizes, the queues, latency against
the SLO, the measured task time, the alarms in ALARM and the last scale activities.

Reads only: the stack's outputs (the Auto Scaling group names and the metric namespace), the pools'
config (queues and SLO), Auto Scaling (DescribeAutoScalingGroups, DescribeScalingActivities) and
CloudWatch (GetMetricData, DescribeAlarms). The clients are passed in, so tests run it on moto.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.components.metrics import DIMENSION_POOL, DIMENSION_QUEUE
from infra.config import PoolConfig, StackConfig
from infra.outputs import METRIC_NAMESPACE, POOL_ASG_NAMES
from worker.names import (
    METRIC_BUSY_PROCESSES,
    METRIC_IN_FLIGHT,
    METRIC_OLDEST_AGE,
    METRIC_TASK_SECONDS,
    METRIC_WAITING,
)

# How far back to look for the newest datapoint: the publisher writes every 10 s, so a pool whose
# newest point is older than this has a publisher problem, which the table shows as "-".
LOOKBACK = timedelta(minutes=10)
ACTIVITIES_SHOWN = 5


class StatusError(RuntimeError):
    """The stack cannot be read as asked (no outputs, an unknown pool); the message says which."""


@dataclass(frozen=True)
class Activity:
    at: str
    status: str
    description: str


@dataclass(frozen=True)
class PoolStatus:
    pool: str
    asg_name: str
    in_service: int
    desired: int
    min_size: int
    max_size: int
    waiting: float | None
    in_flight: float | None
    oldest_age_seconds: float | None
    slo_seconds: float
    """acceptableLatencySeconds: the pool meets its SLO when p95 queue wait is at or under this."""
    task_seconds: float | None
    """The measured mean task run time (None until the publisher has measured one)."""
    configured_task_seconds: float
    busy_processes: float | None
    alarms: list[str] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)

    @property
    def over_slo(self) -> bool:
        return self.oldest_age_seconds is not None and self.oldest_age_seconds > self.slo_seconds

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "over_slo": self.over_slo}


def _query(query_id: str, namespace: str, metric: str, dimensions: Mapping[str, str], stat: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            },
            "Period": 60,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _latest(cloudwatch: Any, queries: list[dict[str, Any]], now: datetime) -> dict[str, float]:
    """The newest value of each query that has one in the look-back window."""
    latest: dict[str, float] = {}
    for start in range(0, len(queries), 500):  # GetMetricData takes at most 500 queries a call
        pages = cloudwatch.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries[start : start + 500],
            StartTime=now - LOOKBACK,
            EndTime=now,
            ScanBy="TimestampDescending",
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                if result["Values"] and result["Id"] not in latest:
                    latest[result["Id"]] = float(result["Values"][0])
    return latest


def _sum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def pool_statuses(
    config: StackConfig,
    outputs: Mapping[str, Any],
    autoscaling: Any,
    cloudwatch: Any,
    now: datetime | None = None,
    pools: list[str] | None = None,
) -> list[PoolStatus]:
    """The status of each pool (all, or those named), read from AWS now."""
    now = now or datetime.now(UTC)
    groups: Mapping[str, str] = outputs.get(POOL_ASG_NAMES) or {}
    namespace = str(outputs.get(METRIC_NAMESPACE) or config.metric_namespace)
    names = pools or sorted(config.pools)
    unknown = [n for n in names if n not in config.pools or n not in groups]
    if unknown:
        raise StatusError(f"no deployed pool named {', '.join(unknown)} (pools: {', '.join(sorted(groups)) or 'none'})")

    values = _latest(cloudwatch, _pool_queries(config, names, namespace), now)
    described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[groups[n] for n in names])
    by_group = {g["AutoScalingGroupName"]: g for g in described["AutoScalingGroups"]}
    firing = _alarms_in_alarm(cloudwatch)
    statuses: list[PoolStatus] = []
    for p, name in enumerate(names):
        group = by_group.get(groups[name])
        if group is None:
            raise StatusError(
                f"pool {name}: Auto Scaling group {groups[name]} does not exist (was the stack destroyed?)"
            )
        alarms = sorted(a for a, description in firing if description.startswith(f"Pool {name}:"))
        statuses.append(_pool_status(config.pools[name], name, p, group, values, alarms, autoscaling))
    return statuses


def _pool_queries(config: StackConfig, names: list[str], namespace: str) -> list[dict[str, Any]]:
    """Per pool p: age{p}, task{p}, busy{p}; per queue q of it: w{p}x{q} (waiting), f{p}x{q} (in flight)."""
    queries: list[dict[str, Any]] = []
    for p, name in enumerate(names):
        pool_dims = {DIMENSION_POOL: name}
        queries.append(_query(f"age{p}", namespace, METRIC_OLDEST_AGE, pool_dims, "Maximum"))
        queries.append(_query(f"task{p}", namespace, METRIC_TASK_SECONDS, pool_dims, "Average"))
        queries.append(_query(f"busy{p}", namespace, METRIC_BUSY_PROCESSES, pool_dims, "Average"))
        for q, queue in enumerate(config.pools[name].queues):
            queue_dims = {DIMENSION_POOL: name, DIMENSION_QUEUE: queue}
            queries.append(_query(f"w{p}x{q}", namespace, METRIC_WAITING, queue_dims, "Average"))
            queries.append(_query(f"f{p}x{q}", namespace, METRIC_IN_FLIGHT, queue_dims, "Average"))
    return queries


def _pool_status(
    pool: PoolConfig,
    name: str,
    p: int,
    group: Mapping[str, Any],
    values: Mapping[str, float],
    alarms: list[str],
    autoscaling: Any,
) -> PoolStatus:
    queues = range(len(pool.queues))
    return PoolStatus(
        pool=name,
        asg_name=str(group["AutoScalingGroupName"]),
        in_service=sum(1 for i in group.get("Instances", []) if i["LifecycleState"] == "InService"),
        desired=int(group["DesiredCapacity"]),
        min_size=int(group["MinSize"]),
        max_size=int(group["MaxSize"]),
        waiting=_sum([values.get(f"w{p}x{q}") for q in queues]),
        in_flight=_sum([values.get(f"f{p}x{q}") for q in queues]),
        oldest_age_seconds=values.get(f"age{p}"),
        slo_seconds=pool.acceptable_latency_seconds,
        task_seconds=values.get(f"task{p}"),
        configured_task_seconds=pool.average_task_seconds,
        busy_processes=values.get(f"busy{p}"),
        alarms=alarms,
        activities=_activities(autoscaling, str(group["AutoScalingGroupName"])),
    )


def _alarms_in_alarm(cloudwatch: Any) -> list[tuple[str, str]]:
    """(name, description) of every metric alarm in ALARM; pool alarms' descriptions start "Pool <name>:"."""
    found: list[tuple[str, str]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(StateValue="ALARM", AlarmTypes=["MetricAlarm"]):
        found += [(a["AlarmName"], a.get("AlarmDescription") or "") for a in page["MetricAlarms"]]
    return found


def _activities(autoscaling: Any, group: str) -> list[Activity]:
    answer = autoscaling.describe_scaling_activities(AutoScalingGroupName=group, MaxRecords=ACTIVITIES_SHOWN)
    return [
        Activity(
            at=a["StartTime"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            status=a.get("StatusCode", ""),
            description=a.get("Description", ""),
        )
        for a in answer.get("Activities", [])[:ACTIVITIES_SHOWN]
    ]
