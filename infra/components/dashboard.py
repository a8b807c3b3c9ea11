"""The stack's CloudWatch dashboard: per pool queues, latency and instances; then broker health."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.components.metrics import ASG_DIMENSION, ASG_IN_SERVICE, ASG_NAMESPACE, DIMENSION_POOL, DIMENSION_QUEUE
from infra.config import PoolConfig, StackConfig
from worker.names import (
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_IN_FLIGHT,
    METRIC_OLDEST_AGE,
    METRIC_UNSTAMPED,
    METRIC_WAITING,
)


def dashboard_name(stack: str) -> str:
    return f"celery-cluster-{stack}"


def dashboard_url(region: str, stack: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={dashboard_name(stack)}"


# long function: the dashboard's widgets in the order they are laid out, top to bottom
def dashboard_body(
    config: StackConfig, pools: Mapping[str, PoolConfig], asg_names: Mapping[str, str], broker_ids: Sequence[str]
) -> dict[str, Any]:
    """The dashboard: per pool queues, latency, in-service instances; then broker health."""
    namespace, region = config.metric_namespace, config.region
    widgets: list[dict[str, Any]] = []

    def widget(title: str, metrics: list[list[Any]], y: int, x: int, stat: str = "Average", period: int = 10) -> None:
        widgets.append(
            {
                "type": "metric",
                "x": x,
                "y": y,
                "width": 8,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": region,
                    "stat": stat,
                    "period": period,
                    "view": "timeSeries",
                    "metrics": metrics,
                },
            }
        )

    for row, (name, pool) in enumerate(sorted(pools.items())):
        y = row * 6
        queue_metrics: list[list[Any]] = []
        for queue in pool.queues:
            queue_metrics.append([namespace, METRIC_WAITING, DIMENSION_POOL, name, DIMENSION_QUEUE, queue])
            queue_metrics.append([namespace, METRIC_IN_FLIGHT, DIMENSION_POOL, name, DIMENSION_QUEUE, queue])
        widget(f"{name}: queues (waiting, in flight)", queue_metrics, y, 0)
        latency: list[list[Any]] = [
            [namespace, METRIC_OLDEST_AGE, DIMENSION_POOL, name, DIMENSION_QUEUE, q] for q in pool.queues
        ]
        # Unstamped messages (a producer without the client) next to the age they are dated by.
        latency += [
            [namespace, METRIC_UNSTAMPED, DIMENSION_POOL, name, DIMENSION_QUEUE, q, {"yAxis": "right"}]
            for q in pool.queues
        ]
        title = f"{name}: oldest message age (s), alarm threshold {pool.alarm_threshold_seconds:g}; unstamped (right)"
        widget(title, latency, y, 8, stat="Maximum")
        widget(
            f"{name}: instances in service, backlog per instance",
            [
                [ASG_NAMESPACE, ASG_IN_SERVICE, ASG_DIMENSION, asg_names[name]],
                [namespace, METRIC_BACKLOG_PER_INSTANCE, DIMENSION_POOL, name, {"yAxis": "right"}],
            ],
            y,
            16,
            period=60,
        )
    y = len(pools) * 6
    if config.is_redis:
        for column, (metric, title) in enumerate(
            (
                ("EngineCPUUtilization", "engine CPU %"),
                ("DatabaseMemoryUsagePercentage", "memory %"),
                ("CurrConnections", "connections"),
            )
        ):
            widget(
                f"broker {title}",
                [["AWS/ElastiCache", metric, "CacheClusterId", cid] for cid in broker_ids],
                y,
                column * 8,
                period=60,
            )
    else:
        for column, (metric, title) in enumerate(
            (("SystemCpuUtilization", "CPU %"), ("RabbitMQMemUsed", "memory used"), ("ConnectionCount", "connections"))
        ):
            widget(
                f"broker {title}", [["AWS/AmazonMQ", metric, "Broker", b] for b in broker_ids], y, column * 8, period=60
            )
    return {"widgets": widgets}
