"""A pool's alarms: latency over the alarm threshold, backlog at max size, backlog with no instance,
publisher stale. Pure functions of the config: each returns `(suffix, args)` for the component to create."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.metrics import ASG_DIMENSION, ASG_IN_SERVICE, ASG_NAMESPACE, DIMENSION_POOL
from infra.config import PoolConfig
from worker.names import METRIC_BACKLOG, METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE, METRIC_PUBLISHER_HEARTBEAT

MINUTE = 60

AlarmArgs = aws.cloudwatch.MetricAlarmArgs
Query = aws.cloudwatch.MetricAlarmMetricQueryArgs
QueryMetric = aws.cloudwatch.MetricAlarmMetricQueryMetricArgs


@dataclass(frozen=True)
class MonitoredPool:
    config: PoolConfig
    asg_name: pulumi.Input[str]
    target_backlog_per_instance: float


def _pool_metric(namespace: str, metric_id: str, metric_name: str, pool: str, stat: str) -> Query:
    return Query(
        id=metric_id,
        return_data=False,
        metric=QueryMetric(
            namespace=namespace,
            metric_name=metric_name,
            dimensions={DIMENSION_POOL: pool},
            stat=stat,
            period=MINUTE,
        ),
    )


def _in_service(asg_name: pulumi.Input[str]) -> Query:
    return Query(
        id="ins",
        return_data=False,
        metric=QueryMetric(
            namespace=ASG_NAMESPACE,
            metric_name=ASG_IN_SERVICE,
            dimensions={ASG_DIMENSION: asg_name},
            stat="Average",
            period=MINUTE,
        ),
    )


def pool_alarms(namespace: str, name: str, pool: MonitoredPool) -> list[tuple[str, AlarmArgs]]:
    """The four alarms of one pool, as `(suffix, args)`."""
    alarms: list[tuple[str, AlarmArgs]] = []
    slo = pool.config.latency_slo_seconds
    alarms.append(
        (
            f"{name}-latency-slo",
            AlarmArgs(
                alarm_description=f"Pool {name}: oldest waiting task older than the {slo:g} s SLO for 5 minutes "
                "(scaling is not keeping up)",
                namespace=namespace,
                metric_name=METRIC_OLDEST_AGE,
                dimensions={DIMENSION_POOL: name},
                statistic="Maximum",
                period=MINUTE,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=slo,
                evaluation_periods=5,
                datapoints_to_alarm=5,
                treat_missing_data="notBreaching",
            ),
        )
    )
    target = pool.target_backlog_per_instance
    alarms.append(
        (
            f"{name}-backlog-at-max",
            AlarmArgs(
                alarm_description=f"Pool {name}: at max size ({pool.config.max_size}) with backlog per instance "
                f"over target ({target:g}) "
                "for 10 minutes; raise maxSize or look for slow tasks",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                evaluation_periods=10,
                datapoints_to_alarm=10,
                treat_missing_data="notBreaching",
                metric_queries=[
                    _in_service(pool.asg_name),
                    _pool_metric(namespace, "bpi", METRIC_BACKLOG_PER_INSTANCE, name, "Average"),
                    Query(
                        id="at_max",
                        return_data=True,
                        label="At max with backlog",
                        expression=f"IF(ins >= {pool.config.max_size} AND bpi > {target:g}, 1, 0)",
                    ),
                ],
            ),
        )
    )
    alarms.append(
        (
            f"{name}-backlog-no-instances",
            AlarmArgs(
                alarm_description=f"Pool {name}: tasks waiting and no instance in service for 10 minutes "
                "(cannot launch? capacity? AMI?)",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                evaluation_periods=10,
                datapoints_to_alarm=10,
                treat_missing_data="notBreaching",
                metric_queries=[
                    _in_service(pool.asg_name),
                    _pool_metric(namespace, "backlog", METRIC_BACKLOG, name, "Maximum"),
                    Query(
                        id="stuck",
                        return_data=True,
                        label="Backlog with none in service",
                        expression="IF(backlog > 0 AND FILL(ins, 0) == 0, 1, 0)",
                    ),
                ],
            ),
        )
    )
    alarms.append(
        (
            f"{name}-publisher-stale",
            AlarmArgs(
                alarm_description=f"Pool {name}: no publisher heartbeat for 3 minutes; "
                "the metrics publisher is down, so scaling is blind",
                namespace=namespace,
                metric_name=METRIC_PUBLISHER_HEARTBEAT,
                dimensions={DIMENSION_POOL: name},
                statistic="SampleCount",
                period=MINUTE,
                comparison_operator="LessThanThreshold",
                threshold=1,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                # Missing data is exactly the failure this alarm exists for.
                treat_missing_data="breaching",
            ),
        )
    )
    return alarms
