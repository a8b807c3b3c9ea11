"""The broker's alarms: CPU, memory, evictions and connections (ElastiCache), CPU, memory and
connections (Amazon MQ). Pure functions of the config: each returns `(suffix, args)`."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from infra.components.alarm_args import MINUTE, AlarmArgs, Metric, Query, alarm, queried_metric
from infra.config import StackConfig


def _sustained(
    what: str,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    stat: str,
    threshold: float,
) -> AlarmArgs:
    """A broker metric over its threshold for five consecutive minutes."""
    return alarm(
        f"{what} over {threshold} for 5 minutes",
        Metric(namespace, metric, stat, dimensions),
        "GreaterThanThreshold",
        threshold,
        periods=5,
        # AWS publishes these every minute while the broker runs; a gap (maintenance, a node being
        # replaced) is neither healthy nor overloaded, so it is left out of the evaluation, and a
        # broker with no data at all shows INSUFFICIENT_DATA rather than OK or ALARM.
        missing="missing",
    )


def cache_alarms(config: StackConfig, node: str, cluster_id: pulumi.Input[str]) -> list[tuple[str, AlarmArgs]]:
    """The alarms of one ElastiCache node."""
    checks = (
        ("cpu", "CPUUtilization", "Average", config.broker_cpu_alarm_percent, "host CPU"),
        (
            "engine-cpu",
            "EngineCPUUtilization",
            "Average",
            config.broker_cpu_alarm_percent,
            "engine (main thread) CPU",
        ),
        ("memory", "DatabaseMemoryUsagePercentage", "Maximum", config.broker_memory_alarm_percent, "memory use"),
        ("connections", "CurrConnections", "Maximum", config.broker_connections_alarm, "client connections"),
    )
    alarms = [
        (
            f"broker-{node}-{suffix}",
            _sustained(
                f"Broker {node}: {what}", "AWS/ElastiCache", metric, {"CacheClusterId": cluster_id}, stat, limit
            ),
        )
        for suffix, metric, stat, limit, what in checks
    ]
    alarms.append(
        (
            f"broker-{node}-evictions",
            AlarmArgs(
                alarm_description=f"Broker {node}: keys evicted; with noeviction this should never happen, "
                "and an evicted key is a lost task",
                namespace="AWS/ElastiCache",
                metric_name="Evictions",
                dimensions={"CacheClusterId": cluster_id},
                statistic="Sum",
                period=MINUTE,
                comparison_operator="GreaterThanThreshold",
                threshold=0,
                evaluation_periods=1,
                # Only a counted eviction is evidence of one; no datum is no eviction.
                treat_missing_data="notBreaching",
            ),
        )
    )
    return alarms


def mq_alarms(config: StackConfig, broker_name: pulumi.Input[str]) -> list[tuple[str, AlarmArgs]]:
    """The alarms of the Amazon MQ broker."""

    def metric(metric_id: str, name: str, stat: str) -> Query:
        return queried_metric(metric_id, "AWS/AmazonMQ", name, {"Broker": broker_name}, stat)

    alarms = [
        (f"broker-{suffix}", _sustained(f"Broker: {what}", "AWS/AmazonMQ", name, {"Broker": broker_name}, stat, limit))
        for suffix, name, stat, limit, what in (
            ("cpu", "SystemCpuUtilization", "Average", config.broker_cpu_alarm_percent, "CPU"),
            ("connections", "ConnectionCount", "Maximum", config.broker_connections_alarm, "client connections"),
        )
    ]
    # RabbitMQ blocks publishers at its memory high watermark instead of evicting: alarm before it.
    alarms.append(
        (
            "broker-memory",
            alarm(
                f"Broker: memory over {config.broker_memory_alarm_percent}% of the RabbitMQ limit "
                "(publishers block at 100%)",
                [
                    metric("used", "RabbitMQMemUsed", "Maximum"),
                    metric("limit", "RabbitMQMemLimit", "Maximum"),
                    Query(id="pct", return_data=True, label="Memory % of limit", expression="100 * used / limit"),
                ],
                "GreaterThanThreshold",
                config.broker_memory_alarm_percent,
                periods=5,
                # As the other broker alarms: a gap in AWS's broker metrics is not evidence either way.
                missing="missing",
            ),
        )
    )
    return alarms
