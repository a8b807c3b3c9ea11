"""The canary rendered for AWS: the rules of infra.canary.rules as metric filters and CloudWatch alarms.

1. Metric filters on the pool's log group count the workers' own log lines (worker.names EVENT_*) per
   code version: every line carries the process's `version` and `pool` (worker.runtime.logs), and a
   filter publishes those fields as the `Version` and `Pool` dimensions, "as many as three" per filter
   (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntaxForMetricFilters.html,
   "Publishing dimensions with metrics from values in JSON or space-delimited log events"). A version
   is low-cardinality (one value per deploy), as those dimensions must be.
2. Alarms on the *new* version's metrics (dimension Version = the build being deployed), so the old
   instances that still serve most of the pool during a canary cannot dilute its failures.
3. The refresh preferences (StartInstanceRefresh `Preferences`) that name those alarms in an
   AlarmSpecification, with the configured checkpoints and AutoRollback; `infra.cli.canary_rollout` starts the
   refresh with them after `pulumi up` (why not the group's own `instance_refresh`: that module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.canary.rules import Judge, LogMetric, canary_judges
from infra.components.alarm_args import AlarmArgs, Metric, Query, alarm, queried_metric
from infra.components.metrics import DIMENSION_POOL
from infra.config import StackConfig
from worker.names import METRIC_TASKS_FINISHED, METRIC_UNKNOWN_TASK_LETTERS

DIMENSION_VERSION: Final = "Version"
DIMENSION_OF_FIELD: Final = {"pool": DIMENSION_POOL, "version": DIMENSION_VERSION}


def metric_filter_args(
    namespace: str, log_group: pulumi.Input[str], metric: LogMetric
) -> aws.cloudwatch.LogMetricFilterArgs:
    return aws.cloudwatch.LogMetricFilterArgs(
        log_group_name=log_group,
        pattern=metric.pattern,
        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
            name=metric.metric,
            namespace=namespace,
            value="1",
            unit="Count",
            # No default value: a minute without such lines stays missing, which the alarms read as
            # no evidence (a zero would also be a datapoint per dimension set that AWS bills).
            dimensions={DIMENSION_OF_FIELD[f]: f"$.{f}" for f in metric.dimensions},
        ),
    )


def _share(namespace: str, numerator: str, dimensions: Mapping[str, pulumi.Input[str]], label: str) -> list[Query]:
    """Percent of the version's task runs that `numerator` counts, per minute (0 without runs)."""
    return [
        queried_metric("runs", namespace, METRIC_TASKS_FINISHED, dimensions, "Sum"),
        queried_metric("part", namespace, numerator, dimensions, "Sum"),
        Query(id="share", return_data=True, label=label, expression="100 * FILL(part, 0) / runs"),
    ]


def unknown_task_alarm(config: StackConfig, name: str) -> tuple[str, AlarmArgs]:
    """On-call's version-skew alarm: any worker of the pool dead-lettered a task name it does not know.
    Not a judge of a refresh: old workers that meet a new producer's task fire it, and the deploy that
    teaches the workers that name must not be rolled back for it."""
    return (
        f"{name}-unknown-tasks",
        alarm(
            f"Pool {name}: a message named a task no worker of the pool knows (version skew: deploy "
            "workers before producers, rename across two releases); it is in the dead-letter queue with "
            "its sender's version, and `python -m worker.deadletter replay` runs it once a worker knows it",
            Metric(config.metric_namespace, METRIC_UNKNOWN_TASK_LETTERS, "Sum", {DIMENSION_POOL: name}),
            "GreaterThanOrEqualToThreshold",
            1,
            periods=1,
            missing="notBreaching",
        ),
    )


def judge_alarm(namespace: str, judge: Judge, dimensions: Mapping[str, pulumi.Input[str]]) -> AlarmArgs:
    """One judge as a CloudWatch alarm of the judges' shape: at or over the threshold in each of its
    periods, a period without data not breaching."""
    source: Metric | list[Query] = (
        Metric(namespace, judge.counted.metric, "Sum", dimensions, period=judge.period)
        if judge.share_label is None
        else _share(namespace, judge.counted.metric, dimensions, judge.share_label)
    )
    return alarm(
        judge.description, source, "GreaterThanOrEqualToThreshold", judge.threshold, judge.periods, "notBreaching"
    )


def canary_alarms(config: StackConfig, name: str, version: pulumi.Input[str]) -> list[tuple[str, AlarmArgs]]:
    """The alarms that judge version `version` of pool `name` (infra.canary.rules.canary_judges); with
    the pool's latency alarm they are its refresh's AlarmSpecification."""
    new = {DIMENSION_POOL: name, DIMENSION_VERSION: version}
    return [
        (f"{name}-{judge.suffix}", judge_alarm(config.metric_namespace, judge, new))
        for judge in canary_judges(config, name)
    ]
