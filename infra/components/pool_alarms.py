"""A pool's alarms: latency over the alarm threshold, backlog at max size, backlog with no instance,
a waiting queue with no age, publisher stale. Pure functions of the config: each returns
`(suffix, args)` for the component to create.

Missing data is chosen per alarm (`missing`, CloudWatch's `treat_missing_data`, each with its
reason). The publisher sends every pool's metrics every sample, an empty queue included (age 0), so
a gap means one of two failures, and each has its own alarm that treats it as breaching: the publisher is down
(publisher-stale: no heartbeat), or a queue holds messages whose age cannot be told
(age-unknown: PoolQueuesWithoutAge, which the publisher sends as a number). The other alarms
therefore judge only the data they get. Semantics:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.components.alarm_args import AlarmArgs, Metric, Query, alarm, queried_metric
from infra.components.metrics import ASG_DIMENSION, ASG_IN_SERVICE, ASG_NAMESPACE, DIMENSION_POOL
from infra.config import PoolConfig
from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_OLDEST_AGE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_QUEUES_WITHOUT_AGE,
)


@dataclass(frozen=True)
class MonitoredPool:
    config: PoolConfig
    asg_name: pulumi.Input[str]
    target_backlog_per_instance: float
    code_version: pulumi.Input[str]
    """The build being deployed to the pool: the `Version` its canary alarms judge."""


def latency_alarm_suffix(name: str) -> str:
    """The latency alarm, which also judges a canary refresh (infra.components.canary)."""
    return f"{name}-latency-slo"


def _in_service(asg_name: pulumi.Input[str]) -> Query:
    return queried_metric("ins", ASG_NAMESPACE, ASG_IN_SERVICE, {ASG_DIMENSION: asg_name}, "Average")


# long function: the pool's five alarms as one table, an entry each, read top to bottom
def pool_alarms(namespace: str, name: str, pool: MonitoredPool) -> list[tuple[str, AlarmArgs]]:
    """The five alarms of one pool, as `(suffix, args)`."""
    dimensions = {DIMENSION_POOL: name}
    threshold = pool.config.alarm_threshold_seconds
    target = pool.target_backlog_per_instance
    return [
        (
            latency_alarm_suffix(name),
            alarm(
                f"Pool {name}: oldest waiting task older than the {threshold:g} s alarm threshold "
                f"(SLO: p95 wait <= {pool.config.acceptable_latency_seconds:g} s) for 5 minutes "
                "(scaling is not keeping up)",
                Metric(namespace, METRIC_OLDEST_AGE, "Maximum", dimensions),
                "GreaterThanOrEqualToThreshold",
                threshold,
                periods=5,
                # No age datum is no evidence of latency: the publisher being down and a queue without
                # an age each have their own breaching alarm (module docstring), so this one judges
                # only ages it has (unstamped messages get one from first sight: worker.publisher.unstamped).
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-backlog-at-max",
            alarm(
                f"Pool {name}: at max size ({pool.config.max_size}) with backlog per instance "
                f"over target ({target:g}) "
                "for 10 minutes; raise maxSize or look for slow tasks",
                [
                    _in_service(pool.asg_name),
                    queried_metric("bpi", namespace, METRIC_BACKLOG_PER_INSTANCE, dimensions, "Average"),
                    Query(
                        id="at_max",
                        return_data=True,
                        label="At max with backlog",
                        expression=f"IF(ins >= {pool.config.max_size} AND bpi > {target:g}, 1, 0)",
                    ),
                ],
                "GreaterThanOrEqualToThreshold",
                1,
                periods=10,
                # The expression has no value only when its inputs have none (publisher down: its own
                # alarm); a full pool always yields 1, so a gap is not a full pool.
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-backlog-no-instances",
            alarm(
                f"Pool {name}: tasks waiting and no instance in service for 10 minutes (cannot launch? capacity? AMI?)",
                [
                    _in_service(pool.asg_name),
                    queried_metric("backlog", namespace, METRIC_BACKLOG, dimensions, "Maximum"),
                    Query(
                        id="stuck",
                        return_data=True,
                        label="Backlog with none in service",
                        expression="IF(backlog > 0 AND FILL(ins, 0) == 0, 1, 0)",
                    ),
                ],
                "GreaterThanOrEqualToThreshold",
                1,
                periods=10,
                # Without a backlog datum there is no evidence of waiting work (publisher down: its own
                # alarm); zero in service is filled in (FILL), so an empty group still evaluates.
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-age-unknown",
            alarm(
                f"Pool {name}: a queue has waiting tasks but no age for 5 minutes, so the "
                "latency alarm and the latency safety net cannot see it (RabbitMQ statistics off?)",
                Metric(namespace, METRIC_QUEUES_WITHOUT_AGE, "Maximum", dimensions),
                "GreaterThanOrEqualToThreshold",
                1,
                periods=5,
                # The publisher sends this count every sample (0 when every waiting queue has an age);
                # no datum means the publisher is down, which publisher-stale reports.
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-publisher-stale",
            alarm(
                f"Pool {name}: no publisher heartbeat for 3 minutes; "
                "the metrics publisher is down, so scaling is blind",
                Metric(namespace, METRIC_PUBLISHER_HEARTBEAT, "SampleCount", dimensions),
                "LessThanThreshold",
                1,
                periods=3,
                # Missing data is exactly the failure this alarm exists for.
                missing="breaching",
            ),
        ),
    ]
