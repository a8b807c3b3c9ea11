"""A pool's alarms: latency over the alarm threshold, backlog at max size, backlog with no instance,
a waiting queue with no age, publisher stale. Pure functions of the config: each returns
`(suffix, args)` for the component to create.

Missing data is chosen per alarm (`treat_missing_data`, each with its reason). The publisher sends
every pool's metrics every sample, an empty queue included (age 0), so a gap means one of two
failures, and each has its own alarm that treats it as breaching: the publisher is down
(publisher-stale: no heartbeat), or a queue holds messages whose age cannot be told
(age-unknown: PoolQueuesWithoutAge, which the publisher sends as a number). The other alarms
therefore judge only the data they get. Semantics:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.metrics import ASG_DIMENSION, ASG_IN_SERVICE, ASG_NAMESPACE, DIMENSION_POOL
from infra.config import PoolConfig
from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_OLDEST_AGE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_QUEUES_WITHOUT_AGE,
)

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
    """The five alarms of one pool, as `(suffix, args)`."""
    alarms: list[tuple[str, AlarmArgs]] = []
    threshold = pool.config.alarm_threshold_seconds
    alarms.append(
        (
            f"{name}-latency-slo",
            AlarmArgs(
                alarm_description=f"Pool {name}: oldest waiting task older than the {threshold:g} s alarm threshold "
                f"(SLO: p95 wait <= {pool.config.acceptable_latency_seconds:g} s) for 5 minutes "
                "(scaling is not keeping up)",
                namespace=namespace,
                metric_name=METRIC_OLDEST_AGE,
                dimensions={DIMENSION_POOL: name},
                statistic="Maximum",
                period=MINUTE,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=threshold,
                evaluation_periods=5,
                datapoints_to_alarm=5,
                # No age datum is no evidence of latency: the publisher being down and a queue without
                # an age each have their own breaching alarm (module docstring), so this one judges
                # only ages it has (unstamped messages get one from first sight: worker.unstamped).
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
                # The expression has no value only when its inputs have none (publisher down: its own
                # alarm); a full pool always yields 1, so a gap is not a full pool.
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
                # Without a backlog datum there is no evidence of waiting work (publisher down: its own
                # alarm); zero in service is filled in (FILL), so an empty group still evaluates.
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
            f"{name}-age-unknown",
            AlarmArgs(
                alarm_description=f"Pool {name}: a queue has waiting tasks but no age for 5 minutes, so the "
                "latency alarm and the latency safety net cannot see it (RabbitMQ statistics off?)",
                namespace=namespace,
                metric_name=METRIC_QUEUES_WITHOUT_AGE,
                dimensions={DIMENSION_POOL: name},
                statistic="Maximum",
                period=MINUTE,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                evaluation_periods=5,
                datapoints_to_alarm=5,
                # The publisher sends this count every sample (0 when every waiting queue has an age);
                # no datum means the publisher is down, which publisher-stale reports.
                treat_missing_data="notBreaching",
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
